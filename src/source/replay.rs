//! Replay: audit files at rest ([`super::input`]) through the pipeline, on the calling
//! thread, or on several ([`super::parallel`]) with exactly the same alerts and counts.

use std::io;
use std::time::{Duration, Instant};

use super::input::{open_input, total_size, Input, InputReport, Progress, ReplayOptions};
use super::lines::{Frame, LineReader};
use crate::alert::Alert;
use crate::pipeline::Pipeline;

/// Replay inputs through the pipeline; `emit` receives every alert as it is produced.
/// I/O errors on one input are recorded in its report and replay goes on.
pub fn replay(
    pipeline: &mut Pipeline,
    inputs: &[Input],
    opts: &ReplayOptions,
    progress: &mut dyn Progress,
    emit: &mut dyn FnMut(&Alert) -> io::Result<()>,
) -> io::Result<Vec<InputReport>> {
    if opts.threads > 1 {
        return super::parallel::replay_parallel(pipeline, inputs, opts, progress, emit);
    }
    let total = total_size(inputs);
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut last_progress = start;
    let mut alerts = Vec::new();
    let mut reports = Vec::new();
    for input in inputs {
        let name = input.name();
        let mut report = InputReport {
            name: name.clone(),
            ..InputReport::default()
        };
        let reader = match open_input(input, counter.clone()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(input = %name, error = %e, "cannot open input");
                report.problem = Some(format!("cannot open: {e}"));
                reports.push(report);
                continue;
            }
        };
        let before = pipeline.stats().clone();
        let mut lines = LineReader::new(reader, opts.max_line_bytes);
        let mut line_no: u64 = 0;
        let mut logged: u64 = 0;
        loop {
            let frame = match lines.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(input = %name, line = line_no + 1, error = %e, "read failed; the rest of this input is skipped");
                    report.problem = Some(format!("read failed after line {line_no}: {e}"));
                    break;
                }
            };
            line_no += 1;
            let result = match frame {
                Frame::Line(line) => pipeline.feed_line(line, &mut alerts),
                Frame::TooLong { len, head } => {
                    pipeline.record_too_long(len + 1, head, &mut alerts);
                    Err(crate::parse::ParseError::LineTooLong)
                }
            };
            if let Err(reason) = result {
                if logged < opts.log_errors_per_input {
                    logged += 1;
                    tracing::warn!(input = %name, line = line_no, reason = %reason, "unreadable line skipped");
                }
            }
            for a in alerts.drain(..) {
                emit(&a)?;
            }
            if line_no.is_multiple_of(4096) {
                let now = Instant::now();
                if now.duration_since(last_progress) >= Duration::from_millis(500) {
                    last_progress = now;
                    let done = counter.load(std::sync::atomic::Ordering::Relaxed);
                    progress.update(
                        done,
                        total,
                        pipeline.stats().entries,
                        now.duration_since(start),
                    );
                }
            }
        }
        let after = pipeline.stats();
        report.bytes = after.bytes - before.bytes;
        report.lines = after.lines - before.lines;
        report.entries = after.entries - before.entries;
        report.parse_errors = after.parse_errors_total() - before.parse_errors_total();
        if report.parse_errors > logged {
            tracing::warn!(input = %name, unreadable = report.parse_errors, "unreadable lines in this input (only the first {} logged)", logged);
        }
        reports.push(report);
    }
    pipeline.finish(&mut alerts);
    for a in alerts.drain(..) {
        emit(&a)?;
    }
    progress.done();
    Ok(reports)
}
