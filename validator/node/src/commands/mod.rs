pub mod genesis;
pub mod keygen;
pub mod replay;
pub mod snapshot;

/// The RocksDB directory a user means by `dir`: `dir` itself, or, when `dir` is a
/// chain's data directory (the database lives in its `db` subdirectory, beside
/// `snapshots`), that subdirectory.
pub fn database_dir(dir: &std::path::Path) -> std::path::PathBuf {
    let inner = dir.join("db");
    if !dir.join("CURRENT").exists() && inner.join("CURRENT").exists() {
        inner
    } else {
        dir.to_path_buf()
    }
}
