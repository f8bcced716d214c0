//! `dualchain genesis`: the validator set, funded accounts and chain parameters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use dualchain_core::crypto::{AccountKeypair, ValidatorScheme};
use dualchain_core::keyfile;
use dualchain_core::types::{
    Address, AssetId, ChainParams, ConsensusEngine, Genesis, GenesisAccount, GenesisValidator,
    SaxAllocation,
};
use rayon::prelude::*;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Validator key directories (from `dualchain keygen --kind validator`), in index order.
    #[arg(long, value_name = "DIR", num_args = 1.., required = true)]
    validator_keys: Vec<PathBuf>,
    /// Number of accounts to generate and fund; their keys go to a keyring file next to the genesis.
    #[arg(long, value_name = "N", default_value_t = 100)]
    accounts: usize,
    /// Genesis file to write (JSON). Refuses to overwrite.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Keyring file for the generated account keys [default: FILE with extension .accounts.keys].
    #[arg(long, value_name = "FILE")]
    accounts_keyring: Option<PathBuf>,
    /// Derive account keys from this seed instead of OS entropy (reproducible benchmarks only).
    #[arg(long, value_name = "U64")]
    accounts_seed: Option<u64>,
    /// Network name.
    #[arg(long, default_value = "devnet")]
    network: String,
    /// Stake of every validator.
    #[arg(long, default_value_t = 100)]
    stake: u64,
    /// Initial balance of every account in each funded asset.
    #[arg(long, default_value_t = 1_000_000_000_000)]
    balance: u64,
    /// sAX (Alpha's native asset, lockable for stake and voting weight on Delta) of
    /// every generated account; 0 allocates none.
    #[arg(long, value_name = "AMOUNT", default_value_t = 1_000_000)]
    sax: u64,
    /// Fund assets 0..K (asset 0 is the native fee asset).
    #[arg(long, value_name = "K", default_value_t = 1)]
    assets: u32,
    /// Alpha block time in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    alpha_block_time_ms: u64,
    /// Delta block time in milliseconds (must divide Alpha's).
    #[arg(long, default_value_t = 3_000)]
    delta_block_time_ms: u64,
    #[arg(long, default_value_t = 4130)]
    alpha_p2p_port: u16,
    #[arg(long, default_value_t = 3030)]
    alpha_api_port: u16,
    #[arg(long, default_value_t = 4131)]
    delta_p2p_port: u16,
    #[arg(long, default_value_t = 4030)]
    delta_api_port: u16,
    /// Consensus engine of Alpha.
    #[arg(long, value_enum, default_value_t = Engine::DagBft)]
    alpha_consensus: Engine,
    /// Consensus engine of Delta.
    #[arg(long, value_enum, default_value_t = Engine::DagBft)]
    delta_consensus: Engine,
    /// Epoch length in Alpha blocks.
    #[arg(long, default_value_t = dualchain_core::types::DEFAULT_EPOCH_LENGTH_ALPHA_BLOCKS)]
    epoch_length: u64,
    /// Benchmark mode: accept unsigned transactions (reports label such runs "unsigned").
    #[arg(long)]
    allow_unsigned: bool,
    /// Start of slot 0, unix milliseconds [default: now].
    #[arg(long)]
    genesis_time_ms: Option<u64>,
    /// Print a JSON summary instead of the bare hash.
    #[arg(long)]
    json: bool,
}

/// The consensus engines a chain can run.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Engine {
    /// Mysticeti's commit rule over the DAG: deterministic finality.
    DagBft,
    /// Leader slots decided by Snowball sampling of peers: probabilistic finality.
    Avalanche,
}

impl From<Engine> for ConsensusEngine {
    fn from(e: Engine) -> Self {
        match e {
            Engine::DagBft => ConsensusEngine::DagBft,
            Engine::Avalanche => ConsensusEngine::Avalanche,
        }
    }
}

fn default_keyring_path(out: &Path) -> PathBuf {
    out.with_extension("accounts.keys")
}

fn validator_name(dir: &Path, index: usize) -> String {
    dir.file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && n.len() <= 64)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("validator-{index}"))
}

fn generate_accounts(count: usize, seed: Option<u64>) -> anyhow::Result<Vec<AccountKeypair>> {
    if let Some(seed) = seed {
        return Ok(keyfile::seeded_account_keys(count, seed));
    }
    use rand::TryRngCore;
    let mut os = rand::rngs::OsRng;
    let seeds: Vec<[u8; 32]> = (0..count)
        .map(|_| {
            let mut s = [0u8; 32];
            os.try_fill_bytes(&mut s).map(|_| s)
        })
        .collect::<Result<_, _>>()
        .context("reading OS entropy for account keys")?;
    Ok(seeds.par_iter().map(AccountKeypair::from_seed).collect())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.out.exists() {
        bail!(
            "{} already exists; refusing to overwrite a genesis",
            args.out.display()
        );
    }
    let keyring = args
        .accounts_keyring
        .clone()
        .unwrap_or_else(|| default_keyring_path(&args.out));
    if args.accounts > 0 && keyring.exists() {
        bail!(
            "{} already exists; refusing to overwrite a keyring",
            keyring.display()
        );
    }
    if args.assets == 0 && args.accounts > 0 {
        bail!("--assets must be at least 1 to fund accounts");
    }

    let validators = args
        .validator_keys
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let key = keyfile::read_key::<ValidatorScheme>(dir)
                .with_context(|| format!("validator key {i}"))?;
            Ok(GenesisValidator {
                name: validator_name(dir, i),
                public_key: key.public().clone(),
                stake: args.stake,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let account_keys = generate_accounts(args.accounts, args.accounts_seed)?;
    let balances: BTreeMap<AssetId, u64> = (0..args.assets)
        .map(|a| (AssetId(a), args.balance))
        .collect();
    let accounts = account_keys
        .iter()
        .map(|k| GenesisAccount {
            address: Address::of(k.public()),
            balances: balances.clone(),
        })
        .collect();
    let sax_allocations = account_keys
        .iter()
        .filter(|_| args.sax > 0)
        .map(|k| SaxAllocation {
            address: Address::of(k.public()),
            amount: args.sax,
        })
        .collect();

    let genesis_time_ms = match args.genesis_time_ms {
        Some(t) => t,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("system clock before 1970")?
            .as_millis() as u64,
    };
    let genesis = Genesis {
        network: args.network.clone(),
        genesis_time_ms,
        epoch_length_alpha_blocks: args.epoch_length,
        allow_unsigned_transactions: args.allow_unsigned,
        alpha: ChainParams {
            block_time_ms: args.alpha_block_time_ms,
            p2p_port: args.alpha_p2p_port,
            api_port: args.alpha_api_port,
            consensus: args.alpha_consensus.into(),
        },
        delta: ChainParams {
            block_time_ms: args.delta_block_time_ms,
            p2p_port: args.delta_p2p_port,
            api_port: args.delta_api_port,
            consensus: args.delta_consensus.into(),
        },
        validators,
        accounts,
        sax_allocations,
        cross_chain: Default::default(),
    };
    genesis
        .validate()
        .context("the genesis parameters are invalid")?;

    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    if args.accounts > 0 {
        keyfile::write_keyring(&keyring, &account_keys)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    std::io::Write::write_all(&mut file, genesis.to_json().as_bytes())
        .with_context(|| format!("writing {}", args.out.display()))?;

    let hash = genesis.hash();
    tracing::info!(
        genesis = %args.out.display(),
        validators = genesis.validators.len(),
        accounts = genesis.accounts.len(),
        unsigned = genesis.allow_unsigned_transactions,
        "wrote genesis"
    );
    if args.json {
        let value = serde_json::json!({
            "genesis": args.out,
            "hash": hash.to_hex(),
            "validators": genesis.validators.len(),
            "accounts": genesis.accounts.len(),
            "accounts_keyring": if args.accounts > 0 { Some(&keyring) } else { None },
            "allow_unsigned_transactions": genesis.allow_unsigned_transactions,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{hash}");
    }
    Ok(())
}
