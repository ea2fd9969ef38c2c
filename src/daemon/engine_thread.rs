//! The engine thread: the one consumer of the ingest queue. It owns the [`Pipeline`] (the
//! same parser and engine replay uses), feeds it every line in queue order, writes alerts,
//! commits file positions once their lines are processed, and keeps the metrics that come
//! from the pipeline. Detection runs here only, never on a source's read path.
//!
//! A parse thread takes the batches off the queue and reads their lines ahead
//! ([`Ahead`]) while the engine thread processes the batch before: the two cores share the
//! work of a line, and the order is the queue's.
//!
//! State: with `state.dir`, the engine thread takes the state checkpoint
//! ([`super::state`]) between two batches every `state.interval_secs`, once every sink is
//! done with every alert handed to it; and at the end of input it does not run the
//! clock on (the stream goes on after a restart, and the saved state must be the one an
//! uninterrupted run would have).
//!
//! Time: entries drive the watermark. When no batch arrived for `tick_secs`, the idle tick
//! tells the engine the wall clock's time ([`crate::engine::Engine::advance_clock`]): that
//! can only say the whole stream is silent. It names the silence (`audit_stream_silent`,
//! one finding that counts the ESO keys waiting for a `stale` verdict) and judges held
//! requests whose response timed out; it moves no per-key timer, so a stream that stops
//! raises no `stale` storm, and what an idle daemon raises is what `replay --idle-until`
//! raises after the same input. With a wall clock, an entry dated more than
//! `engine.max_future_skew_secs` ahead of it is clock skew at once (an additional refusal
//! on top of the stream's own time: normal input is never ahead of the wall clock, so
//! replay and live still agree), and an idle tick decides a candidate jump of the clock by
//! it. At the end of input (without `state.dir`) the watermark is advanced to the
//! newest event time (what replay's `finish` does first); requests still waiting for their
//! response are not judged, because after a restart that response, which repeats the
//! request, decides.
//!
//! Input a file source lost (truncated with no copy, a file gone) reaches it out of band,
//! from the source's shared state, and raises an `input_lost` finding
//! ([`Pipeline::report_loss`]) that goes to every sink like any alert.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memchr::memmem;

use crate::alert::Alert;
use crate::config::Config;
use crate::engine::{EngineStats, TableSizes};
use crate::ingest::batch::Batch;
use crate::metrics::{EngineEvent, EntryType, Metrics, TABLES};
use crate::parse::ahead::{Ahead, Lines};
use crate::parse::time::parse_rfc3339_nanos;
use crate::parse::ParseError;
use crate::pipeline::lost::InputLoss;
use crate::pipeline::{Pipeline, Stats};
use crate::rules::RuleSet;
use crate::sink::Sinks;
use crate::source::cloudwatch::CwShared;
use crate::source::tail::TailShared;
use crate::util::lograte::LogRate;

use super::state::{self as saved_state, SourceImage};

use crate::ingest::queue::{Pop, Queue};

/// Messages to the engine thread.
pub enum Control {
    /// Swap in a validated config and rule set (SIGHUP).
    Reload(Arc<Config>, Arc<RuleSet>),
    /// Reopen the sinks' files (after logrotate moved them).
    ReopenOutput,
}

/// Where a source learns what the engine processed.
#[derive(Clone)]
pub enum Committer {
    Tail(Arc<TailShared>),
    CloudWatch(Arc<CwShared>),
}

impl Committer {
    fn commit(&self, c: crate::ingest::batch::Commit) {
        match self {
            Committer::Tail(t) => t.commit(c),
            Committer::CloudWatch(w) => w.commit(c),
        }
    }

    /// This source's checkpoint as the state keeps it: `None` when its position is not
    /// the engine's right now (CloudWatch with batches still queued) or cannot be encoded.
    fn image(&self, name: &str) -> Option<SourceImage> {
        let got = match self {
            Committer::Tail(t) => t.checkpoint_image().map(Some),
            Committer::CloudWatch(w) => w.checkpoint_image(),
        };
        match got {
            Ok(Some((path, bytes))) => Some(SourceImage {
                name: name.to_string(),
                path,
                bytes,
            }),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(source = %name, error = %e, "cannot encode the source checkpoint for the state");
                None
            }
        }
    }

    /// Write the checkpoint now (the drain calls this once the engine is done).
    pub fn write_checkpoint(&self) {
        match self {
            Committer::Tail(t) => {
                let _ = t.write_checkpoint();
            }
            Committer::CloudWatch(w) => {
                let _ = w.write_checkpoint();
            }
        }
    }
}

/// Per source, what the engine thread needs.
pub struct SourceInfo {
    pub name: String,
    /// Sources that resume from a checkpoint: where processed positions are committed.
    pub committer: Option<Committer>,
}

/// The checkpoints of every source that has one, or `None` when one of them has no
/// position that is the engine's right now.
pub fn source_images(sources: &[SourceInfo]) -> Option<Vec<SourceImage>> {
    sources
        .iter()
        .filter_map(|s| s.committer.as_ref().map(|c| c.image(&s.name)))
        .collect()
}

/// A state checkpoint is taken at most once per this many times its last cost.
const CHECKPOINT_DUTY: u32 = 10;

/// The state checkpoint the engine thread keeps (`state.dir`).
pub struct StateKeeper {
    pub path: std::path::PathBuf,
    pub every: Duration,
    last: Instant,
    /// How long the last checkpoint held the engine thread.
    cost: Duration,
    /// Since when a due checkpoint has waited (sinks busy, a source not at rest).
    waiting_since: Option<Instant>,
    log: LogRate,
}

impl StateKeeper {
    pub fn new(path: std::path::PathBuf, every: Duration) -> StateKeeper {
        StateKeeper {
            path,
            every,
            last: Instant::now(),
            cost: Duration::ZERO,
            waiting_since: None,
            log: LogRate::new(Duration::from_secs(60)),
        }
    }
}

/// Write the state checkpoint of `pipeline` with the source checkpoints `images`; counted,
/// timed and logged.
pub fn write_state(
    path: &std::path::Path,
    pipeline: &Pipeline,
    images: &[SourceImage],
    metrics: &Metrics,
) -> bool {
    let start = Instant::now();
    let r = saved_state::write(path, pipeline, images);
    metrics
        .state_writes
        .with_label_values(&[crate::metrics::WriteOutcome::of(&r).as_str()])
        .inc();
    match r {
        Ok(bytes) => {
            let ms = start.elapsed().as_millis() as i64;
            metrics.state_bytes.set(bytes as i64);
            metrics
                .state_write_seconds
                .set(start.elapsed().as_secs_f64());
            metrics
                .state_written_timestamp
                .set(now_unix_nanos() / 1_000_000_000);
            tracing::debug!(bytes, ms, "state checkpoint written");
            true
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot write the state checkpoint; the previous one stays");
            false
        }
    }
}

/// What the engine thread reports when it ends.
#[derive(Default)]
pub struct EngineReport {
    pub lines: u64,
    pub alerts: u64,
    /// The sinks, handed back to be closed within the drain deadline.
    pub sinks: Option<Sinks>,
    /// The pipeline and the sources, handed back for the last state checkpoint (written
    /// once the sinks are closed), when state is kept.
    pub last_state: Option<(Pipeline, Vec<SourceInfo>, std::path::PathBuf)>,
}

pub struct EngineThread {
    pub pipeline: Pipeline,
    pub queue: Arc<Queue>,
    pub control: Receiver<Control>,
    /// Where alerts go; each sink has its own queue and thread.
    pub sinks: Sinks,
    pub metrics: Arc<Metrics>,
    pub sources: Vec<SourceInfo>,
    /// `None`: no wall clock (time comes only from entries).
    pub tick: Option<Duration>,
    /// Unix ms of the last loop turn, for `/-/healthy`.
    pub heartbeat: Arc<AtomicU64>,
    /// The state checkpoint, when `state.dir` is set.
    pub state: Option<StateKeeper>,
}

fn now_unix_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Event time of the last line of a batch (for `last_event_timestamp_seconds`).
fn last_time(data: &[u8]) -> Option<i64> {
    let end = data.len().checked_sub(1)?;
    let start = memchr::memrchr(b'\n', &data[..end]).map_or(0, |p| p + 1);
    let line = &data[start..end];
    let key = b"\"time\":\"";
    let at = memmem::find(line, key)? + key.len();
    let rest = &line[at..];
    let close = memchr::memchr(b'"', rest)?;
    parse_rfc3339_nanos(std::str::from_utf8(&rest[..close]).ok()?)
}

/// The parse thread: takes each batch off the queue and reads its lines ahead (the fast
/// path), so the engine thread only makes the views and runs the engine. At most
/// [`READ_AHEAD`] batches wait between the two; the rest stay in the queue (and its spool).
/// `None` tells the engine thread the input has ended.
fn read_ahead(
    queue: &Queue,
    prefix: &[u8],
    to_engine: SyncSender<Option<(Batch, Ahead)>>,
    recycled: Receiver<Ahead>,
    engine_gone: &AtomicBool,
) {
    while !engine_gone.load(Ordering::Relaxed) {
        match queue.pop(Duration::from_millis(200)) {
            Pop::Batch(b) => {
                let mut ahead = recycled.try_recv().unwrap_or_default();
                ahead.read(Lines::Split(&b.data), prefix);
                if to_engine.send(Some((b, ahead))).is_err() {
                    return;
                }
            }
            Pop::Empty => {}
            Pop::Done => {
                let _ = to_engine.send(None);
                return;
            }
        }
    }
}

/// Batches read ahead that may wait for the engine thread.
const READ_AHEAD: usize = 2;

/// Tells the parse thread the engine thread has ended, however it ended.
struct Gone<'a>(&'a AtomicBool);

impl Drop for Gone<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl EngineThread {
    pub fn run(self) -> EngineReport {
        let (to_engine, from_parse) = mpsc::sync_channel(READ_AHEAD);
        let (recycle, recycled) = mpsc::channel();
        let queue = self.queue.clone();
        let prefix = self.pipeline.prefix().to_vec();
        let engine_gone = AtomicBool::new(false);
        std::thread::scope(|s| {
            let gone = &engine_gone;
            std::thread::Builder::new()
                .name("auditwatch-parse".into())
                .spawn_scoped(s, move || {
                    read_ahead(&queue, &prefix, to_engine, recycled, gone)
                })
                .expect("spawn the parse thread");
            let _gone = Gone(gone);
            self.consume(from_parse, recycle)
        })
    }

    fn consume(
        mut self,
        batches: Receiver<Option<(Batch, Ahead)>>,
        recycle: mpsc::Sender<Ahead>,
    ) -> EngineReport {
        let mut report = EngineReport::default();
        let mut alerts: Vec<Alert> = Vec::new();
        let mut last_input = Instant::now();
        let mut last_advance = Instant::now();
        let mut last_gauges = Instant::now() - Duration::from_secs(60);
        let mut engine_seen = EngineStats::default();
        let mut logged_errors: Vec<u32> = vec![0; self.sources.len() + 1];
        let ended = loop {
            self.heartbeat
                .store((now_unix_nanos() / 1_000_000) as u64, Ordering::Relaxed);
            while let Ok(c) = self.control.try_recv() {
                self.control(c);
            }
            let wait = self
                .tick
                .unwrap_or(Duration::from_millis(200))
                .min(Duration::from_millis(200));
            match batches.recv_timeout(wait) {
                Ok(Some((b, mut ahead))) => {
                    // A reload sent before this batch was queued applies to it.
                    while let Ok(c) = self.control.try_recv() {
                        self.control(c);
                    }
                    report.lines += self.feed(b, &mut ahead, &mut alerts, &mut logged_errors);
                    let _ = recycle.send(ahead);
                    last_input = Instant::now();
                }
                Ok(None) => break true,
                Err(RecvTimeoutError::Timeout) => {}
                // The parse thread stopped before the end (it panicked): the input has not
                // ended, so nothing is judged as if it had.
                Err(RecvTimeoutError::Disconnected) => {
                    tracing::error!("the parse thread stopped before the end of input");
                    break false;
                }
            }
            self.raise_losses(&mut alerts);
            if let Some(tick) = self.tick {
                if last_input.elapsed() >= tick && last_advance.elapsed() >= tick {
                    self.pipeline
                        .engine_mut()
                        .advance_clock(now_unix_nanos(), &mut alerts);
                    last_advance = Instant::now();
                }
            }
            if !alerts.is_empty() {
                report.alerts += self.write(&mut alerts);
            }
            if last_gauges.elapsed() >= Duration::from_secs(1) {
                self.gauges(&mut engine_seen);
                last_gauges = Instant::now();
            }
            self.checkpoint_state();
        };
        // End of input: a candidate jump of the clock is accepted and timers run up to the
        // newest event time, as replay's finish does first. Not when state is kept: the
        // stream goes on after the restart, from the state saved as it is now.
        let ended = ended && self.state.is_none();
        if ended {
            self.pipeline.engine_mut().settle_clock(&mut alerts);
        }
        // Losses noticed as the sources stopped.
        self.raise_losses(&mut alerts);
        report.alerts += self.write(&mut alerts);
        self.gauges(&mut engine_seen);
        report.sinks = Some(self.sinks);
        if let Some(k) = self.state {
            report.last_state = Some((self.pipeline, self.sources, k.path));
        }
        report
    }

    /// Take the state checkpoint when it is due and everything agrees: every sink done
    /// with every alert handed to it, every source at a position that is the engine's.
    fn checkpoint_state(&mut self) {
        let Some(k) = &mut self.state else { return };
        // A large state takes a while to write (about 1.4 s for a million ESO keys): the
        // interval stretches to ten times that, so checkpoints never hold detection up for
        // more than a tenth of its time.
        if k.last.elapsed() < k.every.max(k.cost * CHECKPOINT_DUTY) {
            return;
        }
        let images = if self.sinks.settled() {
            source_images(&self.sources)
        } else {
            None
        };
        let Some(images) = images else {
            let since = *k.waiting_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= 10 * k.every {
                if let Some(more) = k.log.allow(Instant::now()) {
                    tracing::warn!(waiting_secs = since.elapsed().as_secs(), similar_lines_suppressed = more,
                        "the state checkpoint waits for the sinks to deliver (or a source to catch up); a crash now would process more input again");
                }
            }
            return;
        };
        k.waiting_since = None;
        let start = Instant::now();
        write_state(&k.path, &self.pipeline, &images, &self.metrics);
        k.cost = start.elapsed();
        k.last = Instant::now();
    }

    fn control(&mut self, c: Control) {
        match c {
            Control::Reload(cfg, rules) => {
                let n = rules.rules.len();
                self.pipeline.reload(cfg, rules);
                tracing::info!(rules = n, "reloaded rules and config");
            }
            Control::ReopenOutput => self.sinks.reopen(),
        }
    }

    /// Feed one batch; returns the number of lines.
    fn feed(
        &mut self,
        b: Batch,
        ahead: &mut Ahead,
        alerts: &mut Vec<Alert>,
        logged: &mut [u32],
    ) -> u64 {
        let sid = b.source as usize;
        let name = self
            .sources
            .get(sid)
            .map(|s| s.name.as_str())
            .unwrap_or("restored")
            .to_string();
        let t = last_time(&b.data);
        // The wall clock bounds entry times only where it drives the watermark too.
        let wall = self.tick.map(|_| now_unix_nanos());
        self.pipeline.engine_mut().set_wall_clock(wall);
        let before: Stats = self.pipeline.stats().clone();
        let lines = self
            .pipeline
            .feed_ahead(Lines::Split(&b.data), ahead, alerts, &mut |_, e: ParseError| {
                if let Some(n) = logged.get_mut(sid.min(logged.len() - 1)) {
                    if *n < 10 {
                        *n += 1;
                        tracing::warn!(source = %name, reason = %e.as_str(), "unreadable line skipped");
                    }
                }
            });
        let after = self.pipeline.stats();
        let m = &self.metrics;
        for (ty, d) in [
            (EntryType::Request, after.requests - before.requests),
            (EntryType::Response, after.responses - before.responses),
            (EntryType::Other, after.other_types - before.other_types),
        ] {
            if d > 0 {
                m.events.with_label_values(&[&name, ty.as_str()]).inc_by(d);
            }
        }
        for r in ParseError::ALL {
            let d = after.parse_errors[r.index()] - before.parse_errors[r.index()];
            if d > 0 {
                m.parse_errors
                    .with_label_values(&[&name, r.as_str()])
                    .inc_by(d);
            }
        }
        if let Some(t) = t {
            m.last_event_timestamp
                .with_label_values(&[&name])
                .set(t as f64 / 1e9);
        }
        if let (Some(c), Some(k)) = (
            b.commit,
            self.sources.get(sid).and_then(|s| s.committer.as_ref()),
        ) {
            k.commit(c);
        }
        lines
    }

    /// Raise an `input_lost` finding for each loss a file source noticed since the last
    /// call.
    fn raise_losses(&mut self, alerts: &mut Vec<Alert>) {
        for s in &self.sources {
            let Some(Committer::Tail(t)) = &s.committer else {
                continue;
            };
            for loss in t.take_losses() {
                let file = loss.file.to_string_lossy();
                let notice = InputLoss {
                    source: &s.name,
                    reason: loss.reason.as_str(),
                    file: &file,
                    dev: loss.dev,
                    ino: loss.ino,
                    from_offset: loss.from_offset,
                    lost_bytes: loss.lost_bytes,
                    time: loss.noticed_unix_ms.saturating_mul(1_000_000),
                };
                self.pipeline.report_loss(&notice, alerts);
            }
        }
    }

    fn write(&mut self, alerts: &mut Vec<Alert>) -> u64 {
        let n = alerts.len() as u64;
        for a in alerts.drain(..) {
            self.sinks.dispatch(a);
        }
        n
    }

    fn gauges(&self, seen: &mut EngineStats) {
        let t: TableSizes = self.pipeline.table_sizes();
        let sizes = [
            t.pending_requests,
            t.decided_requests,
            t.count_keys,
            t.distinct_keys,
            t.cadence_keys,
            t.cadence_timers,
            t.suppression_keys,
            t.token_keys,
        ];
        for (name, v) in TABLES.iter().zip(sizes) {
            self.metrics
                .state_table_size
                .with_label_values(&[name])
                .set(v as i64);
        }
        let now = self.pipeline.engine_stats();
        let m = &self.metrics.engine_events;
        for (kind, a, b) in [
            (
                EngineEvent::DuplicateResponse,
                now.duplicate_responses,
                seen.duplicate_responses,
            ),
            (
                EngineEvent::TimedOutRequest,
                now.timed_out_requests,
                seen.timed_out_requests,
            ),
            (
                EngineEvent::SuppressedAlert,
                now.suppressed_alerts,
                seen.suppressed_alerts,
            ),
            (
                EngineEvent::AllowListed,
                now.allow_listed,
                seen.allow_listed,
            ),
            (EngineEvent::EvictedKey, now.evicted_keys, seen.evicted_keys),
            (EngineEvent::UntimedEntry, now.untimed, seen.untimed),
            (
                EngineEvent::DuplicateAlert,
                now.duplicate_alerts,
                seen.duplicate_alerts,
            ),
            (
                EngineEvent::SkewedEntry,
                now.skewed_entries,
                seen.skewed_entries,
            ),
            (
                EngineEvent::EvictedRequest,
                now.evicted_requests,
                seen.evicted_requests,
            ),
        ] {
            if a > b {
                m.with_label_values(&[kind.as_str()]).inc_by(a - b);
            } else {
                m.with_label_values(&[kind.as_str()]);
            }
        }
        *seen = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_time_of_the_last_line() {
        let d = b"{\"time\":\"2026-03-02T10:00:00Z\"}\n{\"type\":\"x\",\"time\":\"2026-03-02T10:00:01.5Z\"}\n";
        assert_eq!(last_time(d), parse_rfc3339_nanos("2026-03-02T10:00:01.5Z"));
        assert_eq!(last_time(b"{}\n"), None);
        assert_eq!(last_time(b""), None);
    }
}
