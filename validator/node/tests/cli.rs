//! The `dualchain` binary end to end: keys, genesis and snapshots through the CLI.

use std::path::Path;
use std::process::{Command, Output};

use dualchain_core::chain_store::ChainStore;
use dualchain_core::hash::Digest;
use dualchain_core::types::{ChainId, Genesis};
use dualchain_store::{RocksEngine, StoreOptions};

fn dualchain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dualchain"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run dualchain")
}

fn ok(args: &[&str]) -> String {
    let out = dualchain(args);
    assert!(
        out.status.success(),
        "dualchain {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails_with(args: &[&str], needle: &str) {
    let out = dualchain(args);
    assert!(!out.status.success(), "dualchain {args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(needle),
        "stderr of {args:?} lacks {needle:?}:\n{stderr}"
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["keygen", "--help"],
        vec!["genesis", "--help"],
        vec!["snapshot", "--help"],
        vec!["snapshot", "export", "--help"],
        vec!["snapshot", "import", "--help"],
        vec!["replay", "--help"],
    ] {
        assert!(ok(&args).contains("Usage"), "{args:?}");
    }
}

#[test]
fn keygen_show_never_prints_the_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v0");
    let out = ok(&["keygen", "--out", s(&dir), "--kind", "validator"]);
    let seed = std::fs::read_to_string(dir.join("secret_seed")).unwrap();
    assert_eq!(seed.trim().len(), 64);
    let shown = ok(&["keygen", "--show", s(&dir), "--json"]);
    for text in [&out, &shown] {
        assert!(!text.contains(seed.trim()), "secret seed printed");
    }
    let json: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(json["kind"], "validator");
    assert_eq!(json["algorithm"], "ml-dsa-87");
    assert_eq!(json["public_key"].as_str().unwrap().len(), 2592 * 2);

    fails_with(&["keygen", "--out", s(&dir)], "refusing to overwrite");
    fails_with(
        &["keygen", "--show", s(&tmp.path().join("nope"))],
        "missing",
    );
    std::fs::write(dir.join("secret_seed"), &seed[..20]).unwrap();
    fails_with(&["keygen", "--show", s(&dir)], "truncated");
}

#[test]
fn genesis_from_keys_with_accounts_and_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let mut keys = Vec::new();
    for i in 0..4 {
        let dir = tmp.path().join(format!("validator-{i}"));
        ok(&["keygen", "--out", s(&dir)]);
        keys.push(dir);
    }
    let account = tmp.path().join("acct");
    ok(&["keygen", "--out", s(&account), "--kind", "account"]);
    let out = tmp.path().join("net/genesis.json");
    let mut args = vec![
        "genesis",
        "--accounts",
        "25",
        "--out",
        s(&out),
        "--validator-keys",
    ];
    args.extend(keys.iter().map(|k| s(k)));
    let hash = ok(&args).trim().to_string();

    let genesis = Genesis::from_json(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(genesis.hash().to_hex(), hash);
    assert_eq!(genesis.validators.len(), 4);
    assert_eq!(genesis.accounts.len(), 25);
    assert_eq!(genesis.alpha.block_time_ms, 15_000);
    assert_eq!(genesis.delta.block_time_ms, 3_000);
    assert!(!genesis.allow_unsigned_transactions);
    let keyring =
        dualchain_core::keyfile::read_keyring(&out.with_extension("accounts.keys")).unwrap();
    assert_eq!(keyring.len(), 25);

    fails_with(&args, "refusing to overwrite");
    let other = tmp.path().join("g2.json");
    fails_with(
        &[
            "genesis",
            "--out",
            s(&other),
            "--validator-keys",
            s(&account),
        ],
        "expected a validator key",
    );
    fails_with(
        &[
            "genesis",
            "--out",
            s(&other),
            "--delta-block-time-ms",
            "4000",
            "--validator-keys",
            s(&keys[0]),
        ],
        "must divide",
    );
    // Only the engines this version runs are offered.
    fails_with(
        &[
            "genesis",
            "--out",
            s(&other),
            "--delta-consensus",
            "snowman",
            "--validator-keys",
            s(&keys[0]),
        ],
        "invalid value 'snowman'",
    );
}

#[test]
fn snapshot_export_import_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let root = {
        let engine = RocksEngine::open(&db, &StoreOptions::default()).unwrap();
        let mut store = ChainStore::open(engine, ChainId::Delta).unwrap();
        let changes: Vec<_> = (0..500u32)
            .map(|i| {
                (
                    format!("account-{i}").into_bytes(),
                    Some(i.to_le_bytes().to_vec()),
                )
            })
            .collect();
        store.init_genesis(Digest([7; 32]), &changes).unwrap()
    };
    let file = tmp.path().join("delta.dcsnap");
    let exported: serde_json::Value = serde_json::from_str(&ok(&[
        "snapshot",
        "export",
        "--db",
        s(&db),
        "--out",
        s(&file),
    ]))
    .unwrap();
    assert_eq!(exported["state_root"], root.to_hex());

    let fresh = tmp.path().join("fresh");
    let imported: serde_json::Value = serde_json::from_str(&ok(&[
        "snapshot",
        "import",
        "--file",
        s(&file),
        "--db",
        s(&fresh),
    ]))
    .unwrap();
    assert_eq!(imported["state_root"], root.to_hex());
    let engine = RocksEngine::open(&fresh, &StoreOptions::default()).unwrap();
    let store = ChainStore::open(engine, ChainId::Delta).unwrap();
    assert_eq!(store.state_root(), root);
    assert_eq!(
        store.get_state(b"account-42").unwrap(),
        Some(42u32.to_le_bytes().to_vec())
    );

    // A corrupt snapshot is refused and leaves no database behind.
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let corrupt = tmp.path().join("corrupt.dcsnap");
    std::fs::write(&corrupt, &bytes).unwrap();
    let target = tmp.path().join("never");
    let out = dualchain(&[
        "snapshot",
        "import",
        "--file",
        s(&corrupt),
        "--db",
        s(&target),
    ]);
    assert!(!out.status.success());
    assert!(
        !target.exists(),
        "a refused import must not leave a database"
    );
}

/// The replay harness's default-suite size: a synthetic certified history of
/// 10,000 blocks (transfers in every tenth block's worth of load, a certificate
/// every 1,000) replays to identical roots.
#[test]
fn replay_of_ten_thousand_synthetic_blocks_matches_every_root() {
    let out = ok(&[
        "replay",
        "--synthetic",
        "10000",
        "--txs-per-block",
        "5",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["roots_match"], true, "{report}");
    assert_eq!(report["blocks"], 10_000);
    assert_eq!(report["transactions"], 50_000);
    assert_eq!(report["certificates_verified"], 10);
    assert_eq!(report["certified_through"], 10_000);
    assert_eq!(report["state_root"], report["source_state_root"]);
    assert!(report["seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn replay_refuses_a_database_of_another_network_and_a_used_target() {
    let tmp = tempfile::tempdir().unwrap();
    let history = tmp.path().join("history");
    ok(&[
        "replay",
        "--synthetic",
        "30",
        "--history",
        s(&history),
        "--json",
    ]);
    // Another network's genesis: block 1 does not extend its genesis.
    let keys = tmp.path().join("k");
    ok(&["keygen", "--out", s(&keys)]);
    let genesis = tmp.path().join("genesis.json");
    ok(&[
        "genesis",
        "--out",
        s(&genesis),
        "--validator-keys",
        s(&keys),
    ]);
    fails_with(
        &["replay", "--db", s(&history), "--genesis", s(&genesis)],
        "block 1 does not extend this chain's head",
    );
    // A target that holds something is never written into.
    fails_with(
        &["replay", "--synthetic", "5", "--into", s(&history)],
        "is not empty",
    );
    fails_with(&["replay", "--db", s(&history)], "--genesis");
    fails_with(
        &[
            "replay",
            "--synthetic",
            "5",
            "--chain",
            "alpha",
            "--txs-per-block",
            "1",
        ],
        "Alpha history has empty blocks",
    );
}
