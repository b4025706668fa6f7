//! A family store that cannot commit, for the tests of what is answered then.

use std::path::{Path, PathBuf};

/// The family store made unable to commit, for root too (the tests run as
/// root, for whom permissions are no obstacle): its database and WAL files
/// made immutable (`chattr +i`, so a write fails with an I/O error), or
/// where the filesystem has no such attribute, SQLite's write lock held by
/// this process (so a write fails as busy, after bindgate's busy timeout).
/// Dropping it repairs the store.
pub struct BrokenStore {
    immutable: Vec<PathBuf>,
    lock: Option<rusqlite::Connection>,
    /// How it was broken, for the test's messages.
    pub how: &'static str,
}

impl BrokenStore {
    pub fn new(db: &Path) -> BrokenStore {
        let files = vec![db.to_path_buf(), PathBuf::from(format!("{}-wal", db.display()))];
        let chattr = |flag: &str| {
            std::process::Command::new("chattr")
                .arg(flag)
                .args(&files)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if chattr("+i") {
            return BrokenStore {
                immutable: files,
                lock: None,
                how: "immutable files",
            };
        }
        chattr("-i");
        let lock = rusqlite::Connection::open(db).unwrap();
        lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
        BrokenStore {
            immutable: Vec::new(),
            lock: Some(lock),
            how: "write lock held",
        }
    }
}

impl Drop for BrokenStore {
    fn drop(&mut self) {
        if !self.immutable.is_empty() {
            // Also on a failed test: an immutable file cannot even be deleted.
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .args(&self.immutable)
                .status();
        }
        if let Some(lock) = self.lock.take() {
            let _ = lock.execute_batch("ROLLBACK");
        }
    }
}
