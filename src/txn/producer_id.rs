//! Hands out producer ids that are never reused, even across restarts: ids come from blocks
//! whose end is written to disk (synced) before any id of the block is handed out.

use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

const BLOCK: i64 = 1000;

pub struct ProducerIdManager {
    path: PathBuf,
    /// (next id to hand out, end of the persisted block, exclusive)
    state: Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    pub fn open(path: PathBuf) -> io::Result<Self> {
        let end = match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().parse().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(Self {
            path,
            state: Mutex::new((end, end)),
        })
    }

    /// The next unused producer id.
    pub fn next_id(&self) -> io::Result<i64> {
        let mut state = self.state.lock().expect("producer id lock");
        if state.0 >= state.1 {
            let end = state.1 + BLOCK;
            crate::log::write_offset_file(&self.path, end)?;
            state.1 = end;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_not_reused_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("producer-id-block");
        let m = ProducerIdManager::open(path.clone()).unwrap();
        assert_eq!((m.next_id().unwrap(), m.next_id().unwrap()), (0, 1));
        let m = ProducerIdManager::open(path).unwrap();
        assert_eq!(m.next_id().unwrap(), BLOCK);
    }
}
