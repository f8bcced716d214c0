//! A Byzantine validator that floods its peers at line rate (the attacker of `dualchain
//! bench byzantine`).
//!
//! It holds a real validator key of the network, so it passes the identity hello and
//! gets a member's limits (32 MiB windows, many streams) — the strongest position a
//! peer can attack from. It takes no part in consensus: it reads the peers' vertices
//! only to learn the current epoch and round, answers nothing, and sends, as fast as
//! its connections take them (each `send` waits while the peer's queue is full):
//! - [`FloodKind::Orphans`]: validly signed vertices of the next rounds with
//!   `payload` bytes of transactions and parents nobody made (the pending-buffer
//!   attack of issue 21, item 2: 8 MiB orphans grew a victim by 1.3 GiB before the
//!   per-author budget);
//! - [`FloodKind::Garbage`]: random bytes framed as vertices (decode cost, score);
//! - [`FloodKind::Sync`]: sync requests for digests nobody has, asking for every
//!   round from 0 (the amplification attack of item 5).
//!
//! The transport runs on the calling thread's runtime, so the attacker's CPU is the
//! thread's CPU ([`thread_cpu_seconds`]), reported beside what the victims lose: on a
//! shared machine the attacker's own work takes cores from the victims, which a real
//! attacker on its own machine would not.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use dualchain_consensus::consensus::SyncRequest;
use dualchain_consensus::wire::NetMessage;
use dualchain_core::Digest;
use dualchain_core::crypto::{NetworkId, ValidatorKeypair};
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    Address, AssetId, ChainId, Output, SignedTransaction, Transaction, TxPayload, UnsignedVertex,
    ValidatorIndex, ValidatorSet, VertexRef, tx_limits,
};
use dualchain_net::{
    EventReceiver, Membership, Message, MessageKind, NetConfig, NetEvent, Network, PeerAddress,
    QuicNetwork,
};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Rounds above the highest one seen that orphans claim (the victims buffer only a few
/// rounds above their quorum round; beyond that they chase ancestors).
const ORPHAN_ROUND_SPAN: u64 = 16;
/// Frames queued per peer before `send` waits.
const SEND_QUEUE_FRAMES: usize = 4;
/// Bytes of one garbage frame.
const GARBAGE_BYTES: usize = 64 * 1024;
/// Made-up digests per sync request (well inside the request frame).
const SYNC_WANTED: usize = 256;
/// How long a sync request may wait for its (usually empty or refused) answer.
const SYNC_TIMEOUT: Duration = Duration::from_secs(2);
/// `sysconf(_SC_CLK_TCK)`, the unit of `/proc` CPU times: 100 on every Linux kernel
/// this runs on (it is fixed by the kernel's ABI, not by `HZ`).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;
/// Largest orphan payload the flooder builds (a vertex's own limit).
pub const MAX_ORPHAN_PAYLOAD: usize =
    dualchain_core::types::vertex_limits::MAX_VERTEX_PAYLOAD_BYTES;

/// What the flooder sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FloodKind {
    Orphans,
    Garbage,
    Sync,
}

/// Who the flooder is and whom it floods.
pub struct FloodTarget {
    pub key: Arc<ValidatorKeypair>,
    pub index: ValidatorIndex,
    pub validators: ValidatorSet,
    pub network: NetworkId,
    pub chain: ChainId,
    /// The port the replaced validator listened on (peers dial it).
    pub listen: std::net::SocketAddr,
    pub peers: Vec<PeerAddress>,
}

/// How it floods.
#[derive(Clone, Debug)]
pub struct FloodPlan {
    pub kinds: Vec<FloodKind>,
    /// Transaction bytes in each orphan vertex.
    pub orphan_payload: usize,
    pub seed: u64,
}

/// What the flooder did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FloodStats {
    pub seconds: f64,
    /// Messages and bytes the transport accepted for sending, all peers.
    pub messages: u64,
    pub bytes: u64,
    pub orphans: u64,
    pub garbage: u64,
    pub sync_requests: u64,
    /// Sends or requests that failed (peer gone, banned, queue closed).
    pub failures: u64,
    /// Connections to victims that closed (a ban, a replaced connection, a
    /// timeout).
    pub disconnects: u64,
    /// The attacker thread's CPU time.
    pub cpu_seconds: f64,
}

impl FloodStats {
    pub fn megabytes_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / self.seconds / 1e6
        } else {
            0.0
        }
    }
}

/// Runs the flood until `stop` resolves; on the calling thread's runtime (see the module
/// docs).
pub async fn flood(
    target: FloodTarget,
    plan: FloodPlan,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<FloodStats> {
    anyhow::ensure!(!plan.kinds.is_empty(), "a flood needs at least one kind");
    anyhow::ensure!(
        plan.orphan_payload <= MAX_ORPHAN_PAYLOAD,
        "orphan payload {} is above the vertex limit {MAX_ORPHAN_PAYLOAD}",
        plan.orphan_payload
    );
    let mut cfg = NetConfig::new(target.listen);
    cfg.peers = target.peers.clone();
    cfg.seed = plan.seed;
    // A few frames per peer: `send` then waits for the connection to take them (the
    // line rate), instead of queueing a thousand 8 MiB orphans in this process.
    cfg.send_queue_capacity = SEND_QUEUE_FRAMES;
    let membership = Membership::from_validator_set(&target.validators);
    let registry = prometheus::Registry::new();
    let (net, events) = QuicNetwork::start(
        cfg,
        target.key.clone(),
        target.network,
        membership,
        &registry,
    )
    .with_context(|| format!("the flooder listening on {}", target.listen))?;
    let net = Arc::new(net);
    let seen = Arc::new(Seen::default());
    let reader = tokio::spawn(read_events(events, seen.clone()));
    let cpu_before = thread_cpu_seconds();
    let started = Instant::now();
    let mut sender = Sender::new(&target, &plan, net.clone(), seen.clone());
    tokio::select! {
        () = sender.run(&plan.kinds) => {}
        () = stop => {}
    }
    let mut stats = sender.stats;
    stats.seconds = started.elapsed().as_secs_f64();
    stats.cpu_seconds = thread_cpu_seconds() - cpu_before;
    stats.disconnects = seen.disconnects.load(Ordering::Relaxed);
    reader.abort();
    net.shutdown().await;
    Ok(stats)
}

/// What the flooder learned from its peers' vertices.
#[derive(Default)]
struct Seen {
    epoch: AtomicU64,
    round: AtomicU64,
    disconnects: AtomicU64,
}

/// Reads the peers' broadcasts for the newest epoch and round; drops requests
/// unanswered (the flooder serves nothing).
async fn read_events(mut events: EventReceiver, seen: Arc<Seen>) {
    while let Some(event) = events.recv().await {
        match event {
            NetEvent::Broadcast { message, .. } if message.kind == MessageKind::Vertex => {
                if let Ok(NetMessage::Vertex(v)) =
                    NetMessage::from_canonical_bytes(&message.payload)
                {
                    let c = v.content();
                    seen.epoch.fetch_max(c.epoch, Ordering::Relaxed);
                    seen.round.fetch_max(c.round, Ordering::Relaxed);
                }
            }
            NetEvent::PeerDisconnected(_) => {
                seen.disconnects.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// Makes and sends the flood, counting it.
struct Sender {
    net: Arc<QuicNetwork>,
    seen: Arc<Seen>,
    key: Arc<ValidatorKeypair>,
    network: NetworkId,
    chain: ChainId,
    me: ValidatorIndex,
    authors: ValidatorIndex,
    filler: Vec<SignedTransaction>,
    rng: ChaCha8Rng,
    stats: FloodStats,
}

impl Sender {
    fn new(target: &FloodTarget, plan: &FloodPlan, net: Arc<QuicNetwork>, seen: Arc<Seen>) -> Self {
        Self {
            net,
            seen,
            key: target.key.clone(),
            network: target.network,
            chain: target.chain,
            me: target.index,
            authors: target.validators.len() as ValidatorIndex,
            filler: filler_transactions(target.chain, plan.orphan_payload),
            rng: ChaCha8Rng::seed_from_u64(plan.seed),
            stats: FloodStats::default(),
        }
    }

    /// Cycles through `kinds` for ever, each message to every connected peer.
    async fn run(&mut self, kinds: &[FloodKind]) {
        for &kind in kinds.iter().cycle() {
            let peers = self.net.connected_peers();
            if peers.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            match kind {
                FloodKind::Orphans => {
                    let message = self.orphan();
                    self.send_all(&peers, message).await;
                    self.stats.orphans += 1;
                }
                FloodKind::Garbage => {
                    let mut bytes = vec![0u8; GARBAGE_BYTES];
                    self.rng.fill_bytes(&mut bytes);
                    let message = Message::new(self.chain, MessageKind::Vertex, bytes);
                    self.send_all(&peers, message).await;
                    self.stats.garbage += 1;
                }
                FloodKind::Sync => self.sync_requests(&peers).await,
            }
        }
    }

    async fn send_all(&mut self, peers: &[dualchain_net::PeerId], message: Message) {
        for &peer in peers {
            let bytes = message.payload.len() as u64;
            match self.net.send(peer, message.clone()).await {
                Ok(()) => {
                    self.stats.messages += 1;
                    self.stats.bytes += bytes;
                }
                Err(_) => self.stats.failures += 1,
            }
        }
    }

    /// A signed vertex a few rounds ahead whose parents (one per author, so it
    /// verifies) nobody made.
    fn orphan(&mut self) -> Message {
        let round =
            self.seen.round.load(Ordering::Relaxed) + 1 + self.stats.orphans % ORPHAN_ROUND_SPAN;
        let parents = (0..self.authors)
            .map(|author| VertexRef {
                author,
                digest: Digest(self.rng.random()),
            })
            .collect();
        let vertex = UnsignedVertex {
            chain: self.chain,
            epoch: self.seen.epoch.load(Ordering::Relaxed),
            round,
            author: self.me,
            parents,
            transactions: self.filler.clone(),
            timestamp_ms: dualchain_testkit::unix_ms(),
        }
        .sign(&self.key, self.network);
        let payload = NetMessage::Vertex(Arc::new(vertex)).to_canonical_bytes();
        Message::new(self.chain, MessageKind::Vertex, payload)
    }

    /// One request per peer, all at once, for digests nobody has and every round.
    async fn sync_requests(&mut self, peers: &[dualchain_net::PeerId]) {
        let round = self.seen.round.load(Ordering::Relaxed);
        let request = SyncRequest {
            epoch: self.seen.epoch.load(Ordering::Relaxed),
            wanted: (0..SYNC_WANTED)
                .map(|i| {
                    (
                        round.saturating_sub(i as u64 % 8),
                        Digest(self.rng.random()),
                    )
                })
                .collect(),
            have_through_round: 0,
        };
        let payload = Bytes::from(NetMessage::SyncRequest(request).to_canonical_bytes());
        let asks = peers.iter().map(|&peer| {
            let message = Message::new(self.chain, MessageKind::FetchVertices, payload.clone());
            self.net.request(peer, message, SYNC_TIMEOUT)
        });
        for answer in futures::future::join_all(asks).await {
            match answer {
                Ok(_) => {
                    self.stats.messages += 1;
                    self.stats.bytes += payload.len() as u64;
                }
                Err(_) => self.stats.failures += 1,
            }
        }
        self.stats.sync_requests += peers.len() as u64;
    }
}

/// Transfers of the largest size a transaction may have, `payload` bytes of them in
/// all: what an orphan carries. Unsigned and from nobody: no victim gets far enough
/// to look.
fn filler_transactions(chain: ChainId, payload: usize) -> Vec<SignedTransaction> {
    let outputs: Vec<Output> = (0..tx_limits::MAX_OUTPUTS)
        .map(|i| Output {
            to: Address([i as u8; 32]),
            asset: AssetId::NATIVE,
            amount: 1,
        })
        .collect();
    let mut txs = Vec::new();
    let mut bytes = 0;
    let mut nonce = 0;
    while bytes < payload {
        let tx = Transaction {
            chain,
            sender: Address([0xfe; 32]),
            nonce,
            fee: 1,
            payload: TxPayload::Transfer {
                outputs: outputs.clone(),
            },
        }
        .unsigned();
        bytes += tx.encoded_len();
        nonce += 1;
        txs.push(tx);
    }
    txs
}

/// CPU seconds (user and system) of the calling thread.
pub fn thread_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after ") ".
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the state.
    let ticks: u64 = fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    ticks as f64 / CLOCK_TICKS_PER_SECOND
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::types::Vertex;

    #[test]
    fn an_orphan_carries_the_payload_asked_for_and_no_more_than_one_transaction_over() {
        for payload in [1, 64 * 1024, 8 << 20] {
            let txs = filler_transactions(ChainId::Delta, payload);
            let bytes: usize = txs.iter().map(SignedTransaction::encoded_len).sum();
            let largest = txs[0].encoded_len();
            assert!(
                bytes >= payload && bytes < payload + largest,
                "{payload}: {bytes}"
            );
            assert!(largest <= tx_limits::MAX_TX_BYTES);
        }
    }

    #[test]
    fn the_thread_cpu_time_is_read_and_grows_with_work() {
        let before = thread_cpu_seconds();
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_seconds() - before >= 0.1);
    }

    /// The flooder against one real QUIC victim: it is admitted as the member it
    /// claims to be, and what arrives are validly signed vertices of its own, ahead
    /// of the victim's round, that reference parents nobody made.
    #[test]
    fn orphans_reach_a_real_victim_signed_by_the_attackers_key() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let keys: Vec<Arc<ValidatorKeypair>> = (0..4u8)
                .map(|i| Arc::new(ValidatorKeypair::from_seed(&[i; 32])))
                .collect();
            let set = ValidatorSet::new(0, keys.iter().map(|k| (k.public().clone(), 1))).unwrap();
            let network = NetworkId(Digest([7; 32]));
            let ports = dualchain_testkit::free_ports(2).unwrap();
            let addr = |p: u16| std::net::SocketAddr::from(([127, 0, 0, 1], p));
            let registry = prometheus::Registry::new();
            let (victim, mut events) = QuicNetwork::start(
                NetConfig::new(addr(ports[0])),
                keys[0].clone(),
                network,
                Membership::from_validator_set(&set),
                &registry,
            )
            .unwrap();
            let target = FloodTarget {
                key: keys[3].clone(),
                index: 3,
                validators: set.clone(),
                network,
                chain: ChainId::Delta,
                listen: addr(ports[1]),
                peers: vec![PeerAddress::Socket(addr(ports[0]))],
            };
            let plan = FloodPlan {
                kinds: vec![FloodKind::Orphans],
                orphan_payload: 64 * 1024,
                seed: 1,
            };
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let flooder = tokio::spawn(flood(target, plan, async {
                let _ = stop_rx.await;
            }));
            let mut orphans = 0;
            let deadline = Instant::now() + Duration::from_secs(20);
            while orphans < 3 && Instant::now() < deadline {
                let Ok(Some(event)) =
                    tokio::time::timeout(Duration::from_secs(1), events.recv()).await
                else {
                    continue;
                };
                let NetEvent::Broadcast { message, .. } = event else {
                    continue;
                };
                let Ok(NetMessage::Vertex(v)) = NetMessage::from_canonical_bytes(&message.payload)
                else {
                    panic!("an orphan that does not decode");
                };
                let v: &Vertex = &v;
                assert_eq!(v.content().author, 3);
                v.verify(&set, network)
                    .expect("a validly signed vertex of the set");
                assert!(v.content().round >= 1);
                assert_eq!(v.content().parents.len(), 4);
                assert!(v.content().payload_bytes() >= 64 * 1024);
                orphans += 1;
            }
            assert_eq!(orphans, 3, "the victim received orphans");
            stop_tx.send(()).unwrap();
            let stats = flooder.await.unwrap().unwrap();
            assert!(
                stats.orphans >= 3 && stats.bytes > 3 * 64 * 1024,
                "{stats:?}"
            );
            victim.shutdown().await;
        });
    }
}
