//! Parameters of one whole-node simulation run.

use std::time::Duration;

use dualchain_core::types::{
    ChainParams, ConsensusEngine, MAX_EPOCH_LENGTH_ALPHA_BLOCKS, MAX_VALIDATORS, ValidatorIndex,
};
use dualchain_net::LinkLatency;

use crate::seams::StoreBug;

/// Virtual Unix time at which every simulation starts (its genesis time).
pub const SIM_EPOCH_MS: u64 = 1_767_225_600_000;
/// Alpha blocks per epoch in a simulated network unless set: a default run (about
/// seven 15 s Alpha blocks) crosses three boundaries.
pub const DEFAULT_EPOCH_LENGTH: u64 = 2;

/// The oldest genesis a run starts from (a day: the simulated clock starts long
/// after the Unix epoch, so any age up to this is a valid time).
pub const MAX_GENESIS_AGE_MS: u64 = 24 * 3_600_000;

/// Which signatures the simulated validators make and check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signatures {
    /// Keyed-hash signatures of ML-DSA-87's length (`Keypair::simulated`): every
    /// signature is still made, carried and checked, but costs microseconds, so the run
    /// measures the protocol rather than lattice arithmetic.
    #[default]
    Simulated,
    /// Real ML-DSA-87, as a validator signs (several times slower to simulate).
    MlDsa,
}

/// One run, fixed by its seed.
#[derive(Clone, Debug)]
pub struct NodeSimConfig {
    pub validators: usize,
    /// Byzantine validators (one behaviour each, rotating with the seed).
    pub byzantine: usize,
    /// Probability that any one message is lost, on both chains, all run long.
    pub loss: f64,
    /// A partition into two random sides from `fault_start_ms`, for this long.
    pub partition_ms: u64,
    /// Honest validators (never the observer) that crash one after another from
    /// `fault_start_ms` and restart from their stores after `crash_ms`.
    pub crashes: usize,
    pub crash_ms: u64,
    /// Crash exactly these validators instead of seeded ones (tests).
    pub crash_nodes: Option<Vec<ValidatorIndex>>,
    pub fault_start_ms: u64,
    /// Offered Delta load (transactions per virtual second) from 1 s to `load_ms`
    /// (at least 2 s, so some load is offered).
    pub tps: u64,
    pub load_ms: u64,
    /// After the load, how long every accepted transaction may take to commit.
    pub drain_ms: u64,
    /// Client accounts (each has at most one transaction in flight).
    pub accounts: usize,
    /// A client resubmits a transaction not committed after this long.
    pub retry_ms: u64,
    pub alpha_block_ms: u64,
    pub delta_block_ms: u64,
    /// Alpha blocks per epoch: short, so a run crosses several boundaries (each one
    /// fixes the next set on Alpha and is attested to Delta).
    pub epoch_length_alpha_blocks: u64,
    /// How long before the validators start the genesis time lies (a network whose
    /// pods came up slowly): past Alpha's reach, every validator first probes its
    /// peers' heads.
    pub genesis_age_ms: u64,
    /// One validator whose wall clock (both chains') is this many milliseconds off,
    /// from every start: its vertices carry skewed times, its ages are misjudged.
    pub clock_skew: Option<(ValidatorIndex, i64)>,
    /// The consensus engines of Alpha and Delta (written into the genesis).
    pub engines: (ConsensusEngine, ConsensusEngine),
    /// Validator-set sizes to go through, one change after another (each submitted
    /// once the previous one took effect on Alpha): a larger size adds joiners (nodes
    /// outside the genesis set that follow from the start), a smaller one has honest
    /// validators leave. Empty: the genesis set all run long.
    pub reconfigure: Vec<usize>,
    pub latency: LinkLatency,
    pub signatures: Signatures,
    pub seed: u64,
    /// A bug planted in one validator's store (tests of the simulator itself).
    pub bug: Option<(ValidatorIndex, StoreBug)>,
}

impl NodeSimConfig {
    /// A fault-free run of `validators` with the chains' real block times.
    pub fn new(validators: usize, seed: u64) -> Self {
        Self {
            validators,
            byzantine: 0,
            loss: 0.0,
            partition_ms: 0,
            crashes: 0,
            crash_ms: 5_000,
            crash_nodes: None,
            fault_start_ms: 6_000,
            tps: 1_000,
            load_ms: 30_000,
            drain_ms: 60_000,
            accounts: 8_000,
            retry_ms: 12_000,
            alpha_block_ms: ChainParams::alpha_default().block_time_ms,
            delta_block_ms: ChainParams::delta_default().block_time_ms,
            epoch_length_alpha_blocks: DEFAULT_EPOCH_LENGTH,
            genesis_age_ms: 0,
            clock_skew: None,
            engines: (ConsensusEngine::DagBft, ConsensusEngine::DagBft),
            reconfigure: Vec::new(),
            latency: LinkLatency {
                base: Duration::from_millis(10),
                jitter: Duration::from_millis(40),
            },
            signatures: Signatures::default(),
            seed,
            bug: None,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_VALIDATORS).contains(&self.validators) {
            return Err(format!(
                "validators must be 1..={MAX_VALIDATORS}, got {}",
                self.validators
            ));
        }
        let crashes = self.crash_nodes.as_ref().map_or(self.crashes, Vec::len);
        if self.byzantine + crashes >= self.validators {
            return Err(format!(
                "{} Byzantine plus {crashes} crashing validators leave no honest validator that stays up to observe the network (of {})",
                self.byzantine, self.validators
            ));
        }
        if !(0.0..1.0).contains(&self.loss) {
            return Err(format!("loss must be in [0, 1), got {}", self.loss));
        }
        if self.genesis_age_ms > MAX_GENESIS_AGE_MS {
            return Err(format!(
                "the genesis age must be at most {MAX_GENESIS_AGE_MS} ms, got {}",
                self.genesis_age_ms
            ));
        }
        if self.load_ms < 2_000 {
            return Err(format!(
                "load must run until at least 2 s (it starts at 1 s), got {} ms",
                self.load_ms
            ));
        }
        if self.alpha_block_ms == 0
            || self.delta_block_ms == 0
            || !self.alpha_block_ms.is_multiple_of(self.delta_block_ms)
        {
            return Err(format!(
                "block times must be positive and Alpha's ({}) a multiple of Delta's ({})",
                self.alpha_block_ms, self.delta_block_ms
            ));
        }
        if !(1..=MAX_EPOCH_LENGTH_ALPHA_BLOCKS).contains(&self.epoch_length_alpha_blocks) {
            return Err(format!(
                "the epoch length must be 1..={MAX_EPOCH_LENGTH_ALPHA_BLOCKS} Alpha blocks, got {}",
                self.epoch_length_alpha_blocks
            ));
        }
        self.validate_reconfigure(crashes)?;
        if self.tps > 0 && self.accounts == 0 {
            return Err("a load needs at least one client account".into());
        }
        if let Some(nodes) = &self.crash_nodes
            && let Some(bad) = nodes.iter().find(|n| usize::from(**n) >= self.validators)
        {
            return Err(format!("crash node {bad} is not a validator"));
        }
        Ok(())
    }

    /// Nodes the run starts: the genesis validators and every joiner of
    /// `reconfigure`.
    pub fn nodes(&self) -> usize {
        self.validators + crate::reconfigure::joiners_of(self.validators, &self.reconfigure)
    }

    /// Each size is a set the network can run (more than three times the Byzantine
    /// validators, at most the set limit); leavers are honest validators that neither
    /// crash nor observe, genesis ones first, then those that joined before.
    fn validate_reconfigure(&self, crashes: usize) -> Result<(), String> {
        let mut size = self.validators;
        let mut can_leave = self.validators - self.byzantine - crashes - 1;
        for &next in &self.reconfigure {
            if next == size {
                return Err(format!(
                    "--reconfigure {next}: the set already has {size} validators"
                ));
            }
            if next <= 3 * self.byzantine {
                return Err(format!(
                    "--reconfigure {next}: {} Byzantine validators need a set of at least {}",
                    self.byzantine,
                    3 * self.byzantine + 1
                ));
            }
            if next > size {
                can_leave += next - size;
            } else if size - next > can_leave {
                return Err(format!(
                    "--reconfigure {next} after {size} takes {} validators out, but only {can_leave} \
                     are honest, never crash, do not observe and have not left yet",
                    size - next
                ));
            } else {
                can_leave -= size - next;
            }
            size = next;
        }
        if self.nodes() > MAX_VALIDATORS {
            return Err(format!(
                "--reconfigure adds {} joiners to {} validators: more than {MAX_VALIDATORS} nodes",
                self.nodes() - self.validators,
                self.validators
            ));
        }
        Ok(())
    }

    /// When the last fault ends.
    pub fn faults_end_ms(&self) -> u64 {
        let crashes = self.crash_nodes.as_ref().map_or(self.crashes, Vec::len) as u64;
        let partition_end = if self.partition_ms > 0 {
            self.fault_start_ms + self.partition_ms
        } else {
            0
        };
        let crash_end = if crashes > 0 {
            self.fault_start_ms + 1_000 * (crashes - 1) + self.crash_ms
        } else {
            0
        };
        partition_end.max(crash_end)
    }
}
