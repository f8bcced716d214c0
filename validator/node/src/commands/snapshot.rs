//! `dualchain snapshot export|import`: move a chain's state between nodes as one file.

use std::path::PathBuf;

use anyhow::Context;
use dualchain_store::{RocksEngine, StoreOptions, export_snapshot, import_snapshot};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Write the state of a (stopped) node's database to a snapshot file.
    Export {
        /// The node's database of one chain: the chain's data directory (its `db`
        /// inside is used) or the database directory itself.
        #[arg(long, value_name = "DIR")]
        db: PathBuf,
        /// Snapshot file to write (written to a temporary name, then renamed).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Create a fresh database from a snapshot file; the target must not exist or be empty.
    Import {
        /// Snapshot file to read; its checksum and state root are verified first.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// Database directory to create.
        #[arg(long, value_name = "DIR")]
        db: PathBuf,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let info = match cmd {
        Command::Export { db, out } => {
            let options = StoreOptions {
                create_if_missing: false,
                ..StoreOptions::default()
            };
            let db = super::database_dir(&db);
            let engine = RocksEngine::open(&db, &options)
                .with_context(|| format!("opening database {}", db.display()))?;
            export_snapshot(&engine, &out)
                .with_context(|| format!("exporting {} to {}", db.display(), out.display()))?
        }
        Command::Import { file, db } => import_snapshot(&file, &db, &StoreOptions::default())
            .with_context(|| format!("importing {} into {}", file.display(), db.display()))?,
    };
    let value = serde_json::json!({
        "chain": dualchain_store::snapshot::chain_name(info.chain),
        "height": info.height,
        "state_root": hex::encode(info.state_root),
        "block_digest": hex::encode(info.block_digest),
        "entries": info.entries,
        "bytes": info.bytes,
        "checksum": hex::encode(info.checksum),
    });
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}
