//! Temporary files and folders for tests, removed when dropped (no crate needed for this).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A path under the system's temporary folder, unique in this process and across runs;
/// whatever is there (file or folder) is removed on drop.
#[derive(Debug)]
pub struct TempPath(PathBuf);

impl TempPath {
    /// A fresh path named after `what` (nothing is created).
    pub fn new(what: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        TempPath(std::env::temp_dir().join(format!(
            "sightline-{what}-{}-{n}-{nanos}",
            std::process::id()
        )))
    }

    /// A new empty folder.
    pub fn dir(what: &str) -> std::io::Result<Self> {
        let t = Self::new(what);
        std::fs::create_dir_all(&t.0)?;
        Ok(t)
    }

    /// A new file holding `data`.
    pub fn file(what: &str, data: &[u8]) -> std::io::Result<Self> {
        let t = Self::new(what);
        std::fs::write(&t.0, data)?;
        Ok(t)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0).or_else(|_| std::fs::remove_file(&self.0));
    }
}
