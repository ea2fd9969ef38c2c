//! Parallel replay: the same alerts as the one-thread path, on every core.
//!
//! A reader thread frames each input into chunks of whole lines. Worker threads parse
//! whole chunks into simd-json tapes at the same time (the costly part), then take turns,
//! strictly in chunk order, feeding their parsed entries to the one pipeline and engine.
//! Because the engine sees exactly the sequence the one-thread path would, alerts and
//! counts are identical; a test pins that. Memory stays bounded: a fixed number of chunk
//! buffers circulate between the reader and the workers.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::lines::{Frame, LineReader};
use super::replay::{open_input, total_size, Input, InputReport, Progress, ReplayOptions};
use crate::alert::Alert;
use crate::parse::batch::{BatchParser, Chunk, LineSpan};
use crate::pipeline::Pipeline;

/// Bytes of lines per chunk: large enough to amortise hand-offs (~500 lines), small enough
/// that the chunks in flight and their tapes stay well under the memory bound.
const CHUNK_BYTES: usize = 1024 * 1024;

/// Room reserved per chunk so typical lines never make the buffer double.
const CHUNK_CAPACITY: usize = CHUNK_BYTES + 256 * 1024;

/// What the reader tells the workers, in stream order.
enum Item {
    Chunk(Chunk),
    /// An input could not be opened or failed while read (after its last chunk).
    InputProblem {
        input: usize,
        problem: String,
    },
}

struct Turn<'p> {
    pipeline: &'p mut Pipeline,
    next: u64,
    logged: Vec<u64>,
    lines: Vec<u64>,
    failed: Option<io::Error>,
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

    // Chunk buffers circulate: reader -> workers -> back to the reader.
    let (work_tx, work_rx) = mpsc::sync_channel::<(u64, Item)>(threads * 2);
    let work_rx = Mutex::new(work_rx);
    let (free_tx, free_rx) = mpsc::channel::<Chunk>();
    for _ in 0..threads * 2 + 1 {
        let mut c = Chunk::default();
        c.data.reserve(CHUNK_CAPACITY);
        let _ = free_tx.send(c);
    }
    let (alert_tx, alert_rx) = mpsc::channel::<Vec<Alert>>();
    let stats_at_input_end: Mutex<Vec<Option<crate::pipeline::Stats>>> =
        Mutex::new(vec![None; inputs.len()]);
    let problems: Mutex<Vec<Option<String>>> = Mutex::new(vec![None; inputs.len()]);
    let turn = Mutex::new(Turn {
        pipeline,
        next: 0,
        logged: vec![0; inputs.len()],
        lines: vec![0; inputs.len()],
        failed: None,
    });
    let turn_cv = Condvar::new();
    let start = Instant::now();

    let emit_result = std::thread::scope(|s| {
        // Reader.
        let read_bytes_r = read_bytes.clone();
        s.spawn(move || {
            let mut seq = 0u64;
            for (idx, input) in inputs.iter().enumerate() {
                let reader = match open_input(input, read_bytes_r.clone()) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = work_tx.send((
                            seq,
                            Item::InputProblem {
                                input: idx,
                                problem: format!("cannot open: {e}"),
                            },
                        ));
                        seq += 1;
                        continue;
                    }
                };
                let mut lines = LineReader::new(reader, opts.max_line_bytes);
                let mut chunk = free_rx.recv().unwrap_or_default();
                chunk.clear();
                chunk.input = idx;
                let mut problem = None;
                loop {
                    match lines.next_frame() {
                        Ok(Some(Frame::Line(l))) => chunk.push_line(l),
                        Ok(Some(Frame::TooLong(n))) => chunk.lines.push(LineSpan::TooLong(n)),
                        Ok(None) => break,
                        Err(e) => {
                            problem = Some(format!("read failed: {e}"));
                            break;
                        }
                    }
                    if chunk.data.len() >= CHUNK_BYTES || chunk.lines.len() >= 65_536 {
                        chunk.seq = seq;
                        if work_tx.send((seq, Item::Chunk(chunk))).is_err() {
                            return;
                        }
                        seq += 1;
                        chunk = free_rx.recv().unwrap_or_default();
                        chunk.clear();
                        chunk.input = idx;
                    }
                }
                chunk.seq = seq;
                chunk.last_of_input = true;
                if work_tx.send((seq, Item::Chunk(chunk))).is_err() {
                    return;
                }
                seq += 1;
                if let Some(problem) = problem {
                    let _ = work_tx.send((
                        seq,
                        Item::InputProblem {
                            input: idx,
                            problem,
                        },
                    ));
                    seq += 1;
                }
            }
        });

        // Workers.
        for _ in 0..threads {
            let (work_rx, free_tx, alert_tx) = (&work_rx, free_tx.clone(), alert_tx.clone());
            let (turn, turn_cv, stats_at_input_end, problems) =
                (&turn, &turn_cv, &stats_at_input_end, &problems);
            let prefix = prefix.clone();
            s.spawn(move || {
                let mut parser = BatchParser::new(&prefix);
                loop {
                    let next = work_rx.lock().expect("work queue").recv();
                    let Ok((seq, item)) = next else { return };
                    match item {
                        Item::InputProblem { input, problem } => {
                            let mut t = wait_turn(turn, turn_cv, seq);
                            problems.lock().expect("problems")[input] = Some(problem);
                            t.next += 1;
                            turn_cv.notify_all();
                        }
                        Item::Chunk(mut chunk) => {
                            let input = chunk.input;
                            let last = chunk.last_of_input;
                            parser.parse(&mut chunk, |parsed, raw| {
                                let mut t = wait_turn(turn, turn_cv, seq);
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
                                t.next += 1;
                                turn_cv.notify_all();
                            });
                            let _ = free_tx.send(chunk);
                        }
                    }
                }
            });
        }
        drop(alert_tx);
        drop(free_tx);

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

fn wait_turn<'a, 'p>(
    turn: &'a Mutex<Turn<'p>>,
    cv: &Condvar,
    seq: u64,
) -> std::sync::MutexGuard<'a, Turn<'p>> {
    let mut t = turn.lock().expect("turn");
    while t.next != seq {
        t = cv.wait(t).expect("turn");
    }
    t
}
