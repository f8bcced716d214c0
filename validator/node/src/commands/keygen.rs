//! `dualchain keygen`: write a new key directory, or show the public part of one.

use std::path::PathBuf;

use anyhow::Context;
use dualchain_core::keyfile::{self, KeyKind};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["out", "show"])))]
pub struct Args {
    /// Directory to write the new key into (created with mode 0700; files 0600). Refuses to overwrite a key.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Role of the new key: validator (ML-DSA-87) or account (ML-DSA-44).
    #[arg(long, value_enum, default_value_t = Kind::Validator, requires = "out")]
    kind: Kind,
    /// Print the public key and address of the key in DIR (never the secret).
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    show: Option<PathBuf>,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Kind {
    Validator,
    Account,
}

impl From<Kind> for KeyKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Validator => KeyKind::Validator,
            Kind::Account => KeyKind::Account,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (dir, key) = match (&args.out, &args.show) {
        (Some(dir), _) => {
            let key = keyfile::generate_key(dir, args.kind.into())
                .with_context(|| format!("generating a key in {}", dir.display()))?;
            tracing::info!(dir = %dir.display(), kind = key.kind().name(), "wrote a new key");
            (dir, key)
        }
        (None, Some(dir)) => (dir, keyfile::read_any_key(dir)?),
        (None, None) => unreachable!("clap requires --out or --show"),
    };
    let kind = key.kind();
    let id_label = match kind {
        KeyKind::Validator => "validator_id",
        KeyKind::Account => "address",
    };
    if args.json {
        let value = serde_json::json!({
            "dir": dir,
            "kind": kind.name(),
            "algorithm": kind.algorithm(),
            id_label: key.address(),
            "public_key": key.public_key_hex(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("kind:        {}", kind.name());
        println!("algorithm:   {}", kind.algorithm());
        println!("{id_label:<12} {}", key.address());
        println!("public key:  {}", key.public_key_hex());
    }
    Ok(())
}
