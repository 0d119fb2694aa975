//! Plain text tables for the human output of the admin commands: columns padded to their
//! widest cell and separated by two spaces, as Kafka's tools print them.

/// Renders `header` and `rows` (each as long as `header`), one line each.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_are_padded_to_the_widest_cell() {
        let rows = vec![
            vec!["orders".to_string(), "0".to_string(), "12".to_string()],
            vec!["t".to_string(), "10".to_string(), "-".to_string()],
        ];
        assert_eq!(
            super::render(&["TOPIC", "PARTITION", "LAG"], &rows),
            "TOPIC   PARTITION  LAG\norders  0          12\nt       10         -\n"
        );
    }
}
