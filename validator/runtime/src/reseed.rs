//! Re-seeding a chain whose history diverged from the network's certified one.
//!
//! Block sync proves divergence ([`Diverged`]): a block certified by a quorum of the
//! epoch's validators names a parent other than this node's block below it. Either
//! this node's data is wrong (restored from another run of the same genesis, damaged,
//! written by a bug) or the network broke its own safety; in both cases restarting on
//! the same data meets the same certified block again, for ever. So the chain's
//! database and its snapshots are moved aside — kept for whoever investigates, never
//! deleted — and the chain starts again from an empty database: by state sync if its
//! bootstrap mode asks for it (`auto`, `peers`), else from genesis by block sync, which
//! re-executes every certified block and checks each root.
//!
//! At most [`MAX_SET_ASIDE`] diverged copies are kept per chain: a node that keeps
//! diverging is not healed by another copy, and each one can be as large as the
//! chain. Beyond that the chain fails with a message asking the operator to look.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::block_sync::Diverged;

/// Diverged copies of one chain's data kept before re-seeding refuses.
pub const MAX_SET_ASIDE: usize = 2;
/// Prefix of the directories holding a diverged copy, next to the database.
pub const SET_ASIDE_PREFIX: &str = "diverged-";

/// The divergence behind `error`, if that is what ended the chain.
pub fn diverged_of(error: &anyhow::Error) -> Option<Diverged> {
    error
        .chain()
        .find_map(|c| c.downcast_ref::<Diverged>())
        .cloned()
}

/// Moves `db_dir` and `snapshot_dir` (when it exists) into a new
/// `diverged-<unix_ms>` directory beside `db_dir`; returns that directory. Refuses,
/// moving nothing, when [`MAX_SET_ASIDE`] copies are already there.
pub fn set_aside(
    db_dir: &Path,
    snapshot_dir: Option<&Path>,
    unix_ms: u64,
) -> anyhow::Result<PathBuf> {
    let parent = db_dir
        .parent()
        .with_context(|| format!("{} has no parent directory", db_dir.display()))?;
    let kept = kept_copies(parent)?;
    if kept.len() >= MAX_SET_ASIDE {
        bail!(
            "this chain's data diverged from the network's again, and {} diverged copies are \
             already kept in {} ({}): not moving another aside. Look at why this node \
             diverges (its disk, its binary, a restored backup), remove the copies, and restart",
            kept.len(),
            parent.display(),
            kept.join(", ")
        );
    }
    let mut target = parent.join(format!("{SET_ASIDE_PREFIX}{unix_ms}"));
    let mut n = 1;
    while target.exists() {
        target = parent.join(format!("{SET_ASIDE_PREFIX}{unix_ms}-{n}"));
        n += 1;
    }
    std::fs::create_dir(&target).with_context(|| format!("creating {}", target.display()))?;
    if db_dir.exists() {
        move_into(db_dir, &target)?;
    }
    if let Some(snapshots) = snapshot_dir.filter(|s| s.exists()) {
        move_into(snapshots, &target)?;
    }
    Ok(target)
}

/// Names of the diverged copies in `parent`, oldest first.
fn kept_copies(parent: &Path) -> anyhow::Result<Vec<String>> {
    let mut kept = Vec::new();
    let entries = match std::fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(kept),
        Err(e) => return Err(e).with_context(|| format!("listing {}", parent.display())),
    };
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(SET_ASIDE_PREFIX) {
            kept.push(name);
        }
    }
    kept.sort();
    Ok(kept)
}

/// Renames `path` into directory `target`, keeping its name.
fn move_into(path: &Path, target: &Path) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} has no name", path.display()))?;
    let to = target.join(name);
    std::fs::rename(path, &to)
        .with_context(|| format!("moving {} to {}", path.display(), to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::Digest;

    fn diverged() -> Diverged {
        Diverged {
            height: 8,
            below: 7,
            certified_parent: Digest([1; 32]),
            ours: Digest([2; 32]),
        }
    }

    #[test]
    fn a_divergence_is_found_behind_context() {
        let error = anyhow::Error::new(diverged()).context("following the delta chain");
        assert_eq!(diverged_of(&error), Some(diverged()));
        assert_eq!(diverged_of(&anyhow::anyhow!("disk full")), None);
    }

    #[test]
    fn the_data_is_moved_aside_whole_and_kept_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let snapshots = dir.path().join("snapshots");
        std::fs::create_dir_all(db.join("rocks")).unwrap();
        std::fs::write(db.join("rocks/CURRENT"), b"x").unwrap();
        std::fs::create_dir_all(&snapshots).unwrap();
        std::fs::write(snapshots.join("s.dcsnap"), b"y").unwrap();

        let first = set_aside(&db, Some(&snapshots), 1_000).unwrap();
        assert_eq!(first, dir.path().join("diverged-1000"));
        assert!(!db.exists() && !snapshots.exists());
        assert_eq!(std::fs::read(first.join("db/rocks/CURRENT")).unwrap(), b"x");
        assert_eq!(
            std::fs::read(first.join("snapshots/s.dcsnap")).unwrap(),
            b"y"
        );

        // The same millisecond again (a fresh database, no snapshots yet).
        std::fs::create_dir_all(&db).unwrap();
        let second = set_aside(&db, Some(&snapshots), 1_000).unwrap();
        assert_eq!(second, dir.path().join("diverged-1000-1"));
        assert!(second.join("db").is_dir() && !second.join("snapshots").exists());

        std::fs::create_dir_all(&db).unwrap();
        let refused = set_aside(&db, Some(&snapshots), 2_000)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("2 diverged copies"), "{refused}");
        assert!(db.is_dir(), "nothing moved when refused");
    }
}
