//! Replay: audit files at rest. Inputs are files (plain or gzip, told by their magic
//! bytes), directories (their files in rotation order: oldest first, ordered by each file's
//! first timestamp, then by name with numeric rotation suffixes), or `-` for stdin.
//! Every input is streamed; nothing is read whole.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;

use super::lines::{Frame, LineReader};
use crate::alert::Alert;
use crate::pipeline::Pipeline;

/// One input to replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "-".into(),
            Input::File(p) => p.display().to_string(),
        }
    }
}

/// What happened to one input.
#[derive(Clone, Debug, Default)]
pub struct InputReport {
    pub name: String,
    pub bytes: u64,
    pub lines: u64,
    pub entries: u64,
    pub parse_errors: u64,
    /// Why the input was skipped or cut short, if it was.
    pub problem: Option<String>,
    pub skipped: bool,
}

/// Expand command-line paths into inputs. Errors name paths that do not exist.
pub fn expand(paths: &[String]) -> Result<(Vec<Input>, Vec<InputReport>), String> {
    let mut inputs = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        if p == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        let path = Path::new(p);
        let meta = std::fs::metadata(path).map_err(|e| format!("{p}: {e}"))?;
        if meta.is_dir() {
            let (mut files, mut skips) = directory_files(path).map_err(|e| format!("{p}: {e}"))?;
            inputs.append(&mut files);
            skipped.append(&mut skips);
        } else {
            inputs.push(Input::File(path.to_path_buf()));
        }
    }
    Ok((inputs, skipped))
}

/// The files of a directory in replay order, and those skipped as not audit logs.
fn directory_files(dir: &Path) -> io::Result<(Vec<Input>, Vec<InputReport>)> {
    let mut candidates = Vec::new();
    let mut skipped = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') || !p.is_file() {
            continue;
        }
        match sniff(&p) {
            Ok(Sniff::Audit(first_time)) => candidates.push((first_time, rotation_key(&name), p)),
            Ok(Sniff::NotAudit) => skipped.push(InputReport {
                name: p.display().to_string(),
                problem: Some(
                    "skipped: not an audit log (no audit entry among its first lines)".into(),
                ),
                skipped: true,
                ..InputReport::default()
            }),
            Err(e) => skipped.push(InputReport {
                name: p.display().to_string(),
                problem: Some(format!("skipped: cannot read: {e}")),
                skipped: true,
                ..InputReport::default()
            }),
        }
    }
    candidates.sort_by(|a, b| {
        let ta = a.0.unwrap_or(i64::MAX);
        let tb = b.0.unwrap_or(i64::MAX);
        ta.cmp(&tb).then_with(|| a.1.cmp(&b.1))
    });
    Ok((
        candidates
            .into_iter()
            .map(|(_, _, p)| Input::File(p))
            .collect(),
        skipped,
    ))
}

/// Name order for rotated sets when timestamps do not decide: `audit.log.3.gz` before
/// `audit.log.2` before `audit.log.1` before `audit.log` (higher suffix = older).
fn rotation_key(name: &str) -> (String, i64, String) {
    let stem = name.strip_suffix(".gz").unwrap_or(name);
    if let Some((base, n)) = stem.rsplit_once('.') {
        if let Ok(n) = n.parse::<i64>() {
            return (base.to_string(), -n, name.to_string());
        }
    }
    (stem.to_string(), 0, name.to_string())
}

enum Sniff {
    /// An audit log, with its first timestamp when one was seen.
    Audit(Option<i64>),
    NotAudit,
}

fn sniff(path: &Path) -> io::Result<Sniff> {
    let mut head = Vec::with_capacity(64 * 1024);
    open_reader(path)?.take(64 * 1024).read_to_end(&mut head)?;
    // An audit log is a file where one of the first lines parses as an audit entry; the
    // real parser decides, so prefixes, NUL runs and old shapes are recognised alike.
    let mut parser = crate::parse::Parser::default();
    let mut seen_entry = false;
    let mut first_time = None;
    for line in head.split_mut(|&b| b == b'\n').take(64) {
        parser.parse(line, |_, r| {
            if let Ok(e) = r {
                seen_entry = true;
                first_time = first_time.or(e.time);
            }
        });
        if first_time.is_some() {
            break;
        }
    }
    Ok(if seen_entry {
        Sniff::Audit(first_time)
    } else {
        Sniff::NotAudit
    })
}

/// Counts bytes read from the underlying file (compressed bytes for gzip).
struct Counting<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

fn open_reader(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let mut f = File::open(path)?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut f, &mut magic)?;
    let f = File::open(path)?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(MultiGzDecoder::new(BufReader::with_capacity(
            256 * 1024,
            f,
        ))))
    } else {
        Ok(Box::new(f))
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Progress reporting hook, called about twice a second.
pub trait Progress {
    fn update(
        &mut self,
        bytes_done: u64,
        bytes_total: Option<u64>,
        entries: u64,
        elapsed: Duration,
    );
    fn done(&mut self) {}
}

/// Replay options.
pub struct ReplayOptions {
    pub max_line_bytes: usize,
    /// Log at most this many parse errors per input (the rest are counted).
    pub log_errors_per_input: u64,
}

/// Replay inputs through the pipeline; `emit` receives every alert as it is produced.
/// I/O errors on one input are recorded in its report and replay goes on.
pub fn replay(
    pipeline: &mut Pipeline,
    inputs: &[Input],
    opts: &ReplayOptions,
    progress: &mut dyn Progress,
    emit: &mut dyn FnMut(&Alert) -> io::Result<()>,
) -> io::Result<Vec<InputReport>> {
    let total: Option<u64> = inputs
        .iter()
        .map(|i| match i {
            Input::Stdin => None,
            Input::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
        })
        .sum();
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
        let reader: io::Result<Box<dyn Read + Send>> = match input {
            Input::Stdin => Ok(Box::new(io::stdin())),
            Input::File(p) => open_reader(p),
        };
        let reader = match reader {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(input = %name, error = %e, "cannot open input");
                report.problem = Some(format!("cannot open: {e}"));
                reports.push(report);
                continue;
            }
        };
        let counting = Counting {
            inner: reader,
            count: counter.clone(),
        };
        let before = pipeline.stats().clone();
        let mut lines = LineReader::new(counting, opts.max_line_bytes);
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
                Frame::TooLong(n) => {
                    pipeline.record_too_long(n + 1);
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

#[cfg(test)]
mod tests {
    use super::rotation_key;

    #[test]
    fn rotation_suffixes_order_oldest_first() {
        let mut names = vec![
            "audit.log",
            "audit.log.1",
            "audit.log.3.gz",
            "audit.log.2.gz",
        ];
        names.sort_by_key(|n| rotation_key(n));
        assert_eq!(
            names,
            vec![
                "audit.log.3.gz",
                "audit.log.2.gz",
                "audit.log.1",
                "audit.log"
            ]
        );
    }
}
