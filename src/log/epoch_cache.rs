//! The leader epoch cache of a log (`leader-epoch-checkpoint`, Kafka's file format: a version
//! line `0`, a count line, then `<epoch> <start offset>` lines): the first offset written under
//! each leader epoch. OffsetForLeaderEpoch answers from it, and a follower uses those answers to
//! find where its log diverged from a new leader's and truncate there.
//!
//! Entries are ascending in both epoch and start offset. The file is rewritten atomically when
//! an epoch starts (rare: on leader changes), when the log is truncated, and when its start
//! moves.

use std::io;
use std::path::{Path, PathBuf};

const FILE: &str = "leader-epoch-checkpoint";
/// Kafka's "no such epoch / offset" answer.
pub const UNDEFINED: (i32, i64) = (-1, -1);

#[derive(Debug)]
pub struct EpochCache {
    path: PathBuf,
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    /// Reads the cache of the log in `dir`; a missing or damaged file reads as empty (the log
    /// then assigns its current epoch again).
    pub fn open(dir: &Path) -> Self {
        let path = dir.join(FILE);
        let entries = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| parse(&text))
            .unwrap_or_default();
        Self { path, entries }
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    pub fn latest(&self) -> Option<(i32, i64)> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start` when it is newer than the latest epoch known;
    /// an epoch already known (or older) changes nothing.
    pub fn assign(&mut self, epoch: i32, start: i64) -> io::Result<()> {
        if epoch < 0 || self.latest().is_some_and(|(e, _)| epoch <= e) {
            return Ok(());
        }
        // A start before the latest entry's would break the order: that entry never had a
        // record, so it goes.
        self.entries.retain(|(_, s)| *s < start);
        self.entries.push((epoch, start));
        self.store()
    }

    /// Kafka's `endOffsetFor`: for `epoch`, the largest epoch at or below it that this log knows
    /// and the offset where the next higher epoch starts (the log end for the latest epoch).
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> (i32, i64) {
        if epoch < 0 {
            return UNDEFINED;
        }
        if self.latest().is_some_and(|(e, _)| e == epoch) {
            return (epoch, log_end);
        }
        let Some(higher) = self.entries.iter().find(|(e, _)| *e > epoch) else {
            return UNDEFINED;
        };
        match self.entries.iter().rev().find(|(e, _)| *e <= epoch) {
            Some((floor, _)) => (*floor, higher.1),
            None => (epoch, higher.1),
        }
    }

    /// The log was truncated to `end`: epochs starting at or after it go.
    pub fn truncate_from_end(&mut self, end: i64) -> io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|(_, s)| *s < end);
        if self.entries.len() == before {
            return Ok(());
        }
        self.store()
    }

    /// The log now starts at `start`: the epoch holding it starts there, older ones go.
    pub fn truncate_from_start(&mut self, start: i64) -> io::Result<()> {
        let Some(keep) = self.entries.iter().rposition(|(_, s)| *s <= start) else {
            return Ok(());
        };
        if keep == 0 && self.entries[0].1 == start {
            return Ok(());
        }
        self.entries.drain(..keep);
        self.entries[0].1 = start;
        self.store()
    }

    fn store(&self) -> io::Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        super::write_atomically(&self.path, text.as_bytes())
    }
}

fn parse(text: &str) -> Option<Vec<(i32, i64)>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let entries: Vec<(i32, i64)> = lines
        .take(count)
        .map(|l| {
            let (e, s) = l.trim().split_once(' ')?;
            Some((e.parse().ok()?, s.parse().ok()?))
        })
        .collect::<Option<_>>()?;
    let ordered = entries
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
    (entries.len() == count && ordered).then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_like_kafkas_end_offset_for() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EpochCache::open(dir.path());
        assert_eq!(c.end_offset_for(0, 10), UNDEFINED, "nothing known");
        c.assign(0, 0).unwrap();
        c.assign(2, 40).unwrap();
        c.assign(2, 55).unwrap();
        c.assign(1, 60).unwrap();
        c.assign(5, 70).unwrap();
        assert_eq!(c.entries(), &[(0, 0), (2, 40), (5, 70)]);
        assert_eq!(
            c.end_offset_for(5, 90),
            (5, 90),
            "the latest epoch ends at the log end"
        );
        assert_eq!(c.end_offset_for(2, 90), (2, 70));
        assert_eq!(
            c.end_offset_for(1, 90),
            (0, 40),
            "an unknown epoch answers its floor"
        );
        assert_eq!(c.end_offset_for(9, 90), UNDEFINED);
        assert_eq!(c.end_offset_for(-1, 90), UNDEFINED);
        let reopened = EpochCache::open(dir.path());
        assert_eq!(reopened.entries(), c.entries());
    }

    #[test]
    fn truncation_from_either_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EpochCache::open(dir.path());
        for (e, s) in [(0, 0), (1, 10), (3, 20)] {
            c.assign(e, s).unwrap();
        }
        c.truncate_from_end(20).unwrap();
        assert_eq!(c.entries(), &[(0, 0), (1, 10)]);
        c.truncate_from_start(15).unwrap();
        assert_eq!(c.entries(), &[(1, 15)]);
        std::fs::write(dir.path().join(FILE), "0\n3\n1 15\n").unwrap();
        assert!(EpochCache::open(dir.path()).entries().is_empty(), "damaged");
    }
}
