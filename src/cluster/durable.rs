//! Crash-safe writes of the quorum's small files. All but [`blocking`] block: callers run them
//! through [`blocking`], off the async workers.

use super::ClusterError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs a blocking file operation on tokio's blocking pool, off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ClusterError> + Send + 'static,
) -> Result<T, ClusterError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ClusterError::Task)?
}

/// Replaces `path` with `bytes` so that after a crash the file holds either the old or the new
/// contents, never a mix: write a temp file beside it, fsync it, rename it over, fsync the
/// directory so that the rename itself is durable.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClusterError> {
    let tmp = temp_path(path);
    let mut file = File::create(&tmp).map_err(io_error(&tmp))?;
    file.write_all(bytes).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_error(path))?;
    sync_parent(path)
}

/// `write_atomic` of a value as JSON.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ClusterError> {
    let bytes = serde_json::to_vec(value).map_err(|e| ClusterError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    })?;
    write_atomic(path, &bytes)
}

/// Reads a JSON file written by `write_json`; `None` when it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ClusterError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ClusterError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            reason: e.to_string(),
        })
}

/// Makes the directory entries of `path`'s directory (a create, rename or delete) durable.
pub(crate) fn sync_parent(path: &Path) -> Result<(), ClusterError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// `<name>.tmp` beside `path`; a leftover one from a crash is simply overwritten next time.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vote.json");
        write_json(&path, &1u64).unwrap();
        write_json(&path, &2u64).unwrap();
        assert_eq!(read_json::<u64>(&path).unwrap(), Some(2));
        assert!(!temp_path(&path).exists());
        assert_eq!(read_json::<u64>(&dir.path().join("missing")).unwrap(), None);
    }
}
