//! `dualchain bench net`: two endpoints on loopback, dualchain transport next to a
//! raw quinn baseline measured in the same run.
//!
//! The baseline uses the same TLS configuration (hybrid X25519MLKEM768 only), the
//! same QUIC transport parameters and the same frames (same header, same payloads),
//! written frame by frame on one unidirectional stream and parsed with the same
//! batched frame reader the transport uses; it has no identity layer, no send queue
//! or writer task, no dedup, no scoring, no fault checks, no metrics and no event
//! channel (it counts frames where it reads them). The ratio is therefore the cost
//! of everything this crate adds on top of quinn. Rounds alternate
//! baseline and dualchain so background load on a shared machine hits both alike;
//! the reported figure of each is the median over rounds.
//!
//! Throughput counts payload bytes (1 MB = 10^6 bytes) from the first send to the
//! last delivery at the receiver. Latency is a sequential request/response loop (one
//! outstanding request: "low load"), 64-byte requests answered with 1 KiB.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use dualchain_contract::stats;
use dualchain_core::crypto::{NetworkId, ValidatorKeypair};
use dualchain_core::types::ChainId;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;

use crate::identity::{MemberSet, Membership, PeerId};
use crate::network::{EventReceiver, NetEvent, Network};
use crate::tls;
use crate::transport::frames::FrameStreamReader;
use crate::transport::{NetConfig, QuicNetwork, quic_transport_config};
use crate::wire::{FRAME_HEADER_LEN, FrameHeader, KindClass, Message, MessageKind};

/// The network of the two bench endpoints.
const BENCH_NETWORK: NetworkId = NetworkId(dualchain_core::Digest([0xbe; 32]));

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchParams {
    pub sizes: Vec<(usize, usize)>,
    pub latency_samples: usize,
    pub rounds: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Rate {
    pub mb_per_s: f64,
    pub msgs_per_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ThroughputRow {
    pub message_bytes: usize,
    pub messages: usize,
    pub dualchain: Rate,
    pub raw_quinn: Rate,
    /// dualchain / raw quinn (messages per second).
    pub ratio: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Percentiles {
    pub p50_us: f64,
    pub p99_us: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct LatencyRow {
    pub samples: usize,
    pub request_bytes: usize,
    pub response_bytes: usize,
    pub dualchain: Percentiles,
    pub raw_quinn: Percentiles,
}

#[derive(Clone, Debug, Serialize)]
pub struct Targets {
    pub throughput_ratio_min: f64,
    pub throughput_met: bool,
    pub p99_max_us: f64,
    pub latency_met: bool,
}

/// The `--json` document.
#[derive(Clone, Debug, Serialize)]
pub struct BenchNetReport {
    pub rounds: usize,
    pub key_exchange: &'static str,
    pub throughput: Vec<ThroughputRow>,
    pub latency: LatencyRow,
    pub targets: Targets,
}

const REQUEST_BYTES: usize = 64;
const RESPONSE_BYTES: usize = 1024;
const LATENCY_WARMUP: usize = 200;

fn payloads(size: usize, count: usize, round: usize) -> Vec<Bytes> {
    (0..count)
        .map(|i| {
            let mut p = vec![0xA5u8; size];
            let tag = ((round as u64) << 40 | i as u64).to_le_bytes();
            let n = tag.len().min(size);
            p[..n].copy_from_slice(&tag[..n]);
            Bytes::from(p)
        })
        .collect()
}

/// Median of the rounds (at least one round always runs).
fn median(values: Vec<f64>) -> f64 {
    stats::median(&values).expect("at least one round")
}

/// Nearest-rank percentile of one round's sorted latencies, µs.
fn percentile(sorted: &[Duration], q: f64) -> f64 {
    stats::percentile(sorted, q).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

struct DualchainPair {
    a: QuicNetwork,
    b: QuicNetwork,
    b_id: PeerId,
    b_events: EventReceiver,
}

async fn dualchain_pair() -> anyhow::Result<DualchainPair> {
    let mut rng = ChaCha20Rng::seed_from_u64(0xBE7C);
    let ka = Arc::new(ValidatorKeypair::generate(&mut rng));
    let kb = Arc::new(ValidatorKeypair::generate(&mut rng));
    let membership = Membership::new(MemberSet::new(
        0,
        [ka.public().clone(), kb.public().clone()],
    ));
    let mut config = NetConfig::new(loopback());
    config.heartbeat_interval = Duration::from_secs(5);
    config.heartbeat_timeout = Duration::from_secs(5);
    let (b, b_events) = QuicNetwork::start(
        config.clone(),
        kb.clone(),
        BENCH_NETWORK,
        membership.clone(),
        &prometheus::Registry::new(),
    )?;
    config.peers = vec![crate::transport::PeerAddress::Socket(b.local_addr())];
    let (a, a_events) = QuicNetwork::start(
        config,
        ka,
        BENCH_NETWORK,
        membership,
        &prometheus::Registry::new(),
    )?;
    // A's own inbound events are not part of the measurement: drain them.
    tokio::spawn(drain(a_events));
    let b_id = PeerId::of(kb.public());
    if !a.wait_connected(b_id, Duration::from_secs(10)).await {
        bail!("the two bench endpoints did not connect within 10 s");
    }
    Ok(DualchainPair {
        a,
        b,
        b_id,
        b_events,
    })
}

/// Two connected dualchain transports on 127.0.0.1 in this process (QUIC with the
/// hybrid post-quantum key exchange, ML-DSA-87 identities, the framed wire protocol):
/// what `bench pipeline` carries vertices over to measure the transport's CPU per
/// byte, both ends included.
pub struct Loopback(DualchainPair);

impl Loopback {
    pub async fn connect() -> anyhow::Result<Self> {
        Ok(Self(dualchain_pair().await?))
    }

    /// Sends every payload from one end to the other as a vertex message and waits
    /// until all arrived; the time it took. Payloads must differ: the receiver drops
    /// repeats.
    pub async fn carry(&mut self, payloads: &[Bytes]) -> anyhow::Result<Duration> {
        dualchain_throughput(&mut self.0, payloads, MessageKind::Vertex).await
    }
}

async fn drain(mut events: EventReceiver) {
    while events.recv().await.is_some() {}
}

async fn dualchain_throughput(
    pair: &mut DualchainPair,
    payloads: &[Bytes],
    kind: MessageKind,
) -> anyhow::Result<Duration> {
    let count = payloads.len();
    let mut events = std::mem::replace(&mut pair.b_events, EventReceiver::channel(1).1);
    let receiver = tokio::spawn(async move {
        let mut got = 0;
        while got < count {
            match events.recv().await {
                Some(NetEvent::Broadcast { .. }) => got += 1,
                Some(_) => {}
                None => break,
            }
        }
        (events, got)
    });
    let started = Instant::now();
    for payload in payloads {
        let message = Message::new(ChainId::Delta, kind, payload.clone());
        pair.a.send(pair.b_id, message).await?;
    }
    let (events, got) = tokio::time::timeout(Duration::from_secs(120), receiver)
        .await
        .context("dualchain throughput run timed out")??;
    pair.b_events = events;
    if got != count {
        bail!("dualchain delivered {got} of {count} messages");
    }
    Ok(started.elapsed())
}

async fn dualchain_latency(
    pair: &mut DualchainPair,
    samples: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut events = std::mem::replace(&mut pair.b_events, EventReceiver::channel(1).1);
    let responder = tokio::spawn(async move {
        let answer = Bytes::from(vec![0x5Au8; RESPONSE_BYTES]);
        while let Some(event) = events.recv().await {
            if let NetEvent::Request(request) = event {
                if request.message.payload.is_empty() {
                    break;
                }
                let _ = request.respond(answer.clone());
            }
        }
        events
    });
    let mut times = Vec::with_capacity(samples);
    for i in 0..(samples + LATENCY_WARMUP) {
        let request = Message::new(
            ChainId::Delta,
            MessageKind::FetchVertices,
            vec![(i % 251) as u8; REQUEST_BYTES],
        );
        let started = Instant::now();
        let answer = pair
            .a
            .request(pair.b_id, request, Duration::from_secs(5))
            .await?;
        let elapsed = started.elapsed();
        if answer.len() != RESPONSE_BYTES {
            bail!("unexpected response size {}", answer.len());
        }
        if i >= LATENCY_WARMUP {
            times.push(elapsed);
        }
    }
    // An empty request stops the responder so the event channel can be reused.
    let stop = Message::new(ChainId::Delta, MessageKind::FetchVertices, Vec::new());
    let _ = pair
        .a
        .request(pair.b_id, stop, Duration::from_millis(200))
        .await;
    pair.b_events = responder.await?;
    Ok(times)
}

struct RawPair {
    client: quinn::Endpoint,
    server: quinn::Endpoint,
    conn: quinn::Connection,
    server_conn: quinn::Connection,
}

async fn raw_pair() -> anyhow::Result<RawPair> {
    let transport = quic_transport_config(Duration::from_secs(10), 128);
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(tls::server_config()?));
    server_config.transport_config(transport.clone());
    let server = quinn::Endpoint::server(server_config, loopback())?;
    let mut client_config = quinn::ClientConfig::new(Arc::new(tls::client_config()?));
    client_config.transport_config(transport);
    let mut client = quinn::Endpoint::client(loopback())?;
    client.set_default_client_config(client_config);
    let connecting = client.connect(server.local_addr()?, tls::SERVER_NAME)?;
    let accept = async {
        let incoming = server.accept().await.context("server endpoint closed")?;
        anyhow::Ok(incoming.await?)
    };
    let (conn, server_conn) = tokio::try_join!(async { anyhow::Ok(connecting.await?) }, accept)?;
    Ok(RawPair {
        client,
        server,
        conn,
        server_conn,
    })
}

/// Reads one frame the plain way: header, then the payload chunk by chunk.
async fn raw_read_frame(recv: &mut quinn::RecvStream) -> anyhow::Result<Option<Bytes>> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes([header[3], header[4], header[5], header[6]]) as usize;
    let mut parts = bytes::BytesMut::new();
    let mut first: Option<Bytes> = None;
    let mut got = 0;
    while got < len {
        let chunk = recv
            .read_chunk(len - got, true)
            .await?
            .context("stream ended inside a frame")?;
        got += chunk.bytes.len();
        match first.take() {
            None if got == len && parts.is_empty() => return Ok(Some(chunk.bytes)),
            None if parts.is_empty() => first = Some(chunk.bytes),
            Some(f) => {
                parts.extend_from_slice(&f);
                parts.extend_from_slice(&chunk.bytes);
            }
            None => parts.extend_from_slice(&chunk.bytes),
        }
    }
    if let Some(f) = first {
        parts.extend_from_slice(&f);
    }
    Ok(Some(parts.freeze()))
}

async fn raw_throughput(pair: &RawPair, payloads: &[Bytes]) -> anyhow::Result<Duration> {
    let count = payloads.len();
    let server_conn = pair.server_conn.clone();
    let receiver = tokio::spawn(async move {
        let mut recv = server_conn.accept_uni().await?;
        // The same batched frame reader as the transport's broadcast streams.
        let mut reader = FrameStreamReader::new();
        let mut frames = Vec::with_capacity(64);
        let mut got = 0;
        while got < count {
            frames.clear();
            match reader
                .read_batch(&mut recv, KindClass::Broadcast, &mut frames, 64)
                .await
            {
                Ok(true) => got += frames.len(),
                Ok(false) => break,
                Err(e) => bail!("raw quinn stream failed: {e:?}"),
            }
        }
        anyhow::Ok(got)
    });
    let started = Instant::now();
    let mut send = pair.conn.open_uni().await?;
    for payload in payloads {
        let frame = Message::new(ChainId::Delta, MessageKind::Transactions, payload.clone())
            .encode_frame()?;
        send.write_chunk(frame).await?;
    }
    let got = tokio::time::timeout(Duration::from_secs(120), receiver)
        .await
        .context("raw quinn throughput run timed out")???;
    let elapsed = started.elapsed();
    send.finish()?;
    if got != count {
        bail!("raw quinn delivered {got} of {count} messages");
    }
    Ok(elapsed)
}

async fn raw_latency(pair: &RawPair, samples: usize) -> anyhow::Result<Vec<Duration>> {
    let server_conn = pair.server_conn.clone();
    let server = tokio::spawn(async move {
        let answer = Message::new(
            ChainId::Delta,
            MessageKind::Vertices,
            vec![0x5Au8; RESPONSE_BYTES],
        )
        .encode_frame()?;
        while let Ok((mut send, mut recv)) = server_conn.accept_bi().await {
            let Some(request) = raw_read_frame(&mut recv).await? else {
                continue;
            };
            if request.is_empty() {
                break;
            }
            send.write_chunk(answer.clone()).await?;
            send.finish()?;
        }
        anyhow::Ok(())
    });
    let mut times = Vec::with_capacity(samples);
    for i in 0..(samples + LATENCY_WARMUP + 1) {
        let last = i == samples + LATENCY_WARMUP;
        let payload = if last {
            Vec::new()
        } else {
            vec![(i % 251) as u8; REQUEST_BYTES]
        };
        let frame =
            Message::new(ChainId::Delta, MessageKind::FetchVertices, payload).encode_frame()?;
        let started = Instant::now();
        let (mut send, mut recv) = pair.conn.open_bi().await?;
        send.write_chunk(frame).await?;
        send.finish()?;
        if last {
            break;
        }
        let answer = raw_read_frame(&mut recv)
            .await?
            .context("no response frame")?;
        let elapsed = started.elapsed();
        if answer.len() != RESPONSE_BYTES {
            bail!("unexpected response size {}", answer.len());
        }
        if i >= LATENCY_WARMUP {
            times.push(elapsed);
        }
    }
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .context("raw quinn responder did not stop")???;
    Ok(times)
}

fn rate(size: usize, count: usize, elapsed: Duration) -> Rate {
    let secs = elapsed.as_secs_f64().max(1e-9);
    Rate {
        mb_per_s: (size * count) as f64 / 1e6 / secs,
        msgs_per_s: count as f64 / secs,
    }
}

fn percentiles(mut runs: Vec<Vec<Duration>>) -> Percentiles {
    // Percentiles per round, then the median round (as for throughput).
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    for run in runs.iter_mut() {
        run.sort();
        p50.push(percentile(run, 0.50));
        p99.push(percentile(run, 0.99));
    }
    Percentiles {
        p50_us: median(p50),
        p99_us: median(p99),
    }
}

/// Runs the whole benchmark (async; see `cli::run_bench_net` for the blocking form).
pub async fn bench_net(params: &BenchParams) -> anyhow::Result<BenchNetReport> {
    let rounds = params.rounds.max(1);
    let mut ours = dualchain_pair().await?;
    let raw = raw_pair().await?;
    let mut throughput = Vec::new();
    for &(size, count) in &params.sizes {
        let mut ours_secs = Vec::new();
        let mut raw_secs = Vec::new();
        for round in 0..rounds {
            let data = payloads(size, count, round);
            raw_secs.push(raw_throughput(&raw, &data).await?.as_secs_f64());
            ours_secs.push(
                dualchain_throughput(&mut ours, &data, MessageKind::Transactions)
                    .await?
                    .as_secs_f64(),
            );
        }
        let ours_rate = rate(size, count, Duration::from_secs_f64(median(ours_secs)));
        let raw_rate = rate(size, count, Duration::from_secs_f64(median(raw_secs)));
        throughput.push(ThroughputRow {
            message_bytes: size,
            messages: count,
            ratio: ours_rate.msgs_per_s / raw_rate.msgs_per_s,
            dualchain: ours_rate,
            raw_quinn: raw_rate,
        });
    }
    let mut ours_latency = Vec::new();
    let mut raw_latency_runs = Vec::new();
    for _ in 0..rounds {
        raw_latency_runs.push(raw_latency(&raw, params.latency_samples.max(1)).await?);
        ours_latency.push(dualchain_latency(&mut ours, params.latency_samples.max(1)).await?);
    }
    let latency = LatencyRow {
        samples: params.latency_samples,
        request_bytes: REQUEST_BYTES,
        response_bytes: RESPONSE_BYTES,
        dualchain: percentiles(ours_latency),
        raw_quinn: percentiles(raw_latency_runs),
    };
    ours.a.shutdown().await;
    ours.b.shutdown().await;
    raw.conn.close(0u32.into(), b"done");
    raw.client.close(0u32.into(), b"done");
    raw.server.close(0u32.into(), b"done");
    let ratio_min = 0.8;
    let p99_max_us = 1000.0;
    Ok(BenchNetReport {
        rounds,
        key_exchange: "X25519MLKEM768",
        targets: Targets {
            throughput_ratio_min: ratio_min,
            throughput_met: throughput.iter().all(|t| t.ratio >= ratio_min),
            p99_max_us,
            latency_met: latency.dualchain.p99_us < p99_max_us,
        },
        throughput,
        latency,
    })
}

// Keep the header type referenced for readers of the baseline: it parses exactly
// the frames `FrameHeader` describes, minus the checks.
const _: fn(&[u8; FRAME_HEADER_LEN]) -> Result<FrameHeader, crate::wire::WireError> =
    FrameHeader::decode;
