//! Parallel replay: the same alerts as the one-thread path, on every core.
//!
//! Each worker takes the next chunk of whole lines off the input (one at a time, under a
//! lock that also fixes the chunk's place in the stream), parses it into simd-json tapes
//! while the others parse theirs (the costly part), then waits for its turn to feed the
//! one pipeline and engine, strictly in chunk order. Because the engine sees exactly the
//! sequence the one-thread path would, alerts and counts are identical; a test pins that.
//! Memory stays bounded: one chunk buffer and its tapes per worker.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::lines::ChunkReader;
use super::replay::{open_input, total_size, Input, InputReport, Progress, ReplayOptions};
use crate::alert::Alert;
use crate::parse::batch::{BatchParser, Chunk};
use crate::pipeline::Pipeline;

/// Bytes of lines per chunk: large enough to amortise hand-offs (~500 lines), small enough
/// that the chunks in flight and their tapes stay well under the memory bound.
const CHUNK_BYTES: usize = 256 * 1024;

/// Room reserved per chunk so typical lines never make the buffer double.
const CHUNK_CAPACITY: usize = CHUNK_BYTES + 256 * 1024;

struct Turn<'p> {
    pipeline: &'p mut Pipeline,
    logged: Vec<u64>,
    lines: Vec<u64>,
    failed: Option<io::Error>,
    /// Workers asleep waiting for their turn.
    sleepers: usize,
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
    let problems: Mutex<Vec<Option<String>>> = Mutex::new(vec![None; inputs.len()]);
    let turn = TurnGate::new(Turn {
        pipeline,
        logged: vec![0; inputs.len()],
        lines: vec![0; inputs.len()],
        failed: None,
        sleepers: 0,
    });
    let feed = Mutex::new(Feed {
        inputs,
        read_bytes: read_bytes.clone(),
        max_line_bytes: opts.max_line_bytes,
        idx: 0,
        lines: None,
        seq: 0,
        problem: None,
    });
    let start = Instant::now();

    let emit_result = std::thread::scope(|s| {
        // Workers: each takes the next chunk of lines off the input (in turn, under the
        // feed lock), parses it while the others parse theirs, then waits for its turn
        // to feed the engine in stream order. No reader thread, no hand-off queues: two
        // workers keep two cores busy.
        for _ in 0..threads {
            let alert_tx = alert_tx.clone();
            let (turn, feed, stats_at_input_end, problems) =
                (&turn, &feed, &stats_at_input_end, &problems);
            let prefix = prefix.clone();
            s.spawn(move || {
                let mut parser = BatchParser::new(&prefix);
                let mut chunk = Chunk::default();
                chunk.data.reserve(CHUNK_CAPACITY);
                loop {
                    let job = feed.lock().expect("feed").next_job(&mut chunk);
                    match job {
                        Job::Done => return,
                        Job::Problem { seq, input, problem } => {
                            let t = turn.wait(seq);
                            problems.lock().expect("problems")[input] = Some(problem);
                            turn.advance(t, seq);
                        }
                        Job::Chunk(seq) => {
                            let input = chunk.input;
                            let last = chunk.last_of_input;
                            parser.parse(&chunk, |parsed, raw| {
                                let mut t = turn.wait(seq);
                                let mut alerts = Vec::new();
                                let first_line = t.lines[input];
                                let mut logged = t.logged[input];
                                t.pipeline.feed_parsed(parsed, raw, &mut alerts, &mut |i, reason| {
                                    if logged < opts.log_errors_per_input {
                                        logged += 1;
                                        tracing::warn!(input = %inputs[input].name(), line = first_line + i as u64 + 1, reason = %reason, "unreadable line skipped");
                                    }
                                });
                                t.logged[input] = logged;
                                t.lines[input] += parsed.len() as u64;
                                if last {
                                    stats_at_input_end.lock().expect("stats")[input] = Some(t.pipeline.stats().clone());
                                }
                                if !alerts.is_empty() && alert_tx.send(alerts).is_err() {
                                    t.failed.get_or_insert_with(|| io::Error::other("alert writer stopped"));
                                }
                                turn.advance(t, seq);
                            });
                        }
                    }
                }
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
                let entries = turn
                    .state
                    .lock()
                    .map(|t| t.pipeline.stats().entries)
                    .unwrap_or(0);
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

    let mut t = turn.state.into_inner().expect("turn");
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
    let problems = problems.into_inner().expect("problems");
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
    seq: u64,
    /// A read error of the input just ended, reported after its last chunk.
    problem: Option<(usize, String)>,
}

enum Job {
    Chunk(u64),
    Problem {
        seq: u64,
        input: usize,
        problem: String,
    },
    Done,
}

impl Feed<'_> {
    /// Fill `chunk` with the next lines of the stream (the last chunk of each input is
    /// sent even when empty, so the input's figures are taken at its end).
    fn next_job(&mut self, chunk: &mut Chunk) -> Job {
        if let Some((input, problem)) = self.problem.take() {
            return Job::Problem {
                seq: self.take_seq(),
                input,
                problem,
            };
        }
        if self.lines.is_none() {
            let Some(input) = self.inputs.get(self.idx) else {
                return Job::Done;
            };
            match open_input(input, self.read_bytes.clone()) {
                Ok(r) => {
                    let lines = ChunkReader::new(r, self.max_line_bytes);
                    self.lines = Some(match input {
                        Input::Stdin => lines.streaming(),
                        Input::File(_) => lines,
                    });
                }
                Err(e) => {
                    self.idx += 1;
                    return Job::Problem {
                        seq: self.take_seq(),
                        input: self.idx - 1,
                        problem: format!("cannot open: {e}"),
                    };
                }
            }
        }
        let idx = self.idx;
        let lines = self.lines.as_mut().expect("opened above");
        chunk.clear();
        chunk.input = idx;
        let ended = match lines.fill(chunk, CHUNK_BYTES) {
            Ok(false) => None,
            Ok(true) => Some(None),
            Err(e) => Some(Some(format!("read failed: {e}"))),
        };
        if let Some(problem) = ended {
            chunk.last_of_input = true;
            self.lines = None;
            self.problem = problem.map(|p| (self.idx, p));
            self.idx += 1;
        }
        chunk.seq = self.take_seq();
        Job::Chunk(chunk.seq)
    }

    fn take_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq - 1
    }
}

/// The engine's turn, passed along the stream order. A worker whose chunk is next spins
/// briefly before it sleeps: the turn usually comes within the engine time of one chunk,
/// and a futex sleep and wake-up per chunk cost more than the spin.
struct TurnGate<'p> {
    next: AtomicU64,
    state: Mutex<Turn<'p>>,
    cv: Condvar,
}

impl<'p> TurnGate<'p> {
    fn new(t: Turn<'p>) -> TurnGate<'p> {
        TurnGate {
            next: AtomicU64::new(0),
            state: Mutex::new(t),
            cv: Condvar::new(),
        }
    }

    fn wait(&self, seq: u64) -> std::sync::MutexGuard<'_, Turn<'p>> {
        let spin_until = Instant::now() + Duration::from_micros(500);
        let mut n = 0u32;
        while self.next.load(Ordering::Acquire) != seq {
            n += 1;
            if n.is_multiple_of(64) {
                if Instant::now() >= spin_until {
                    break;
                }
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        let mut t = self.state.lock().expect("turn");
        while self.next.load(Ordering::Acquire) != seq {
            t.sleepers += 1;
            t = self.cv.wait(t).expect("turn");
            t.sleepers -= 1;
        }
        t
    }

    /// Pass the turn on to `seq + 1`.
    fn advance(&self, t: std::sync::MutexGuard<'_, Turn<'p>>, seq: u64) {
        // Stored under the lock: a waiter checks `next` and goes to sleep under it too,
        // so it either sees the new value or is counted in `sleepers` and woken.
        self.next.store(seq + 1, Ordering::Release);
        let wake = t.sleepers > 0;
        drop(t);
        if wake {
            self.cv.notify_all();
        }
    }
}
