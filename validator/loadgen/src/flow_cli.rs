//! `dualchain sax …`, `dualchain gov …` and `dualchain validator …`: drive the
//! cross-chain flow by hand on a running network — lock sAX on Alpha, unlock on
//! Delta, propose, vote and finalize on Delta, join or leave the validator set — and show
//! both chains' records of a lock or a proposal, each read with its proof (see
//! `dualchain_client::crosschain`).
//!
//! Every command sends one operation at the sender's next nonce, then (unless
//! `--no-wait`) waits for its effect, printing the record as JSON.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use dualchain_client::crosschain::{ChainClient, OPERATION_FEE, Sender};
use dualchain_core::Digest;
use dualchain_core::crypto::{AccountScheme, ValidatorScheme};
use dualchain_core::keyfile::{read_key, read_keyring};
use dualchain_core::types::{
    ADMITTED_LOCK, ChainId, CrossChainOp, EpochRecord, GovernanceChange, GovernanceExecution,
    LockRecord, LockStatus, ParameterChange, ParameterName, ParameterRecord, PendingSetChanges,
    ProposalRecord, ProposalStatus, RecordKind, StakeRecord, StakeStatus, set_change_keypair,
    set_change_op,
};
use serde_json::json;

use crate::cli::{parse_duration, runtime};

/// Where the chains are and who sends.
#[derive(clap::Args, Debug, Clone)]
pub struct FlowArgs {
    /// Alpha gRPC API of a validator.
    #[arg(long, default_value = "http://127.0.0.1:3030", value_name = "URL")]
    pub alpha: String,
    /// Delta gRPC API of a validator.
    #[arg(long, default_value = "http://127.0.0.1:4030", value_name = "URL")]
    pub delta: String,
    /// Directory of the sender's account key (`dualchain keygen --kind account`). Not
    /// needed by `show`.
    #[arg(long, value_name = "DIR", conflicts_with = "keyring")]
    pub key: Option<PathBuf>,
    /// Or a keyring file (`dualchain genesis` writes `<genesis>.accounts.keys`) and the
    /// index of the sender's account in it.
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    #[arg(long, default_value_t = 0, requires = "keyring")]
    pub account: usize,
    /// Return once the transaction is admitted instead of waiting for its effect.
    #[arg(long)]
    pub no_wait: bool,
    /// Longest wait for an effect.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `dualchain sax`: sAX locks, the stake they give on Delta, and their release.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum SaxCommand {
    /// Lock sAX on Alpha; prints the lock id and, once attested, the stake on Delta.
    Lock {
        #[command(flatten)]
        flow: FlowArgs,
        /// sAX to lock.
        #[arg(long)]
        amount: u64,
        /// How long the lock holds (from now).
        #[arg(long = "for", value_parser = parse_duration, value_name = "DURATION")]
        duration: Duration,
    },
    /// Ask Delta to end a stake (after its time lock); waits for Alpha's release.
    Unlock {
        #[command(flatten)]
        flow: FlowArgs,
        /// The lock id `sax lock` printed.
        #[arg(long)]
        lock: Digest,
    },
    /// Both chains' records of a lock.
    Show {
        #[command(flatten)]
        flow: FlowArgs,
        #[arg(long)]
        lock: Digest,
    },
}

/// `dualchain gov`: proposals and votes on Delta, results executed on Alpha.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum GovCommand {
    /// Propose a change, executed on Alpha if the vote passes: set a parameter
    /// (`--parameter`, `--value`), take a validator out of the set
    /// (`--remove-validator`) or set a validator's stake (`--validator`, `--stake`) at
    /// the next epoch boundary after execution, or admit a key to join without a lock
    /// (`--admit-validator`, `--stake`; its holder then runs `validator join
    /// --admitted`). Needs stake (voting weight) on Delta.
    #[command(group(
        clap::ArgGroup::new("change")
            .required(true)
            .args(["parameter", "remove_validator", "validator", "admit_validator"])
    ))]
    Propose {
        #[command(flatten)]
        flow: FlowArgs,
        #[command(flatten)]
        change: ProposedChange,
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        voting_period: Duration,
    },
    /// Vote on an open proposal with the sender's whole stake.
    Vote {
        #[command(flatten)]
        flow: FlowArgs,
        #[arg(long)]
        proposal: Digest,
        /// Vote against instead of for.
        #[arg(long)]
        reject: bool,
    },
    /// Close a proposal's vote after its deadline; a passed one is then executed on
    /// Alpha (waits for that).
    Finalize {
        #[command(flatten)]
        flow: FlowArgs,
        #[arg(long)]
        proposal: Digest,
    },
    /// A proposal on Delta and its parameter on Alpha.
    Show {
        #[command(flatten)]
        flow: FlowArgs,
        #[arg(long)]
        proposal: Digest,
    },
}

/// The change `gov propose` proposes (the command's group lets one kind through).
#[derive(clap::Args, Debug, Clone)]
pub struct ProposedChange {
    /// Parameter name (lowercase letters, digits, `_.-`).
    #[arg(long, requires = "value")]
    parameter: Option<String>,
    /// The parameter's new value.
    #[arg(long, requires = "parameter")]
    value: Option<u64>,
    /// The key id (hex, as `validator join` prints it and the events name it) of a
    /// validator to take out of the set.
    #[arg(long, value_name = "KEY_ID")]
    remove_validator: Option<Digest>,
    /// The key id of a validator to re-weight to `--stake`.
    #[arg(long, value_name = "KEY_ID", requires = "stake")]
    validator: Option<Digest>,
    /// The key id (`dualchain keygen --show`) of a validator to admit with `--stake`:
    /// it may then join without a lock.
    #[arg(long, value_name = "KEY_ID", requires = "stake")]
    admit_validator: Option<Digest>,
    /// The validator's new or admitted stake: its weight in every quorum of both
    /// chains.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    stake: Option<u64>,
}

impl ProposedChange {
    /// The change the flags ask for: a parameter, or one of (remove, re-weight,
    /// admit) a validator by key id.
    fn into_change(self) -> anyhow::Result<GovernanceChange> {
        let member = (self.remove_validator, self.validator, self.admit_validator);
        let change = match (self.parameter, self.value, member, self.stake) {
            (Some(parameter), Some(value), (None, None, None), None) => {
                let name = ParameterName::new(&parameter)
                    .map_err(|e| anyhow::anyhow!("--parameter {parameter:?}: {e}"))?;
                ParameterChange { name, value }.into()
            }
            (None, None, (Some(member), None, None), None) => {
                GovernanceChange::RemoveValidator { member }
            }
            (None, None, (None, Some(member), None), Some(stake)) if stake > 0 => {
                GovernanceChange::ValidatorStake { member, stake }
            }
            (None, None, (None, None, Some(member)), Some(stake)) if stake > 0 => {
                GovernanceChange::AdmitValidator { member, stake }
            }
            _ => anyhow::bail!(
                "give one change: --parameter and --value, --remove-validator, --validator and --stake, or --admit-validator and --stake (a stake of at least 1)"
            ),
        };
        Ok(change)
    }
}

/// `dualchain validator`: a validator's own changes to the set.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ValidatorCommand {
    /// Ask to leave the validator set at the next epoch boundary. The validator's key
    /// signs the request, which goes to Alpha from the validator's own set-change
    /// account (derived from its key: no funded account needed, no fee), or from the
    /// account `--key` (or `--keyring` and `--account`) names, which pays the fee.
    /// Waits (unless `--no-wait`) until Alpha runs the epoch whose set no longer
    /// holds the validator; the validator's chains stop at their boundaries (each
    /// chain's health then says so).
    Leave {
        #[command(flatten)]
        flow: FlowArgs,
        /// Directory of the validator's key (`dualchain keygen --kind validator`; a
        /// node's key directory).
        #[arg(long, value_name = "DIR")]
        validator_key: PathBuf,
    },
    /// Ask to join the validator set at the next epoch boundary, with an sAX lock of
    /// the sender (`--key`, or `--keyring` and `--account`, which pays the fees) as
    /// its stake: an existing one (`--lock`), or one this command makes first
    /// (`--stake`, held `--lock-for`); or, with `--admitted`, no lock: the stake
    /// governance admitted the key with (`gov propose --admit-validator`). The
    /// validator's key signs the request. Run the validator with `dualchain run
    /// --join` so its chains follow and it votes from the boundary on. Waits (unless
    /// `--no-wait`) until Alpha runs the epoch whose set holds the validator.
    #[command(group(clap::ArgGroup::new("stake_from").required(true).args(["lock", "stake", "admitted"])))]
    Join {
        #[command(flatten)]
        flow: FlowArgs,
        /// Directory of the joining validator's key (its node's key directory).
        #[arg(long, value_name = "DIR")]
        validator_key: PathBuf,
        /// A lock of the sender's (`sax lock` prints its id) to bond as the stake.
        #[arg(long)]
        lock: Option<Digest>,
        /// sAX to lock first and bond as the stake (at least the network's
        /// `min_validator_stake`).
        #[arg(long)]
        stake: Option<u64>,
        /// How long a lock made by `--stake` holds; a bonded lock cannot be released
        /// before its validator left the set anyway.
        #[arg(long, default_value = "365days", value_parser = parse_duration, requires = "stake")]
        lock_for: Duration,
        /// Join with the stake governance admitted this key with, without a lock.
        #[arg(long)]
        admitted: bool,
    },
}

fn sender(flow: &FlowArgs) -> anyhow::Result<Sender> {
    let key = match (&flow.key, &flow.keyring) {
        (Some(dir), _) => read_key::<AccountScheme>(dir)
            .with_context(|| format!("reading the account key in {}", dir.display()))?,
        (None, Some(file)) => {
            let keys = read_keyring(file)
                .with_context(|| format!("reading the keyring {}", file.display()))?;
            let count = keys.len();
            keys.into_iter().nth(flow.account).with_context(|| {
                format!(
                    "--account {} is outside the keyring's {count} accounts",
                    flow.account
                )
            })?
        }
        (None, None) => {
            anyhow::bail!("the sender's key is needed: --key DIR, or --keyring FILE --account N")
        }
    };
    Ok(Sender::Key(Box::new(key)))
}

async fn chains(flow: &FlowArgs) -> anyhow::Result<(ChainClient, ChainClient)> {
    Ok((
        ChainClient::connect(&flow.alpha, ChainId::Alpha).await?,
        ChainClient::connect(&flow.delta, ChainId::Delta).await?,
    ))
}

fn print(value: serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
}

/// `dualchain sax …`.
pub fn sax_main(command: SaxCommand) -> anyhow::Result<()> {
    runtime()?.block_on(sax(command))
}

/// `dualchain gov …`.
pub fn gov_main(command: GovCommand) -> anyhow::Result<()> {
    runtime()?.block_on(gov(command))
}

/// `dualchain validator …`.
pub fn validator_main(command: ValidatorCommand) -> anyhow::Result<()> {
    runtime()?.block_on(validator(command))
}

async fn validator(command: ValidatorCommand) -> anyhow::Result<()> {
    match command {
        ValidatorCommand::Leave {
            flow,
            validator_key,
        } => leave(flow, validator_key).await,
        ValidatorCommand::Join {
            flow,
            validator_key,
            lock,
            stake,
            lock_for,
            admitted,
        } => {
            let stake = match (lock, stake, admitted) {
                (Some(lock), None, false) => Stake::Lock(lock),
                (None, Some(amount), false) => Stake::New { amount, lock_for },
                (None, None, true) => Stake::Lock(ADMITTED_LOCK),
                _ => anyhow::bail!("one of --lock, --stake or --admitted is needed"),
            };
            join(flow, validator_key, stake).await
        }
    }
}

/// Where a join's stake comes from.
enum Stake {
    Lock(Digest),
    New { amount: u64, lock_for: Duration },
}

/// `dualchain validator join`: bonds a lock of the sender's and asks for the key's
/// place in the next epoch's set; re-sent once per epoch while it is neither pending
/// nor applied (a request is signed for one epoch).
async fn join(flow: FlowArgs, validator_key: PathBuf, stake: Stake) -> anyhow::Result<()> {
    let key = read_key::<ValidatorScheme>(&validator_key)
        .with_context(|| format!("reading the validator key in {}", validator_key.display()))?;
    let validator = key.public().id().to_hex();
    let alpha = ChainClient::connect(&flow.alpha, ChainId::Alpha).await?;
    let sender = sender(&flow)?;
    let lock = match stake {
        Stake::Lock(lock) => lock,
        Stake::New { amount, lock_for } => {
            let unlock_at_ms = dualchain_testkit::unix_ms()
                .saturating_add(u64::try_from(lock_for.as_millis()).unwrap_or(u64::MAX));
            let op = CrossChainOp::SaxLock {
                amount,
                unlock_at_ms,
            };
            let lock = alpha.send(&sender, op).await?;
            print(
                json!({ "lock": lock.to_hex(), "amount": amount, "unlock_at_unix_ms": unlock_at_ms }),
            );
            // The join goes at the sender's next nonce: after the lock is committed.
            alpha
                .wait_for::<LockRecord>(RecordKind::Lock, lock, flow.timeout, |l| {
                    l.status == LockStatus::Locked
                })
                .await?;
            lock
        }
    };
    let request = SetChangeRequest {
        lock: Some(lock),
        fee: OPERATION_FEE,
    };
    let epoch = until_set_change(&alpha, &flow, &key, &sender, request).await?;
    if let Some(epoch) = epoch {
        // An admitted join bonds no lock: say so rather than print the zero digest.
        let lock = (lock != ADMITTED_LOCK).then(|| lock.to_hex());
        print(json!({ "validator": validator, "member_from_epoch": epoch, "lock": lock }));
    }
    Ok(())
}

/// A set-change request, as [`until_set_change`] sends it.
struct SetChangeRequest {
    /// A join's stake; `None` for a leave.
    lock: Option<Digest>,
    fee: u64,
}

/// Sends `request` for `key` from `sender` (signed for Alpha's current epoch) until
/// Alpha runs an epoch whose set holds the key (a join) or no longer does (a
/// leave); returns that epoch, or `None` with `--no-wait` once it is sent. A request
/// is signed for the epoch it is sent in: one that reaches Alpha after the boundary
/// is refused (it cannot be replayed later), so a request neither pending nor
/// applied when the epoch changed is sent again, at most once per epoch.
async fn until_set_change(
    alpha: &ChainClient,
    flow: &FlowArgs,
    key: &dualchain_core::crypto::ValidatorKeypair,
    sender: &Sender,
    request: SetChangeRequest,
) -> anyhow::Result<Option<u64>> {
    let validator = key.public().id().to_hex();
    let joining = request.lock.is_some();
    let deadline = tokio::time::Instant::now() + flow.timeout;
    let mut sent_in = None;
    loop {
        let (epoch, set) = alpha.current_set().await?;
        if set.index_of(key.public()).is_some() == joining {
            anyhow::ensure!(
                joining || sent_in.is_some(),
                "validator {validator} is not in the set of epoch {epoch} on {}",
                flow.alpha
            );
            return Ok(Some(epoch));
        }
        let pending: PendingSetChanges = alpha
            .decoded(RecordKind::PendingSetChanges, Digest::ZERO)
            .await?
            .unwrap_or_default();
        let is_pending = pending.0.iter().any(|c| c.key() == key.public());
        if !is_pending && sent_in != Some(epoch) {
            let op = set_change_op(alpha.network(), key, &sender.address(), request.lock, epoch);
            let transaction = alpha.send_with_fee(sender, op, request.fee).await?;
            print(json!({
                "validator": validator,
                "sender": sender.address().to_string(),
                "lock": request.lock.map(|l| l.to_hex()),
                "transaction": transaction.to_hex(),
                "signed_for_epoch": epoch,
            }));
            sent_in = Some(epoch);
            if flow.no_wait {
                return Ok(None);
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        anyhow::ensure!(
            !left.is_zero(),
            "validator {validator} is {} the set of epoch {epoch} after {:?}{}",
            if joining { "not in" } else { "still in" },
            flow.timeout,
            match request.lock {
                Some(lock) => format!(
                    " (a join Alpha refuses, e.g. a lock below the minimum stake or not the \
                     sender's, is not retried within an epoch: `dualchain sax show --lock {lock}` \
                     shows the lock)"
                ),
                None => String::new(),
            }
        );
        alpha
            .wait_for::<EpochRecord>(RecordKind::Epoch, Digest::ZERO, left, |r| r.epoch > epoch)
            .await?;
    }
}

/// `dualchain validator leave`.
async fn leave(flow: FlowArgs, validator_key: PathBuf) -> anyhow::Result<()> {
    let key = read_key::<ValidatorScheme>(&validator_key)
        .with_context(|| format!("reading the validator key in {}", validator_key.display()))?;
    let validator = key.public().id().to_hex();
    let alpha = ChainClient::connect(&flow.alpha, ChainId::Alpha).await?;
    let (sender, fee) = if flow.key.is_none() && flow.keyring.is_none() {
        let own = set_change_keypair(&key);
        (Sender::Key(Box::new(own)), 0)
    } else {
        (sender(&flow)?, OPERATION_FEE)
    };
    let request = SetChangeRequest { lock: None, fee };
    if let Some(epoch) = until_set_change(&alpha, &flow, &key, &sender, request).await? {
        print(json!({ "validator": validator, "left_at_epoch": epoch }));
    }
    Ok(())
}

async fn sax(command: SaxCommand) -> anyhow::Result<()> {
    match command {
        SaxCommand::Lock {
            flow,
            amount,
            duration,
        } => {
            let (alpha, delta) = chains(&flow).await?;
            let unlock_at_ms = dualchain_testkit::unix_ms()
                .saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
            let op = CrossChainOp::SaxLock {
                amount,
                unlock_at_ms,
            };
            let lock = alpha.send(&sender(&flow)?, op).await?;
            print(json!({ "lock": lock.to_hex(), "unlock_at_unix_ms": unlock_at_ms }));
            if !flow.no_wait {
                delta
                    .wait_for::<StakeRecord>(RecordKind::Stake, lock, flow.timeout, |s| {
                        s.status == StakeStatus::Active
                    })
                    .await?;
                show_lock(&alpha, &delta, lock).await?;
            }
        }
        SaxCommand::Unlock { flow, lock } => {
            let (alpha, delta) = chains(&flow).await?;
            delta
                .send(&sender(&flow)?, CrossChainOp::SaxUnlock { lock })
                .await?;
            if !flow.no_wait {
                alpha
                    .wait_for::<LockRecord>(RecordKind::Lock, lock, flow.timeout, |l| {
                        matches!(l.status, LockStatus::Released { .. })
                    })
                    .await?;
            }
            show_lock(&alpha, &delta, lock).await?;
        }
        SaxCommand::Show { flow, lock } => {
            let (alpha, delta) = chains(&flow).await?;
            show_lock(&alpha, &delta, lock).await?;
        }
    }
    Ok(())
}

async fn gov(command: GovCommand) -> anyhow::Result<()> {
    match command {
        GovCommand::Propose {
            flow,
            change,
            voting_period,
        } => {
            let change = change.into_change()?;
            let (alpha, delta) = chains(&flow).await?;
            let op = CrossChainOp::Propose {
                change,
                voting_period_ms: u64::try_from(voting_period.as_millis()).unwrap_or(u64::MAX),
            };
            let proposal = delta.send(&sender(&flow)?, op).await?;
            if !flow.no_wait {
                delta
                    .wait_for::<ProposalRecord>(
                        RecordKind::Proposal,
                        proposal,
                        flow.timeout,
                        |_| true,
                    )
                    .await?;
            }
            show_proposal(&alpha, &delta, proposal).await?;
        }
        GovCommand::Vote {
            flow,
            proposal,
            reject,
        } => {
            let (alpha, delta) = chains(&flow).await?;
            let before = delta
                .decoded::<ProposalRecord>(RecordKind::Proposal, proposal)
                .await?
                .context("no such proposal on Delta")?;
            let op = CrossChainOp::Vote {
                proposal,
                approve: !reject,
            };
            delta.send(&sender(&flow)?, op).await?;
            if !flow.no_wait {
                let cast = before.votes_for + before.votes_against;
                delta
                    .wait_for::<ProposalRecord>(RecordKind::Proposal, proposal, flow.timeout, |p| {
                        p.votes_for + p.votes_against > cast || p.status != ProposalStatus::Open
                    })
                    .await?;
            }
            show_proposal(&alpha, &delta, proposal).await?;
        }
        GovCommand::Finalize { flow, proposal } => {
            let (alpha, delta) = chains(&flow).await?;
            let op = CrossChainOp::FinalizeProposal { proposal };
            delta.send(&sender(&flow)?, op).await?;
            if !flow.no_wait {
                let closed = delta
                    .wait_for::<ProposalRecord>(RecordKind::Proposal, proposal, flow.timeout, |p| {
                        p.status != ProposalStatus::Open
                    })
                    .await?;
                if closed.status == ProposalStatus::Passed {
                    alpha
                        .wait_for::<GovernanceExecution>(
                            RecordKind::Governance,
                            proposal,
                            flow.timeout,
                            |_| true,
                        )
                        .await?;
                }
            }
            show_proposal(&alpha, &delta, proposal).await?;
        }
        GovCommand::Show { flow, proposal } => {
            let (alpha, delta) = chains(&flow).await?;
            show_proposal(&alpha, &delta, proposal).await?;
        }
    }
    Ok(())
}

async fn show_lock(alpha: &ChainClient, delta: &ChainClient, lock: Digest) -> anyhow::Result<()> {
    let on_alpha = alpha.decoded::<LockRecord>(RecordKind::Lock, lock).await?;
    let on_delta = delta
        .decoded::<StakeRecord>(RecordKind::Stake, lock)
        .await?;
    print(json!({
        "lock": lock.to_hex(),
        "alpha": on_alpha.map(|l| json!({
            "owner": l.owner.to_string(),
            "amount": l.amount,
            "unlock_at_unix_ms": l.unlock_at_ms,
            "status": format!("{:?}", l.status),
        })),
        "delta": on_delta.map(|s| json!({
            "owner": s.owner.to_string(),
            "amount": s.amount,
            "unlock_at_unix_ms": s.unlock_at_ms,
            "status": format!("{:?}", s.status),
        })),
    }));
    Ok(())
}

async fn show_proposal(
    alpha: &ChainClient,
    delta: &ChainClient,
    proposal: Digest,
) -> anyhow::Result<()> {
    let record = delta
        .decoded::<ProposalRecord>(RecordKind::Proposal, proposal)
        .await?;
    let parameter = match record.as_ref().map(|p| &p.change) {
        Some(GovernanceChange::Parameter(change)) => {
            alpha
                .decoded::<ParameterRecord>(RecordKind::Parameter, Digest(change.name.record_id()))
                .await?
        }
        _ => None,
    };
    let executed = alpha
        .decoded::<GovernanceExecution>(RecordKind::Governance, proposal)
        .await?;
    print(json!({
        "proposal": proposal.to_hex(),
        "delta": record.map(|p| json!({
            "change": change_json(&p.change),
            "voting_deadline_unix_ms": p.voting_deadline_ms,
            "execute_by_unix_ms": p.execute_by_ms,
            "total_stake": p.total_stake,
            "votes_for": p.votes_for,
            "votes_against": p.votes_against,
            "status": format!("{:?}", p.status),
        })),
        "alpha_executed_at_unix_ms": executed.map(|e| e.executed_at_ms),
        "alpha_parameter": parameter.map(|p| json!({
            "value": p.value,
            "set_by_proposal": p.proposal.to_hex(),
        })),
    }));
    Ok(())
}

fn change_json(change: &GovernanceChange) -> serde_json::Value {
    match change {
        GovernanceChange::Parameter(p) => {
            json!({ "parameter": p.name.as_str(), "value": p.value })
        }
        GovernanceChange::RemoveValidator { member } => {
            json!({ "remove_validator": member.to_hex() })
        }
        GovernanceChange::ValidatorStake { member, stake } => {
            json!({ "validator": member.to_hex(), "stake": stake })
        }
        GovernanceChange::AdmitValidator { member, stake } => {
            json!({ "admit_validator": member.to_hex(), "stake": stake })
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        gov: GovCommand,
    }

    fn proposed(args: &[&str]) -> Result<GovernanceChange, String> {
        let argv = ["gov", "propose", "--key", "k"]
            .into_iter()
            .chain(args.iter().copied());
        let cli = Cli::try_parse_from(argv).map_err(|e| e.kind().to_string())?;
        let GovCommand::Propose { change, .. } = cli.gov else {
            unreachable!("parsed a propose command")
        };
        change.into_change().map_err(|e| e.to_string())
    }

    #[test]
    fn propose_takes_exactly_one_change() {
        let id = Digest([0xab; 32]).to_hex();
        assert_eq!(
            proposed(&["--parameter", "fee.min", "--value", "2"]).unwrap(),
            ParameterChange {
                name: ParameterName::new("fee.min").unwrap(),
                value: 2
            }
            .into()
        );
        assert_eq!(
            proposed(&["--remove-validator", &id]).unwrap(),
            GovernanceChange::RemoveValidator {
                member: Digest([0xab; 32])
            }
        );
        assert_eq!(
            proposed(&["--validator", &id, "--stake", "9"]).unwrap(),
            GovernanceChange::ValidatorStake {
                member: Digest([0xab; 32]),
                stake: 9
            }
        );
        assert_eq!(
            proposed(&["--admit-validator", &id, "--stake", "4"]).unwrap(),
            GovernanceChange::AdmitValidator {
                member: Digest([0xab; 32]),
                stake: 4
            }
        );
        for refused in [
            &[][..],
            &["--admit-validator", &id],
            &["--stake", "3"],
            &["--remove-validator", &id, "--stake", "3"],
            &["--validator", &id, "--admit-validator", &id, "--stake", "3"],
            &["--parameter", "fee.min"],
            &["--validator", &id],
            &["--validator", &id, "--stake", "0"],
            &[
                "--remove-validator",
                &id,
                "--parameter",
                "x",
                "--value",
                "1",
            ],
            &["--remove-validator", "not-hex"],
        ] {
            assert!(proposed(refused).is_err(), "{refused:?} is refused");
        }
        assert!(
            proposed(&["--parameter", "Fee", "--value", "1"])
                .unwrap_err()
                .contains("--parameter \"Fee\"")
        );
    }
}
