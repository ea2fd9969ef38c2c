//! Parallel replay: the same alerts as the one-thread path, on every core.
//!
//! Each worker takes the next chunk of whole lines off the input (one at a time, under a
//! lock that also fixes the chunk's place in the stream) and reads it ahead with the fast
//! path while the others read theirs (the costly part). Chunks read wait in stream order;
//! whichever worker finds the engine free feeds every chunk that is next, then goes back
//! to reading. Because the engine sees exactly the sequence the one-thread path would,
//! alerts and counts are identical; a test pins that. No worker waits for another's
//! chunk: a core that runs slower (a busy or shared machine) just reads fewer of them.
//! Memory stays bounded: a fixed number of chunk buffers go round.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::input::{open_input, total_size, Input, InputReport, Progress, ReplayOptions};
use super::lines::ChunkReader;
use crate::alert::Alert;
use crate::parse::ahead::{Ahead, Lines};
use crate::parse::chunk::Chunk;
use crate::pipeline::Pipeline;

/// Bytes of lines per chunk: large enough to amortise hand-offs (~500 lines), small enough
/// that the chunks in flight stay well under the memory bound.
const CHUNK_BYTES: usize = 256 * 1024;

/// Room reserved per chunk so typical lines never make the buffer double.
const CHUNK_CAPACITY: usize = CHUNK_BYTES + 256 * 1024;

/// Chunk buffers per worker: one being read while another waits for the engine.
const BUFFERS_PER_WORKER: usize = 2;

/// The engine side, held by the worker feeding it.
struct Turn<'p> {
    pipeline: &'p mut Pipeline,
    logged: Vec<u64>,
    lines: Vec<u64>,
    failed: Option<io::Error>,
}

/// A chunk buffer and what the fast path read of it.
struct Buffer {
    chunk: Chunk,
    ahead: Ahead,
}

/// Chunks read and waiting for the engine, and the buffers free for reading.
struct Order {
    ready: BTreeMap<u64, Buffer>,
    /// The next chunk the engine takes.
    next: u64,
    /// A worker is feeding the engine.
    feeding: bool,
    free: Vec<Buffer>,
    /// Buffers made so far (at most `cap`).
    made: usize,
    cap: usize,
    /// A worker panicked while feeding the engine.
    broken: bool,
}

pub fn replay_parallel(
    pipeline: &mut Pipeline,
    inputs: &[Input],
    opts: &ReplayOptions,
    progress: &mut dyn Progress,
    emit: &mut dyn FnMut(&Alert) -> io::Result<()>,
) -> io::Result<Vec<InputReport>> {
    let threads = opts.threads.max(1);
    let total = total_size(inputs);
    let read_bytes = Arc::new(AtomicU64::new(0));
    let prefix = pipeline.engine().config().parse.prefix.clone();
    let mut reports: Vec<InputReport> = inputs
        .iter()
        .map(|i| InputReport {
            name: i.name(),
            ..InputReport::default()
        })
        .collect();

    let (alert_tx, alert_rx) = mpsc::channel::<Vec<Alert>>();
    let stats_at_input_end: Mutex<Vec<Option<crate::pipeline::Stats>>> =
        Mutex::new(vec![None; inputs.len()]);
    let turn = Mutex::new(Turn {
        pipeline,
        logged: vec![0; inputs.len()],
        lines: vec![0; inputs.len()],
        failed: None,
    });
    let order = Mutex::new(Order {
        ready: BTreeMap::new(),
        next: 0,
        feeding: false,
        free: Vec::new(),
        made: 0,
        cap: threads * BUFFERS_PER_WORKER,
        broken: false,
    });
    let freed = Condvar::new();
    let feed = Mutex::new(Feed {
        inputs,
        read_bytes: read_bytes.clone(),
        max_line_bytes: opts.max_line_bytes,
        idx: 0,
        lines: None,
        seq: 0,
        problems: vec![None; inputs.len()],
    });
    let start = Instant::now();

    let feeder = Feeder {
        turn: &turn,
        order: &order,
        freed: &freed,
        stats_at_input_end: &stats_at_input_end,
        inputs,
        log_errors_per_input: opts.log_errors_per_input,
    };
    let emit_result = std::thread::scope(|s| {
        for _ in 0..threads {
            let alert_tx = alert_tx.clone();
            let (feeder, feed, prefix) = (&feeder, &feed, &prefix);
            s.spawn(move || loop {
                let Some(mut buf) = feeder.buffer() else {
                    return;
                };
                let Some(seq) = feed.lock().expect("feed").next_chunk(&mut buf.chunk) else {
                    feeder.give_back(buf);
                    return;
                };
                let Buffer { chunk, ahead } = &mut buf;
                ahead.read(Lines::Chunk(chunk), prefix.as_bytes());
                feeder.done(seq, buf, &alert_tx);
            });
        }
        drop(alert_tx);

        // This thread writes alerts (the writer need not be Send) and shows progress.
        let mut last_progress = Instant::now();
        let mut result = Ok(());
        loop {
            match alert_rx.recv_timeout(Duration::from_millis(200)) {
                Ok(batch) => {
                    if result.is_ok() {
                        for a in &batch {
                            if let Err(e) = emit(a) {
                                result = Err(e);
                                break;
                            }
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if last_progress.elapsed() >= Duration::from_millis(500) {
                last_progress = Instant::now();
                let entries = turn.lock().map(|t| t.pipeline.stats().entries).unwrap_or(0);
                progress.update(
                    read_bytes.load(Ordering::Relaxed),
                    total,
                    entries,
                    start.elapsed(),
                );
            }
        }
        result
    });

    let mut t = turn.into_inner().expect("turn");
    if let Some(e) = t.failed.take() {
        return Err(e);
    }
    emit_result?;
    let mut alerts = Vec::new();
    t.pipeline.finish(&mut alerts);
    for a in &alerts {
        emit(a)?;
    }
    progress.done();

    // Per-input figures from the snapshots taken at each input's last chunk.
    let ends = stats_at_input_end.into_inner().expect("stats");
    let problems = feed.into_inner().expect("feed").problems;
    let mut prev = crate::pipeline::Stats::default();
    for (i, r) in reports.iter_mut().enumerate() {
        r.problem = problems[i].clone();
        if let Some(end) = &ends[i] {
            r.bytes = end.bytes - prev.bytes;
            r.lines = end.lines - prev.lines;
            r.entries = end.entries - prev.entries;
            r.parse_errors = end.parse_errors_total() - prev.parse_errors_total();
            if r.parse_errors > t.logged[i] {
                tracing::warn!(input = %r.name, unreadable = r.parse_errors, "unreadable lines in this input (only the first {} logged)", t.logged[i]);
            }
            prev = end.clone();
        }
    }
    Ok(reports)
}

/// The input side, shared by the workers: which input is open and where the next chunk
/// starts. Taking a chunk assigns its place in the stream.
struct Feed<'i> {
    inputs: &'i [Input],
    read_bytes: Arc<AtomicU64>,
    max_line_bytes: usize,
    /// The input being read (or next to open).
    idx: usize,
    lines: Option<ChunkReader<Box<dyn io::Read + Send>>>,
    /// The place in the stream of the next chunk.
    seq: u64,
    /// Per input: why it could not be read to the end.
    problems: Vec<Option<String>>,
}

impl Feed<'_> {
    /// Fill `chunk` with the next lines of the stream and return its place, or `None` at
    /// the end (the last chunk of each input is sent even when empty, so the input's
    /// figures are taken at its end).
    fn next_chunk(&mut self, chunk: &mut Chunk) -> Option<u64> {
        let lines = loop {
            if let Some(lines) = &mut self.lines {
                break lines;
            }
            let input = self.inputs.get(self.idx)?;
            match open_input(input, self.read_bytes.clone()) {
                Ok(r) => {
                    let lines = ChunkReader::new(r, self.max_line_bytes);
                    self.lines = Some(match input {
                        Input::Stdin => lines.streaming(),
                        Input::File(_) => lines,
                    });
                }
                Err(e) => {
                    self.problems[self.idx] = Some(format!("cannot open: {e}"));
                    self.idx += 1;
                }
            }
        };
        chunk.clear();
        chunk.input = self.idx;
        let ended = match lines.fill(chunk, CHUNK_BYTES) {
            Ok(false) => None,
            Ok(true) => Some(None),
            Err(e) => Some(Some(format!("read failed: {e}"))),
        };
        if let Some(problem) = ended {
            chunk.last_of_input = true;
            self.lines = None;
            self.problems[self.idx] = problem;
            self.idx += 1;
        }
        self.seq += 1;
        Some(self.seq - 1)
    }
}

/// The engine's side, shared by the workers: the order chunks reach it in, and the
/// chunk buffers.
struct Feeder<'a, 'p> {
    turn: &'a Mutex<Turn<'p>>,
    order: &'a Mutex<Order>,
    freed: &'a Condvar,
    stats_at_input_end: &'a Mutex<Vec<Option<crate::pipeline::Stats>>>,
    inputs: &'a [Input],
    log_errors_per_input: u64,
}

impl Feeder<'_, '_> {
    /// A free chunk buffer: a new one while fewer than the cap exist, else one the engine
    /// is done with (waiting for it: the reading is ahead of the engine). `None` once a
    /// worker panicked while feeding: the others stop, and the panic ends the replay
    /// rather than leaving it waiting for a chunk that never comes.
    fn buffer(&self) -> Option<Buffer> {
        let mut o = self.order.lock().expect("order");
        loop {
            if o.broken {
                return None;
            }
            if let Some(b) = o.free.pop() {
                return Some(b);
            }
            if o.made < o.cap {
                o.made += 1;
                let mut chunk = Chunk::default();
                chunk.spare(CHUNK_CAPACITY);
                return Some(Buffer {
                    chunk,
                    ahead: Ahead::default(),
                });
            }
            o = self.freed.wait(o).expect("order");
        }
    }

    fn give_back(&self, b: Buffer) {
        self.order.lock().expect("order").free.push(b);
        self.freed.notify_one();
    }

    /// Chunk `seq` is read: queue it, and feed the engine every chunk next in order unless
    /// another worker is at it (that worker then feeds this one too, before it stops).
    fn done(&self, seq: u64, buf: Buffer, alert_tx: &mpsc::Sender<Vec<Alert>>) {
        let mut o = self.order.lock().expect("order");
        o.ready.insert(seq, buf);
        if o.feeding {
            return;
        }
        o.feeding = true;
        let _unwinding = Unwinding(self);
        loop {
            let next = o.next;
            let Some(buf) = o.ready.remove(&next) else {
                o.feeding = false;
                return;
            };
            drop(o);
            let buf = self.feed(buf, alert_tx);
            o = self.order.lock().expect("order");
            o.next += 1;
            o.free.push(buf);
            self.freed.notify_one();
        }
    }

    /// Feed one chunk in its turn; the buffer goes back.
    fn feed(&self, mut buf: Buffer, alert_tx: &mpsc::Sender<Vec<Alert>>) -> Buffer {
        let Buffer { chunk, ahead } = &mut buf;
        let input = chunk.input;
        let mut t = self.turn.lock().expect("turn");
        let t = &mut *t;
        let mut alerts = Vec::new();
        let first_line = t.lines[input];
        let mut logged = t.logged[input];
        let name = || self.inputs[input].name();
        let n = t
            .pipeline
            .feed_ahead(Lines::Chunk(chunk), ahead, &mut alerts, &mut |i, reason| {
                if logged < self.log_errors_per_input {
                    logged += 1;
                    tracing::warn!(input = %name(), line = first_line + i as u64 + 1, reason = %reason, "unreadable line skipped");
                }
            });
        t.logged[input] = logged;
        t.lines[input] += n;
        if chunk.last_of_input {
            self.stats_at_input_end.lock().expect("stats")[input] =
                Some(t.pipeline.stats().clone());
        }
        if !alerts.is_empty() && alert_tx.send(alerts).is_err() {
            t.failed
                .get_or_insert_with(|| io::Error::other("alert writer stopped"));
        }
        buf
    }
}

/// Marks the order broken if the worker feeding the engine panics, and wakes the others.
struct Unwinding<'f, 'a, 'p>(&'f Feeder<'a, 'p>);

impl Drop for Unwinding<'_, '_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(mut o) = self.0.order.lock() {
                o.broken = true;
            }
            self.0.freed.notify_all();
        }
    }
}
