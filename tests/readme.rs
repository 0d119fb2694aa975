//! The README's API table is the route table: it cannot drift from what ApiVersions says.

#[test]
fn readme_api_table_matches_the_route_table() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- api-table:start -->")
        .expect("table start marker");
    let end = readme
        .find("<!-- api-table:end -->")
        .expect("table end marker");
    let rows: Vec<(String, i16, i16, i16)> = readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| API"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let (min, max) = cells[2].split_once('–').expect("versions as min–max");
            (
                cells[0].to_string(),
                cells[1].parse().unwrap(),
                min.parse().unwrap(),
                max.parse().unwrap(),
            )
        })
        .collect();
    let routes: Vec<(String, i16, i16, i16)> = spool::protocol::routes::ROUTES
        .iter()
        .map(|r| {
            (
                format!("{:?}", r.api_key),
                r.api_key as i16,
                r.min_version,
                r.max_version,
            )
        })
        .collect();
    assert_eq!(rows, routes);
}

#[test]
fn shipped_config_file_is_the_compiled_default() {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/spool.toml")).unwrap();
    assert_eq!(shipped, spool::config::DEFAULTS_TOML);
    spool::config::Config::load(
        Some(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/spool.toml"
        ))),
        Vec::new(),
        &[],
    )
    .expect("the shipped config parses and validates");
}
