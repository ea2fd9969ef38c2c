//! `auditwatch run` with a `kind: kafka` source: a member of a Kafka consumer group, with
//! one pipeline (parser and engine) per assigned partition, run in parallel, and the
//! sinks shared by all of them.
//!
//! - **Partition = ordering and state.** A Vault cluster's entries are in one partition
//!   (the shipper keys records by cluster), so each partition's engine sees one cluster's
//!   whole stream in order, and platform-wide rules (silence, storms, bursts) are per
//!   cluster. With `key_as_stream`, each record key of a partition has its own engine.
//! - **Threads.** The consumer thread polls, hands each partition's records to its worker
//!   (a bounded channel: a slow engine slows only the poll, never loses records), commits
//!   offsets and runs the rebalance callbacks. Each worker owns its partition's pipeline.
//! - **At least once, without repeats.** After each batch a worker notes how many alerts
//!   every sink had been handed ([`Sinks::handed`]) with the offset that follows the
//!   batch; once every sink is done with them ([`Sinks::settled_through`]: the JSON lines
//!   written, the email outbox written, Alertmanager accepted) that offset may be
//!   committed. Offsets are committed by the consumer thread only (no auto commit).
//!   Records redelivered after a crash raise their alerts again with the same `id`; each
//!   sink's delivery ledger (`state.dir`) drops the ones it delivered.
//! - **State moves with its partition.** A partition's engine state is written to the
//!   compacted `state_topic` under the key `group/topic/partition/chunk`, with the offset
//!   it corresponds to: on revocation (before anyone else may read the partition), every
//!   `snapshot_interval_secs`, and at the drain; only when every alert of the records before
//!   that offset is settled, so resuming there loses nothing. On assignment the member reads
//!   the newest snapshot, restores the engine and starts at its offset; records between it
//!   and the group's committed offset are processed again for the state only, their alerts
//!   (delivered before the commit) dropped. A member that dies is covered by its last
//!   periodic snapshot.
//! - **Snapshot format.** Postcard (the same serde form as `state.dir`'s file) cut in
//!   chunks of [`CHUNK_BYTES`]; each chunk value starts with a header: magic, format
//!   version, generation (the writer's clock, ns), index, count and the CRC-32 of the whole
//!   body. The reader keeps the newest generation whose chunks are all there and whose
//!   CRC matches; anything else is set aside with the reason logged, and the partition
//!   starts from its committed offset with fresh state.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::alert::Alert;
use crate::config::Config;
use crate::metrics::{EntryType, Metrics, RebalanceKind, WriteOutcome};
use crate::parse::ParseError;
use crate::pipeline::{Pipeline, PipelineStateIn, PipelineStateOut};
use crate::rules::RuleSet;
use crate::sink::Sinks;
use crate::source::kafka::{frame_record, KafkaSource, MAX_KEY_BYTES, MAX_STREAMS_PER_PARTITION};
use crate::util::lograte::LogRate;
use crate::util::sync::lock;

use super::{DaemonError, Options};

/// A topic and partition.
type Tp = (String, i32);

/// Why a record key gets no engine of its own, when it does not: a key over
/// [`MAX_KEY_BYTES`] (the key is kept per stream, and in its snapshots), or a partition that
/// already has [`MAX_STREAMS_PER_PARTITION`] keyed streams.
fn key_refused(key_bytes: usize, keyed_streams: usize) -> Option<&'static str> {
    if key_bytes > MAX_KEY_BYTES {
        Some("a record key over 256 bytes")
    } else if keyed_streams >= MAX_STREAMS_PER_PARTITION {
        Some("more record keys in one partition than streams with their own engine (64)")
    } else {
        None
    }
}

/// Bytes of snapshot per record of the state topic (under Kafka's default 1 MB limit).
pub const CHUNK_BYTES: usize = 512 << 10;

/// Chunks of one snapshot at most (1 GiB): a state record claiming more is refused before
/// anything is allocated for it (a forged or damaged `count` would otherwise size a table
/// of up to 2^32 slots).
pub const MAX_CHUNKS: u32 = ((1usize << 30) / CHUNK_BYTES) as u32;

const MAGIC: &[u8; 4] = b"AWKS";
/// The snapshot format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Magic, version (u32), generation (u64), index (u32), count (u32), CRC-32 of the body
/// (u32), body offset (i64); little-endian.
const HEADER: usize = 4 + 4 + 8 + 4 + 4 + 4 + 8;

/// Batches of records waiting for one partition's worker.
const WORKER_QUEUE: usize = 4;
/// Records taken from one poll round before they are handed to the workers.
const POLL_ROUND: usize = 2048;
/// Offsets are committed at most this often.
const COMMIT_EVERY: Duration = Duration::from_millis(200);
/// How often consumer lag is measured (a request to the broker per partition).
const LAG_EVERY: Duration = Duration::from_secs(5);
/// How long a revoked partition's worker may take to settle its alerts and snapshot.
const HANDOFF_WAIT: Duration = Duration::from_secs(20);

#[derive(Serialize)]
struct SnapOut<'a> {
    written_unix_ms: i64,
    build: &'a str,
    /// Per stream (record key; `None`: the keyless one), its engines.
    streams: Vec<(Option<&'a [u8]>, PipelineStateOut<'a>)>,
}

#[derive(Deserialize)]
struct SnapIn {
    written_unix_ms: i64,
    build: String,
    streams: Vec<(Option<Vec<u8>>, PipelineStateIn)>,
}

/// One record of the state topic, decoded.
#[derive(Debug, Clone, PartialEq)]
struct Chunk {
    generation: u64,
    index: u32,
    count: u32,
    crc: u32,
    offset: i64,
    data: Vec<u8>,
}

fn encode_chunks(body: &[u8], offset: i64, generation: u64) -> Vec<Vec<u8>> {
    let crc = crc32fast::hash(body);
    let parts: Vec<&[u8]> = if body.is_empty() {
        vec![&[][..]]
    } else {
        body.chunks(CHUNK_BYTES).collect()
    };
    let count = parts.len() as u32;
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut v = Vec::with_capacity(HEADER + p.len());
            v.extend_from_slice(MAGIC);
            v.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            v.extend_from_slice(&generation.to_le_bytes());
            v.extend_from_slice(&(i as u32).to_le_bytes());
            v.extend_from_slice(&count.to_le_bytes());
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&offset.to_le_bytes());
            v.extend_from_slice(p);
            v
        })
        .collect()
}

fn decode_chunk(v: &[u8]) -> Result<Chunk, String> {
    if v.len() < HEADER || &v[..4] != MAGIC {
        return Err("not an auditwatch state record".into());
    }
    let u32_at = |i: usize| u32::from_le_bytes(v[i..i + 4].try_into().expect("4 bytes"));
    let version = u32_at(4);
    if version != FORMAT_VERSION {
        return Err(format!(
            "format version {version}; this build reads version {FORMAT_VERSION} only"
        ));
    }
    let c = Chunk {
        generation: u64::from_le_bytes(v[8..16].try_into().expect("8 bytes")),
        index: u32_at(16),
        count: u32_at(20),
        crc: u32_at(24),
        offset: i64::from_le_bytes(v[28..36].try_into().expect("8 bytes")),
        data: v[HEADER..].to_vec(),
    };
    if c.count == 0 || c.index >= c.count {
        return Err("chunk index out of range".into());
    }
    if c.count > MAX_CHUNKS {
        return Err(format!(
            "a snapshot of {} chunks, over the {MAX_CHUNKS} this build reads",
            c.count
        ));
    }
    Ok(c)
}

/// The key of a partition's snapshot chunk in the state topic.
fn chunk_key(group: &str, tp: &Tp, index: u32) -> String {
    format!("{group}/{}/{}/{index}", tp.0, tp.1)
}

/// The partition a state-topic key names, with the chunk index.
fn parse_key(group: &str, key: &[u8]) -> Option<(Tp, u32)> {
    let k = std::str::from_utf8(key).ok()?;
    let rest = k.strip_prefix(group)?.strip_prefix('/')?;
    let (rest, index) = rest.rsplit_once('/')?;
    let (topic, partition) = rest.rsplit_once('/')?;
    Some((
        (topic.to_string(), partition.parse().ok()?),
        index.parse().ok()?,
    ))
}

/// Chunks of one partition's snapshots as read from the state topic: per generation,
/// the chunks seen. Only the two newest generations are kept (bounded memory).
#[derive(Default)]
struct Generations {
    gens: BTreeMap<u64, Vec<Option<Chunk>>>,
}

impl Generations {
    fn add(&mut self, c: Chunk) {
        let slots = self
            .gens
            .entry(c.generation)
            .or_insert_with(|| vec![None; c.count as usize]);
        if slots.len() == c.count as usize {
            let i = c.index as usize;
            slots[i] = Some(c);
        }
        while self.gens.len() > 2 {
            self.gens.pop_first();
        }
    }

    /// The newest complete snapshot whose checksum matches: its offset and body.
    fn newest(self) -> Option<(i64, Vec<u8>, u64)> {
        for (generation, slots) in self.gens.into_iter().rev() {
            if slots.iter().any(Option::is_none) {
                tracing::warn!(generation, "a partition's newest state snapshot is incomplete (its writer stopped while writing it): an older one is used");
                continue;
            }
            let chunks: Vec<Chunk> = slots.into_iter().flatten().collect();
            let mut body = Vec::with_capacity(chunks.iter().map(|c| c.data.len()).sum());
            for c in &chunks {
                body.extend_from_slice(&c.data);
            }
            if crc32fast::hash(&body) != chunks[0].crc {
                tracing::warn!(
                    generation,
                    "a partition's state snapshot fails its checksum: an older one is used"
                );
                continue;
            }
            return Some((chunks[0].offset, body, generation));
        }
        None
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// One stream's pipeline within a partition.
struct Stream {
    key: Option<Vec<u8>>,
    pipeline: Pipeline,
}

/// What a worker hands back when its partition is revoked.
struct Handoff {
    /// The offset to commit: every alert of the records before it is settled.
    commit: Option<i64>,
    /// The snapshot chunks at that offset, when every alert was settled.
    snapshot: Option<Vec<Vec<u8>>>,
}

enum Work {
    Records(Vec<OwnedMessage>),
}

struct Worker {
    tx: SyncSender<Work>,
    handle: JoinHandle<Handoff>,
    stop: Arc<AtomicBool>,
}

/// What every thread of the Kafka daemon shares.
struct Shared {
    src: KafkaSource,
    name: String,
    detection: Mutex<(Arc<Config>, Arc<RuleSet>)>,
    sinks: Mutex<Sinks>,
    metrics: Arc<Metrics>,
    producer: ThreadedProducer<DefaultProducerContext>,
    max_line: usize,
    tick: Option<Duration>,
    workers: Mutex<HashMap<Tp, Worker>>,
    /// Offsets the workers may commit, taken by the consumer thread.
    commits: Mutex<HashMap<Tp, i64>>,
    /// Rebalances so far: records polled before one are not handed over after it.
    generation: AtomicU64,
    /// Set when the drain begins: a partition assigned after it is not taken (the member
    /// is leaving the group; the next owner restores it from what the last owner left).
    draining: AtomicBool,
    /// The `partition` label of each assigned partition.
    labels: Mutex<HashMap<Tp, String>>,
    log: Mutex<LogRate>,
}

impl Shared {
    fn group(&self) -> &str {
        &self.src.group_id
    }

    /// Produce a partition's snapshot chunks to the state topic; `flush` waits for the
    /// broker to have them.
    fn publish(&self, tp: &Tp, chunks: Vec<Vec<u8>>, flush: bool) -> bool {
        let bytes: usize = chunks.iter().map(Vec::len).sum();
        for (i, c) in chunks.iter().enumerate() {
            let key = chunk_key(self.group(), tp, i as u32);
            let mut rec = BaseRecord::to(&self.src.state_topic)
                .key(key.as_str())
                .payload(c.as_slice());
            // The producer's queue may be full for a moment: wait for room.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                        if Instant::now() < deadline =>
                    {
                        rec = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => {
                        tracing::error!(topic = %tp.0, partition = tp.1, error = %e, "cannot write the partition's state snapshot");
                        self.snapshot_outcome(false);
                        return false;
                    }
                }
            }
        }
        if flush {
            if let Err(e) = self.producer.flush(Duration::from_secs(10)) {
                tracing::error!(topic = %tp.0, partition = tp.1, error = %e, "the partition's state snapshot was not confirmed by the broker");
                self.snapshot_outcome(false);
                return false;
            }
        }
        let k = &self.metrics.kafka;
        k.snapshot_bytes.set(bytes as i64);
        k.snapshot_timestamp.set(now_ms() / 1000);
        self.snapshot_outcome(true);
        tracing::debug!(topic = %tp.0, partition = tp.1, bytes, "partition state snapshot written");
        true
    }

    fn snapshot_outcome(&self, ok: bool) {
        let o = if ok {
            WriteOutcome::Ok
        } else {
            WriteOutcome::Error
        };
        self.metrics
            .kafka
            .snapshots
            .with_label_values(&[o.as_str()])
            .inc();
    }
}

/// A partition's worker: its pipelines and where it stands.
struct Part {
    tp: Tp,
    shared: Arc<Shared>,
    streams: Vec<Stream>,
    /// The offset after the last record processed.
    next: Option<i64>,
    /// Records before this offset were delivered before the last commit: they are
    /// processed for the state only.
    silent_until: i64,
    /// Offsets waiting for the sinks: the sinks' marks after the batch, and the offset.
    pending: VecDeque<(Vec<u64>, i64)>,
    /// The sinks' marks after this worker's last alert.
    last_mark: Vec<u64>,
    /// The newest offset whose alerts are all settled.
    settled: Option<i64>,
    last_snapshot: Instant,
    /// The offset of the last snapshot written.
    snapshot_at: Option<i64>,
    last_input: Instant,
    last_advance: Instant,
    buf: Vec<u8>,
    alerts: Vec<Alert>,
    logged_errors: u32,
}

impl Part {
    fn new_pipeline(shared: &Shared) -> Pipeline {
        let (cfg, rules) = lock(&shared.detection).clone();
        let mut p = Pipeline::new(cfg, rules);
        p.set_time_range(None, None);
        p
    }

    fn stream_index(&mut self, key: Option<&[u8]>) -> usize {
        if !self.shared.src.key_as_stream {
            return 0;
        }
        let Some(key) = key else { return 0 };
        if let Some(i) = self
            .streams
            .iter()
            .position(|s| s.key.as_deref() == Some(key))
        {
            return i;
        }
        if let Some(why) = key_refused(key.len(), self.streams.len() - 1) {
            self.shared.metrics.kafka.keyless_fallback.inc();
            if let Some(more) = lock(&self.shared.log).allow(Instant::now()) {
                tracing::warn!(topic = %self.tp.0, partition = self.tp.1, key_bytes = key.len(), similar_lines_suppressed = more,
                    "{why}: the record runs on the partition's keyless engine (auditwatch_kafka_keyless_fallback_records_total)");
            }
            return 0;
        }
        self.streams.push(Stream {
            key: Some(key.to_vec()),
            pipeline: Part::new_pipeline(&self.shared),
        });
        self.streams.len() - 1
    }

    fn feed(&mut self, records: Vec<OwnedMessage>) {
        let shared = self.shared.clone();
        let wall = shared.tick.map(|_| now_nanos());
        for m in records {
            let off = m.offset();
            if self.next.is_some_and(|n| off < n) {
                continue;
            }
            let si = self.stream_index(m.key());
            self.buf.clear();
            let framed = frame_record(m.payload().unwrap_or(&[]), shared.max_line, &mut self.buf);
            let p = &mut self.streams[si].pipeline;
            p.engine_mut().set_wall_clock(wall);
            let before = p.stats().clone();
            let alerts = &mut self.alerts;
            let at = alerts.len();
            for (bytes, head) in &framed.too_long {
                p.record_too_long(*bytes, head, alerts);
            }
            for line in self.buf.split_inclusive(|&b| b == b'\n') {
                let line = &line[..line.len() - 1];
                if let Err(e) = p.feed_line(line, alerts) {
                    if self.logged_errors < 10 {
                        self.logged_errors += 1;
                        tracing::warn!(source = %shared.name, topic = %self.tp.0, partition = self.tp.1, offset = off, reason = %e.as_str(), "unreadable line skipped");
                    }
                }
            }
            count(&shared, &before, p.stats());
            if off < self.silent_until {
                // Raised before the last commit and delivered then: the state is rebuilt,
                // the alerts are not sent again.
                shared
                    .metrics
                    .kafka
                    .caught_up_alerts
                    .inc_by((alerts.len() - at) as u64);
                alerts.truncate(at);
            }
            self.next = Some(off + 1);
        }
        if !self.alerts.is_empty() {
            let mut sinks = lock(&shared.sinks);
            for a in self.alerts.drain(..) {
                sinks.dispatch(a);
            }
            self.last_mark = sinks.handed();
        }
        if let Some(n) = self.next {
            self.pending.push_back((self.last_mark.clone(), n));
        }
        self.last_input = Instant::now();
    }

    /// Move what the sinks are done with to `settled`, and ask for its commit.
    fn settle(&mut self) {
        let mut newest = None;
        {
            let sinks = lock(&self.shared.sinks);
            while let Some((mark, off)) = self.pending.front() {
                if !sinks.settled_through(mark) {
                    break;
                }
                newest = Some(*off);
                self.pending.pop_front();
            }
        }
        if let Some(off) = newest {
            if self.settled != Some(off) {
                self.settled = Some(off);
                lock(&self.shared.commits).insert(self.tp.clone(), off);
            }
        }
    }

    /// The snapshot chunks of every stream at `next`, when every alert is settled.
    fn snapshot(&self) -> Option<Vec<Vec<u8>>> {
        let next = self.next?;
        if !self.pending.is_empty() {
            return None;
        }
        let out = SnapOut {
            written_unix_ms: now_ms(),
            build: env!("CARGO_PKG_VERSION"),
            streams: self
                .streams
                .iter()
                .map(|s| (s.key.as_deref(), s.pipeline.save_state()))
                .collect(),
        };
        match postcard::to_stdvec(&out) {
            Ok(body) if body.len() > MAX_CHUNKS as usize * CHUNK_BYTES => {
                tracing::error!(topic = %self.tp.0, partition = self.tp.1, bytes = body.len(),
                    "the partition's state is over the 1 GiB a snapshot may hold: not written; the next owner starts from the committed offset");
                None
            }
            Ok(body) => Some(encode_chunks(&body, next, now_nanos() as u64)),
            Err(e) => {
                tracing::error!(topic = %self.tp.0, partition = self.tp.1, error = %e, "cannot encode the partition's state");
                None
            }
        }
    }

    /// Wait up to `wait` for the sinks to be done with every alert handed over.
    fn settle_all(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            self.settle();
            if self.pending.is_empty() || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn run(mut self, rx: Receiver<Work>, stop: Arc<AtomicBool>) -> Handoff {
        let every = Duration::from_secs(self.shared.src.snapshot_interval_secs);
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Work::Records(r)) => self.feed(r),
                Err(RecvTimeoutError::Timeout) => {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    self.idle_tick();
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.settle();
            // Periodic snapshots cover a member that dies without handing over; one that
            // would repeat the last is not written.
            if self.last_snapshot.elapsed() >= every && self.next != self.snapshot_at {
                self.settle_all(Duration::from_secs(2));
                if let Some(chunks) = self.snapshot() {
                    if self.shared.publish(&self.tp, chunks, false) {
                        self.snapshot_at = self.next;
                    }
                }
                self.last_snapshot = Instant::now();
            }
        }
        // Revoked: what was polled for this partition is processed, every alert settled,
        // and the state handed to the next owner at that offset.
        while let Ok(Work::Records(r)) = rx.try_recv() {
            self.feed(r);
        }
        self.settle_all(HANDOFF_WAIT);
        if !self.pending.is_empty() {
            tracing::error!(topic = %self.tp.0, partition = self.tp.1, "the sinks did not settle the partition's alerts in time: no snapshot; the next owner processes those records again");
        }
        Handoff {
            commit: self.settled,
            snapshot: self.snapshot(),
        }
    }

    /// No records for `tick_secs`: the wall clock names a silence of the stream.
    fn idle_tick(&mut self) {
        let Some(tick) = self.shared.tick else { return };
        if self.last_input.elapsed() < tick || self.last_advance.elapsed() < tick {
            return;
        }
        let now = now_nanos();
        for s in &mut self.streams {
            s.pipeline.engine_mut().advance_clock(now, &mut self.alerts);
        }
        self.last_advance = Instant::now();
        if !self.alerts.is_empty() {
            let mut sinks = lock(&self.shared.sinks);
            for a in self.alerts.drain(..) {
                sinks.dispatch(a);
            }
            self.last_mark = sinks.handed();
            if let Some(n) = self.next {
                self.pending.push_back((self.last_mark.clone(), n));
            }
        }
    }
}

/// The source's entry counters from a pipeline's stats.
fn count(shared: &Shared, before: &crate::pipeline::Stats, after: &crate::pipeline::Stats) {
    let m = &shared.metrics;
    let name = shared.name.as_str();
    for (ty, d) in [
        (EntryType::Request, after.requests - before.requests),
        (EntryType::Response, after.responses - before.responses),
        (EntryType::Other, after.other_types - before.other_types),
    ] {
        if d > 0 {
            m.events.with_label_values(&[name, ty.as_str()]).inc_by(d);
        }
    }
    for r in ParseError::ALL {
        let d = after.parse_errors[r.index()] - before.parse_errors[r.index()];
        if d > 0 {
            m.parse_errors
                .with_label_values(&[name, r.as_str()])
                .inc_by(d);
        }
    }
}

/// The consumer's context: librdkafka's log to ours, and the rebalance callback.
struct Ctx {
    shared: Arc<Shared>,
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(facility = fac, "librdkafka: {message}"),
            _ => tracing::debug!(facility = fac, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(more) = lock(&self.shared.log).allow(Instant::now()) {
            tracing::warn!(error = %error, reason, similar_lines_suppressed = more, "kafka client error");
        }
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
                if self.shared.draining.load(Ordering::Acquire) =>
            {
                tracing::info!(partitions = ?tps(tpl), "partitions assigned during the drain are not taken: this member is leaving the group");
                let _ = consumer.unassign();
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                assign(&self.shared, consumer, tpl)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                revoke(&self.shared, consumer, tpl);
                if let Err(e) = consumer.unassign() {
                    tracing::error!(error = %e, "cannot give up the revoked partitions");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error: every partition is given up");
                revoke(&self.shared, consumer, tpl);
                let _ = consumer.unassign();
            }
        }
    }
}

fn tps(tpl: &TopicPartitionList) -> Vec<Tp> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// Revoked (or the drain): each partition's worker finishes what was polled, the state
/// goes to the state topic and the offset is committed, before anyone else may read it.
fn revoke<C: ConsumerContext>(
    shared: &Shared,
    consumer: &BaseConsumer<C>,
    tpl: &TopicPartitionList,
) {
    let revoked = tps(tpl);
    let k = &shared.metrics.kafka;
    k.rebalances
        .with_label_values(&[RebalanceKind::Revoke.as_str()])
        .inc();
    let workers: Vec<(Tp, Worker)> = {
        let mut w = lock(&shared.workers);
        revoked
            .iter()
            .filter_map(|tp| w.remove(tp).map(|x| (tp.clone(), x)))
            .collect()
    };
    for (_, w) in &workers {
        w.stop.store(true, Ordering::Release);
    }
    let mut commit = TopicPartitionList::new();
    for (tp, w) in workers {
        drop(w.tx);
        let Ok(h) = w.handle.join() else {
            tracing::error!(topic = %tp.0, partition = tp.1, "the partition's worker panicked: its state is not handed over");
            continue;
        };
        lock(&shared.commits).remove(&tp);
        if let Some(chunks) = h.snapshot {
            shared.publish(&tp, chunks, true);
        }
        if let Some(off) = h.commit {
            let _ = commit.add_partition_offset(&tp.0, tp.1, Offset::Offset(off));
        }
        tracing::info!(topic = %tp.0, partition = tp.1, offset = ?h.commit, "partition handed over");
    }
    k.assigned.set(lock(&shared.workers).len() as i64);
    lock(&shared.labels).retain(|tp, label| {
        let keep = !revoked.contains(tp);
        if !keep {
            let _ = k.lag.remove_label_values(&[label.as_str()]);
        }
        keep
    });
    if commit.count() > 0 {
        if let Err(e) = timed_commit(consumer, shared, &commit) {
            tracing::warn!(error = %e, "cannot commit the revoked partitions' offsets: the next owner processes their last records again");
        }
    }
}

/// Assigned: read each partition's newest snapshot, restore its engines, start its
/// worker, and begin at the snapshot's offset.
fn assign<C: ConsumerContext>(
    shared: &Arc<Shared>,
    consumer: &BaseConsumer<C>,
    tpl: &mut TopicPartitionList,
) {
    let assigned = tps(tpl);
    shared
        .metrics
        .kafka
        .rebalances
        .with_label_values(&[RebalanceKind::Assign.as_str()])
        .inc();
    let snaps = match read_snapshots(shared, &assigned) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the state topic: the assigned partitions start from their committed offsets with fresh state");
            HashMap::new()
        }
    };
    let committed: HashMap<Tp, i64> =
        match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(c) => c
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
                    _ => None,
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the committed offsets");
                HashMap::new()
            }
        };
    for tp in &assigned {
        let c = committed.get(tp).copied();
        let mut streams = Vec::new();
        let (start, silent_until) = match snaps.get(tp) {
            Some((offset, body)) => match postcard::from_bytes::<SnapIn>(body) {
                Ok(s) => {
                    for (key, state) in s.streams {
                        let mut p = Part::new_pipeline(shared);
                        let _ = p.restore_state(state);
                        streams.push(Stream { key, pipeline: p });
                    }
                    tracing::info!(topic = %tp.0, partition = tp.1, offset, committed = ?c, written_by = %s.build,
                        age_secs = (now_ms() - s.written_unix_ms).max(0) / 1000, streams = streams.len(), "partition state restored");
                    (Some(*offset), c.unwrap_or(*offset).max(*offset))
                }
                Err(e) => {
                    tracing::error!(topic = %tp.0, partition = tp.1, error = %e, "the partition's state snapshot does not decode: fresh state from the committed offset");
                    (c, 0)
                }
            },
            None => {
                tracing::info!(topic = %tp.0, partition = tp.1, committed = ?c, "no state snapshot for the partition: fresh state");
                (c, 0)
            }
        };
        if streams.is_empty() || streams[0].key.is_some() {
            streams.insert(
                0,
                Stream {
                    key: None,
                    pipeline: Part::new_pipeline(shared),
                },
            );
        }
        if let Some(s) = start {
            let _ = tpl.set_partition_offset(&tp.0, tp.1, Offset::Offset(s));
        }
        let part = Part {
            tp: tp.clone(),
            shared: shared.clone(),
            streams,
            next: start,
            silent_until,
            pending: VecDeque::new(),
            last_mark: lock(&shared.sinks).handed(),
            settled: None,
            last_snapshot: Instant::now(),
            snapshot_at: start,
            last_input: Instant::now(),
            last_advance: Instant::now(),
            buf: Vec::new(),
            alerts: Vec::new(),
            logged_errors: 0,
        };
        let (tx, rx) = mpsc::sync_channel(WORKER_QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let handle = std::thread::Builder::new()
            .name(format!("auditwatch-p{}", tp.1))
            .spawn(move || part.run(rx, st))
            .expect("spawn a partition worker");
        lock(&shared.workers).insert(tp.clone(), Worker { tx, handle, stop });
    }
    if let Err(e) = consumer.assign(tpl) {
        tracing::error!(error = %e, "cannot take the assigned partitions");
    }
    let n = lock(&shared.workers).len();
    shared.metrics.kafka.assigned.set(n as i64);
    {
        // The first `max_partitions` partitions of the assignment have their own series.
        let mut labels = lock(&shared.labels);
        for tp in &assigned {
            let label = if labels.len() < shared.src.max_partitions {
                if shared.src.topics.len() > 1 {
                    format!("{}/{}", tp.0, tp.1)
                } else {
                    tp.1.to_string()
                }
            } else {
                "other".to_string()
            };
            labels.insert(tp.clone(), label);
        }
    }
    tracing::info!(partitions = ?assigned.iter().map(|t| t.1).collect::<Vec<_>>(), "partitions assigned");
}

/// The state topic reader's client: reaching the end of a partition is how it knows it read
/// everything (`enable.partition.eof`), not an error to log.
struct StateReader;

impl ClientContext for StateReader {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            tracing::warn!(error = %error, reason, "kafka client error while reading the state topic");
        }
    }
}

impl ConsumerContext for StateReader {}

/// The newest complete snapshot of each partition in `wanted`, read from the whole state
/// topic (compacted: one record per chunk key, plus what compaction has not reached).
fn read_snapshots(shared: &Shared, wanted: &[Tp]) -> Result<HashMap<Tp, (i64, Vec<u8>)>, String> {
    let src = &shared.src;
    let mut cfg = src.client_config()?;
    cfg.set("group.id", format!("{}.state-reader", src.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    let reader: BaseConsumer<StateReader> = cfg
        .create_with_context(StateReader)
        .map_err(|e| e.to_string())?;
    let md = reader
        .fetch_metadata(Some(&src.state_topic), Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut tpl = TopicPartitionList::new();
    let mut left = 0;
    for p in &parts {
        let (lo, hi) = reader
            .fetch_watermarks(&src.state_topic, *p, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        if hi > lo {
            tpl.add_partition_offset(&src.state_topic, *p, Offset::Beginning)
                .map_err(|e| e.to_string())?;
            left += 1;
        }
    }
    let mut found: HashMap<Tp, Generations> = HashMap::new();
    if left == 0 {
        return Ok(HashMap::new());
    }
    reader.assign(&tpl).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while left > 0 {
        if Instant::now() >= deadline {
            return Err("reading the state topic took over 60 s".into());
        }
        match reader.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => left -= 1,
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(m)) => {
                let Some((tp, _)) = m.key().and_then(|k| parse_key(&src.group_id, k)) else {
                    continue;
                };
                if !wanted.contains(&tp) {
                    continue;
                }
                match m.payload().map(decode_chunk) {
                    Some(Ok(c)) => found.entry(tp).or_default().add(c),
                    Some(Err(why)) => {
                        tracing::warn!(topic = %tp.0, partition = tp.1, reason = %why, "a state record is set aside")
                    }
                    None => {}
                }
            }
        }
    }
    Ok(found
        .into_iter()
        .filter_map(|(tp, g)| g.newest().map(|(off, body, _)| (tp, (off, body))))
        .collect())
}

/// Create the state topic (compacted, one partition) unless it exists.
fn ensure_state_topic(src: &KafkaSource, rt: &tokio::runtime::Runtime) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> =
        src.client_config()?.create().map_err(|e| e.to_string())?;
    let topic = NewTopic::new(&src.state_topic, 1, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let r = rt
        .block_on(admin.create_topics([&topic], &opts))
        .map_err(|e| e.to_string())?;
    for t in r {
        match t {
            Ok(_) => tracing::info!(topic = %src.state_topic, "state topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(format!("cannot create the state topic {name}: {code}"))
            }
        }
    }
    Ok(())
}

/// Run the daemon as a member of the consumer group until SIGINT/SIGTERM; on the drain,
/// every partition is handed over (snapshot and commit) before the member leaves.
pub fn run(
    opts: &Options,
    metrics: Arc<Metrics>,
    name: &str,
    src: &KafkaSource,
) -> Result<(), DaemonError> {
    let cfg = opts.cfg.clone();
    let setup = |message: String| DaemonError::Kafka {
        name: name.to_string(),
        message,
    };
    let sinks = super::start_sinks(opts, &metrics)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("auditwatch-io")
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    let handlers = {
        let _g = rt.enter();
        super::Signals::install()
    };
    let http =
        match cfg.server.listen {
            Some(a) => Some(rt.block_on(tokio::net::TcpListener::bind(a)).map_err(|e| {
                DaemonError::Bind {
                    what: "the http endpoint".into(),
                    address: a.to_string(),
                    source: e,
                }
            })?),
            None => None,
        };
    ensure_state_topic(src, &rt).map_err(setup)?;
    let mut pcfg = src.client_config().map_err(setup)?;
    pcfg.set("acks", "all").set("linger.ms", "5");
    let producer: ThreadedProducer<DefaultProducerContext> =
        pcfg.create().map_err(|e| setup(e.to_string()))?;
    let shared = Arc::new(Shared {
        src: src.clone(),
        name: name.to_string(),
        detection: Mutex::new((cfg.detection.clone(), opts.rules.clone())),
        sinks: Mutex::new(sinks),
        metrics: metrics.clone(),
        producer,
        max_line: cfg.detection.parse.max_line_bytes as usize,
        tick: (cfg.server.tick_secs > 0).then(|| Duration::from_secs(cfg.server.tick_secs)),
        workers: Mutex::new(HashMap::new()),
        commits: Mutex::new(HashMap::new()),
        generation: AtomicU64::new(0),
        draining: AtomicBool::new(false),
        labels: Mutex::new(HashMap::new()),
        log: Mutex::new(LogRate::new(Duration::from_secs(30))),
    });
    let ccfg = src.consumer_config().map_err(setup)?;
    let consumer = BaseConsumer::from_config_and_context(
        &ccfg,
        Ctx {
            shared: shared.clone(),
        },
    )
    .map_err(|e| setup(e.to_string()))?;
    let topics: Vec<&str> = src.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| setup(e.to_string()))?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let ready = Arc::new(AtomicBool::new(false));
    let heartbeat = Arc::new(AtomicU64::new(now_ms() as u64));
    if let Some(l) = http {
        let h = super::http::Health {
            metrics: metrics.clone(),
            ready: ready.clone(),
            heartbeat: heartbeat.clone(),
        };
        super::serve_http(&rt, l, h, &cfg, shutdown_rx.clone());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let consumer_thread = {
        let (shared, stop, heartbeat) = (shared.clone(), stop.clone(), heartbeat.clone());
        std::thread::Builder::new()
            .name("auditwatch-kafka".into())
            .spawn(move || consume(consumer, &shared, &stop, &heartbeat))
            .map_err(DaemonError::Runtime)?
    };
    ready.store(true, Ordering::Relaxed);
    metrics.ready.set(1);
    tracing::info!(source = %name, group = %src.group_id, topics = ?src.topics, rules = opts.rules.rules.len(), "auditwatch running");

    handlers.until_stopped(&rt, || {
        lock(&shared.sinks).reopen();
        tracing::warn!("a kafka member reopens its output on SIGHUP; config and rule changes take effect at the next restart");
    });
    ready.store(false, Ordering::Relaxed);
    metrics.ready.set(0);
    let deadline = Instant::now() + Duration::from_secs(cfg.server.drain_timeout_secs);
    stop.store(true, Ordering::Release);
    let drained = crate::util::thread::join_until(consumer_thread, deadline).is_some();
    let _ = shutdown_tx.send(true);
    let shared = match Arc::try_unwrap(shared) {
        Ok(s) => s,
        Err(_) => {
            rt.shutdown_timeout(Duration::from_secs(1));
            return Err(DaemonError::DrainTimeout(cfg.server.drain_timeout_secs));
        }
    };
    let Shared { sinks, .. } = shared;
    let sinks = sinks.into_inner().unwrap_or_else(|p| p.into_inner());
    sinks.close(deadline.max(Instant::now() + Duration::from_secs(1)));
    rt.shutdown_timeout(Duration::from_secs(1));
    if drained {
        Ok(())
    } else {
        Err(DaemonError::DrainTimeout(cfg.server.drain_timeout_secs))
    }
}

/// The consumer thread: poll, hand records to the partitions' workers, commit what they
/// settled; at the stop, hand every partition over and leave the group.
fn consume(
    consumer: BaseConsumer<Ctx>,
    shared: &Arc<Shared>,
    stop: &AtomicBool,
    heartbeat: &AtomicU64,
) {
    let mut last_commit = Instant::now();
    let mut last_lag = Instant::now();
    let mut batches: HashMap<Tp, Vec<OwnedMessage>> = HashMap::new();
    while !stop.load(Ordering::Acquire) {
        heartbeat.store(now_ms() as u64, Ordering::Relaxed);
        let mut generation = shared.generation.load(Ordering::Acquire);
        let mut n = 0;
        let mut wait = Duration::from_millis(100);
        while n < POLL_ROUND {
            let polled = consumer.poll(wait);
            let now = shared.generation.load(Ordering::Acquire);
            if now != generation {
                // A rebalance ran inside this poll: what was polled before it belongs to
                // the old assignment, whose owners start again from their handed-over
                // offsets; what this poll returned comes from the new assignment's own
                // offsets and is kept (dropping it would leave a gap in its partition).
                generation = now;
                batches.clear();
            }
            match polled {
                None => break,
                Some(Ok(m)) => {
                    let tp = (m.topic().to_string(), m.partition());
                    batches.entry(tp).or_default().push(m.detach());
                    n += 1;
                }
                Some(Err(e)) => {
                    if let Some(more) = lock(&shared.log).allow(Instant::now()) {
                        tracing::warn!(error = %e, similar_lines_suppressed = more, "kafka consumer error");
                    }
                    break;
                }
            }
            wait = Duration::ZERO;
        }
        for (tp, recs) in batches.drain() {
            let tx = lock(&shared.workers).get(&tp).map(|w| w.tx.clone());
            if let Some(tx) = tx {
                let _ = tx.send(Work::Records(recs));
            }
        }
        if last_commit.elapsed() >= COMMIT_EVERY {
            commit(&consumer, shared);
            last_commit = Instant::now();
        }
        if last_lag.elapsed() >= LAG_EVERY {
            lag(&consumer, shared);
            last_lag = Instant::now();
        }
    }
    // The drain: every partition handed over, then the group is left; nothing assigned
    // from now on is taken.
    shared.draining.store(true, Ordering::Release);
    let assigned: Vec<Tp> = lock(&shared.workers).keys().cloned().collect();
    let mut tpl = TopicPartitionList::new();
    for tp in &assigned {
        let _ = tpl.add_partition(&tp.0, tp.1);
    }
    commit(&consumer, shared);
    revoke(shared, &consumer, &tpl);
    consumer.unsubscribe();
    drop(consumer);
}

/// Commit synchronously, counted and timed.
fn timed_commit<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    shared: &Shared,
    tpl: &TopicPartitionList,
) -> Result<(), KafkaError> {
    let start = Instant::now();
    let r = consumer.commit(tpl, CommitMode::Sync);
    let k = &shared.metrics.kafka;
    k.commit_seconds.set(start.elapsed().as_secs_f64());
    let o = if r.is_ok() {
        WriteOutcome::Ok
    } else {
        WriteOutcome::Error
    };
    k.commits.with_label_values(&[o.as_str()]).inc();
    r
}

/// Consumer lag per assigned partition: the partition's end less this member's position.
fn lag(consumer: &BaseConsumer<Ctx>, shared: &Shared) {
    let Ok(pos) = consumer.position() else { return };
    let labels = lock(&shared.labels).clone();
    let mut sums: HashMap<String, i64> = HashMap::new();
    for e in pos.elements() {
        let tp = (e.topic().to_string(), e.partition());
        let Some(label) = labels.get(&tp) else {
            continue;
        };
        let Ok((_, high)) = consumer.fetch_watermarks(&tp.0, tp.1, Duration::from_secs(1)) else {
            continue;
        };
        let at = match e.offset() {
            Offset::Offset(o) => o,
            _ => continue,
        };
        *sums.entry(label.clone()).or_default() += (high - at).max(0);
    }
    for (label, v) in sums {
        shared.metrics.kafka.lag.with_label_values(&[&label]).set(v);
    }
}

/// Commit the offsets the workers settled.
fn commit(consumer: &BaseConsumer<Ctx>, shared: &Shared) {
    let offsets: Vec<(Tp, i64)> = lock(&shared.commits).drain().collect();
    if offsets.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for ((t, p), o) in &offsets {
        let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*o));
    }
    if let Err(e) = timed_commit(consumer, shared, &tpl) {
        if let Some(more) = lock(&shared.log).allow(Instant::now()) {
            tracing::warn!(error = %e, similar_lines_suppressed = more, "cannot commit offsets: retried with the next ones");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_survives_its_chunks() {
        let body: Vec<u8> = (0..(CHUNK_BYTES * 2 + 10)).map(|i| i as u8).collect();
        let chunks = encode_chunks(&body, 42, 7);
        assert_eq!(chunks.len(), 3);
        let mut g = Generations::default();
        for c in chunks.iter().rev() {
            g.add(decode_chunk(c).unwrap());
        }
        assert_eq!(g.newest(), Some((42, body, 7)));
    }

    #[test]
    fn a_state_record_claiming_too_many_chunks_is_refused_before_any_allocation() {
        let mut c = encode_chunks(b"x", 1, 1).remove(0);
        c[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_chunk(&c).unwrap_err().contains("over the 2048"));
        c[20..24].copy_from_slice(&MAX_CHUNKS.to_le_bytes());
        assert_eq!(decode_chunk(&c).unwrap().count, 2048);
    }

    #[test]
    fn a_long_key_or_one_key_too_many_runs_on_the_keyless_engine() {
        assert_eq!(key_refused(256, 0), None);
        assert!(key_refused(257, 0).unwrap().contains("over 256 bytes"));
        assert_eq!(key_refused(1, MAX_STREAMS_PER_PARTITION - 1), None);
        assert!(key_refused(1, MAX_STREAMS_PER_PARTITION).is_some());
    }

    #[test]
    fn an_incomplete_or_damaged_newest_snapshot_falls_back_to_the_one_before() {
        let old = encode_chunks(b"old", 10, 1);
        let new = encode_chunks(&vec![9u8; CHUNK_BYTES + 1], 20, 2);
        let mut g = Generations::default();
        g.add(decode_chunk(&old[0]).unwrap());
        g.add(decode_chunk(&new[0]).unwrap());
        assert_eq!(g.newest(), Some((10, b"old".to_vec(), 1)));
        let mut bad = encode_chunks(b"new", 30, 3);
        let last = bad[0].len() - 1;
        bad[0][last] ^= 1;
        let mut g = Generations::default();
        g.add(decode_chunk(&old[0]).unwrap());
        g.add(decode_chunk(&bad[0]).unwrap());
        assert_eq!(g.newest(), Some((10, b"old".to_vec(), 1)));
        assert!(decode_chunk(b"AWKS").is_err());
        let mut other = old[0].clone();
        other[4] = 9;
        assert!(decode_chunk(&other)
            .unwrap_err()
            .contains("format version 9"));
    }

    #[test]
    fn keys_name_the_group_topic_partition_and_chunk() {
        let tp = ("vault.audit-v1".to_string(), 5);
        let k = chunk_key("g.1", &tp, 3);
        assert_eq!(k, "g.1/vault.audit-v1/5/3");
        assert_eq!(parse_key("g.1", k.as_bytes()), Some((tp, 3)));
        assert_eq!(parse_key("g", k.as_bytes()), None);
        assert_eq!(parse_key("g.1", b"g.1/t/x/0"), None);
    }
}
