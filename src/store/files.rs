//! Reading files from `.sesto/` with a size limit, never through a link or
//! from a special file: the first check every byte from a repository meets.

use std::path::Path;

use crate::error::{Error, Result};

/// Reads a file under `.sesto/`, refusing symlinks and files over `limit`.
pub(crate) fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let meta = std::fs::symlink_metadata(path).map_err(Error::io("cannot read", path))?;
    if meta.file_type().is_symlink() {
        return Err(Error::Refused {
            path: path.to_path_buf(),
            reason: "symlinks are not allowed in .sesto/".into(),
        });
    }
    if !meta.is_file() {
        return Err(Error::Refused {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    if meta.len() > limit {
        return Err(Error::Refused {
            path: path.to_path_buf(),
            reason: format!("{} bytes is over the {} MiB limit", meta.len(), limit >> 20),
        });
    }
    std::fs::read(path).map_err(Error::io("cannot read", path))
}
