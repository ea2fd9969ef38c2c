//! JSON lines: one alert record per line to stdout or a file, for SIEM shippers and
//! forensics. A file is appended to, reopened on SIGHUP (logrotate's `create` + a
//! `postrotate` kill -HUP), and, with `output.rotate_bytes`, rotated by size itself:
//! `alerts.jsonl` becomes `alerts.jsonl.1`, the older ones shift up to `keep_files` and the
//! oldest goes. A line is never split across two files.
//!
//! `output.format: ecs` writes each alert as Elastic Common Schema ([`crate::alert::ecs`])
//! instead of the record, for a shipper that sends the file to an ECS index as it is.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{Metrics, SinkDrop, SinkName};
use crate::yaml::{self, Ctx, MapReader};

use super::{Inbox, Msg, Running, SinkError, Taken};

pub const NAME: &str = SinkName::Jsonl.as_str();

/// `output`: where alerts go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertOutput {
    Stdout,
    File(PathBuf),
}

/// `output.format`: how each alert is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LineFormat {
    /// The alert record (`shared/docs/detections.md`).
    #[default]
    Jsonl,
    /// The record mapped to Elastic Common Schema.
    Ecs,
}

impl LineFormat {
    pub fn line(self, a: &crate::alert::Alert) -> String {
        match self {
            LineFormat::Jsonl => a.to_json_line(),
            LineFormat::Ecs => a.to_ecs_line(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub target: AlertOutput,
    pub format: LineFormat,
    /// Rotate the file before it would pass this size; 0: never (leave it to logrotate).
    pub rotate_bytes: u64,
    /// Rotated files kept (`alerts.jsonl.1` … `.N`).
    pub keep_files: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            target: AlertOutput::Stdout,
            format: LineFormat::Jsonl,
            rotate_bytes: 0,
            keep_files: 5,
        }
    }
}

/// `output.alerts`, `output.format`, `output.rotate_bytes`, `output.keep_files`.
pub fn apply(ctx: &mut Ctx, m: &mut MapReader<'_>, s: &mut Settings) {
    if let Some(n) = m.take("alerts") {
        match yaml::string(ctx, n, "output.alerts").as_deref() {
            Some("stdout") | Some("-") => s.target = AlertOutput::Stdout,
            Some("") => ctx.error(n, "output.alerts must be `stdout` or a file path"),
            Some(p) => s.target = AlertOutput::File(PathBuf::from(p)),
            None => {}
        }
    }
    if let Some(n) = m.take("format") {
        match yaml::string(ctx, n, "output.format").as_deref() {
            Some("jsonl") => s.format = LineFormat::Jsonl,
            Some("ecs") => s.format = LineFormat::Ecs,
            Some(other) => ctx.error(
                n,
                format!("output.format must be `jsonl` (the alert record) or `ecs` (Elastic Common Schema), not `{other}`"),
            ),
            None => {}
        }
    }
    if let Some(n) = m.take("rotate_bytes") {
        match yaml::uint(ctx, n, "output.rotate_bytes") {
            Some(v) if v == 0 || v >= 4096 => s.rotate_bytes = v,
            Some(_) => ctx.error(n, "output.rotate_bytes must be 0 (never) or at least 4096"),
            None => {}
        }
    }
    if let Some(n) = m.take("keep_files") {
        match yaml::positive(ctx, n, "output.keep_files") {
            Some(v) if v <= 1000 => s.keep_files = v as u32,
            Some(_) => ctx.error(n, "output.keep_files must be between 1 and 1000"),
            None => {}
        }
    }
}

/// Open the output (so a bad path fails the start) and run the writer thread.
pub fn start(
    s: &Settings,
    queue_alerts: usize,
    metrics: Arc<Metrics>,
    ledger: Option<super::ledger::Ledger>,
) -> Result<Running, SinkError> {
    let out = Output::open(s).map_err(|e| SinkError::Output {
        path: match &s.target {
            AlertOutput::Stdout => "stdout".into(),
            AlertOutput::File(p) => p.display().to_string(),
        },
        source: e,
    })?;
    let (tx, inbox) = super::queue(queue_alerts);
    let inbox = inbox.with_ledger(NAME, ledger, metrics.clone());
    let thread = std::thread::Builder::new()
        .name("auditwatch-jsonl".into())
        .spawn(move || run(out, inbox, metrics))
        .map_err(|e| SinkError::Setup {
            sink: NAME,
            message: e.to_string(),
        })?;
    Ok(Running {
        name: NAME,
        tx,
        thread,
    })
}

fn run(mut out: Output, inbox: Inbox, metrics: Arc<Metrics>) {
    let delivered = metrics.sink_delivered.with_label_values(&[NAME]);
    let dropped = metrics
        .sink_dropped
        .with_label_values(&[NAME, SinkDrop::WriteError.as_str()]);
    let backlog = metrics.sink_backlog.with_label_values(&[NAME]);
    let receipts = inbox.receipts();
    // The alerts in the buffer, oldest first.
    let mut buffered: std::collections::VecDeque<Taken> = Default::default();
    // An alert counts as delivered once its bytes were written, and as dropped (with the
    // error, once per failed write) when they could not be: a full disk is never silent.
    let account = |f: Flushed, buffered: &mut std::collections::VecDeque<Taken>| {
        // A write that failed may have cut anything it covered: none of it is recorded as
        // delivered (a restart may write it again rather than never).
        let ok = f.error.is_none();
        for t in buffered.drain(..(f.written + f.lost) as usize) {
            receipts.done_taken(t, ok);
        }
        delivered.inc_by(f.written);
        if let Some(e) = f.error {
            dropped.inc_by(f.lost);
            metrics.alert_write_errors.inc_by(f.lost);
            tracing::error!(error = %e, alerts = f.lost, "cannot write alerts to the output; they are lost for this sink");
        }
    };
    loop {
        // Write out when the queue runs dry, so a line is on disk within moments of its alert.
        let wait = if out.pending > 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(200)
        };
        match inbox.recv_timeout(wait) {
            Ok(Msg::Alert(a)) => {
                let mut line = out.s.format.line(&a);
                line.push('\n');
                buffered.push_back(Taken::now(&a));
                account(out.push(line.as_bytes()), &mut buffered);
            }
            Ok(Msg::Reopen) => {
                account(out.flush(), &mut buffered);
                if let Err(e) = out.reopen() {
                    tracing::error!(error = %e, "cannot reopen the alert output; keeping the old one");
                }
            }
            Err(RecvTimeoutError::Timeout) => account(out.flush(), &mut buffered),
            Err(RecvTimeoutError::Disconnected) => {
                account(out.flush(), &mut buffered);
                return;
            }
        }
        backlog.set((inbox.queued() + out.pending) as i64);
    }
}

/// What writing the buffered lines did.
#[derive(Default)]
struct Flushed {
    /// Alerts whose lines were written.
    written: u64,
    /// Alerts whose lines could not be written (with `error`).
    lost: u64,
    error: Option<io::Error>,
}

/// Lines are collected in `buf` and written in one go when the queue runs dry or 64 KiB
/// are waiting, so each alert's fate (written or lost) is known.
struct Output {
    s: Settings,
    out: Box<dyn Write + Send>,
    /// Bytes in the current file (files only).
    size: u64,
    buf: Vec<u8>,
    /// Alerts in `buf`.
    pending: u64,
}

const BUFFER: usize = 64 * 1024;

impl Output {
    fn open(s: &Settings) -> io::Result<Output> {
        let (out, size): (Box<dyn Write + Send>, u64) = match &s.target {
            AlertOutput::Stdout => (Box::new(io::stdout()), 0),
            AlertOutput::File(p) => {
                let f = open_append(p)?;
                let size = f.metadata()?.len();
                (Box::new(f), size)
            }
        };
        Ok(Output {
            s: s.clone(),
            out,
            size,
            buf: Vec::with_capacity(BUFFER),
            pending: 0,
        })
    }

    /// Reopen the file (after logrotate moved it); the caller writes out the buffer first,
    /// so the lines raised before the SIGHUP stay in the moved file.
    fn reopen(&mut self) -> io::Result<()> {
        if let AlertOutput::File(_) = self.s.target {
            debug_assert!(self.buf.is_empty());
            *self = Output::open(&self.s)?;
        }
        Ok(())
    }

    /// Add one line; writes out first when the line would pass `rotate_bytes` (then
    /// rotates) or the buffer is full.
    fn push(&mut self, line: &[u8]) -> Flushed {
        let mut done = Flushed::default();
        let (cap, used) = (self.s.rotate_bytes, self.size + self.buf.len() as u64);
        if cap > 0 && used > 0 && used + line.len() as u64 > cap {
            if let AlertOutput::File(p) = self.s.target.clone() {
                done = self.flush();
                match rotate(&p, self.s.keep_files).and_then(|()| open_append(&p)) {
                    Ok(f) => {
                        self.out = Box::new(f);
                        self.size = 0;
                        tracing::info!(path = %p.display(), "rotated the alert output");
                    }
                    // Keep appending to the file we have: an oversized file beats lost alerts.
                    // The next attempt comes after another `rotate_bytes`.
                    Err(e) => {
                        self.size = 0;
                        tracing::error!(error = %e, path = %p.display(), "cannot rotate the alert output; still writing to it")
                    }
                }
            }
        }
        self.buf.extend_from_slice(line);
        self.pending += 1;
        if self.buf.len() >= BUFFER {
            let more = self.flush();
            done.written += more.written;
            done.lost += more.lost;
            done.error = done.error.or(more.error);
        }
        done
    }

    /// Write out the buffered lines.
    fn flush(&mut self) -> Flushed {
        if self.buf.is_empty() {
            return Flushed::default();
        }
        let n = std::mem::take(&mut self.pending);
        let r = self
            .out
            .write_all(&self.buf)
            .and_then(|()| self.out.flush());
        self.size += self.buf.len() as u64;
        self.buf.clear();
        match r {
            Ok(()) => Flushed {
                written: n,
                ..Flushed::default()
            },
            Err(e) => Flushed {
                lost: n,
                error: Some(e),
                ..Flushed::default()
            },
        }
    }
}

/// Open for appending. A file whose last line was cut (the process was killed while
/// writing it) is ended with a newline first, so the next alert starts a line of its own
/// and a shipper reading lines loses only the cut one (whose alert, not recorded as
/// delivered, is written again when its input is processed again).
fn open_append(p: &Path) -> io::Result<File> {
    use std::os::unix::fs::FileExt;
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(p)?;
    let len = f.metadata()?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        f.read_exact_at(&mut last, len - 1)?;
        if last[0] != b'\n' {
            tracing::warn!(path = %p.display(), "the alert output ends with a cut line (a crash while writing it): ending it before appending");
            f.write_all(b"\n")?;
        }
    }
    Ok(f)
}

fn numbered(p: &Path, n: u32) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// `p` → `p.1`, `p.1` → `p.2`, …; `p.keep` is replaced.
fn rotate(p: &Path, keep: u32) -> io::Result<()> {
    for n in (1..keep).rev() {
        let from = numbered(p, n);
        if from.exists() {
            std::fs::rename(&from, numbered(p, n + 1))?;
        }
    }
    std::fs::rename(p, numbered(p, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_without_splitting_lines_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alerts.jsonl");
        let s = Settings {
            format: LineFormat::Jsonl,
            target: AlertOutput::File(p.clone()),
            rotate_bytes: 4096,
            keep_files: 2,
        };
        let mut o = Output::open(&s).unwrap();
        let line = format!("{{\"n\":\"{}\"}}\n", "x".repeat(1000));
        for _ in 0..17 {
            assert!(o.push(line.as_bytes()).error.is_none());
        }
        assert!(o.flush().error.is_none());
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        // 4 lines fit in 4096 bytes: 17 lines = 4 full files + 1 line; 2 old ones kept.
        assert_eq!(read(&p).lines().count(), 1);
        assert_eq!(read(&numbered(&p, 1)).lines().count(), 4);
        assert_eq!(read(&numbered(&p, 2)).lines().count(), 4);
        assert!(!numbered(&p, 3).exists());
        for f in [p.clone(), numbered(&p, 1), numbered(&p, 2)] {
            assert!(std::fs::metadata(&f).unwrap().len() <= 4096);
            assert!(read(&f).lines().all(|l| l == line.trim_end()));
        }
    }

    #[test]
    fn appends_to_an_existing_file_and_counts_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alerts.jsonl");
        std::fs::write(&p, "x".repeat(4000) + "\n").unwrap();
        let s = Settings {
            format: LineFormat::Jsonl,
            target: AlertOutput::File(p.clone()),
            rotate_bytes: 4096,
            keep_files: 3,
        };
        let mut o = Output::open(&s).unwrap();
        assert!(o.push(b"{\"a\":1}\n").error.is_none());
        assert!(o.push(&[b'y'; 200]).error.is_none());
        assert!(o.flush().error.is_none());
        assert_eq!(std::fs::read(&p).unwrap().len(), 200);
        assert_eq!(std::fs::read(numbered(&p, 1)).unwrap().len(), 4009);
    }

    /// A full disk: every alert that could not be written is reported lost, none delivered.
    #[test]
    fn a_full_disk_loses_alerts_counted_never_silently() {
        let s = Settings {
            format: LineFormat::Jsonl,
            target: AlertOutput::File(PathBuf::from("/dev/full")),
            rotate_bytes: 0,
            keep_files: 1,
        };
        let mut o = Output::open(&s).unwrap();
        for _ in 0..3 {
            let f = o.push(b"{\"a\":1}\n");
            assert_eq!((f.written, f.lost), (0, 0), "buffered, not yet written");
        }
        let f = o.flush();
        assert_eq!((f.written, f.lost), (0, 3));
        assert!(f.error.is_some());
        assert_eq!(o.pending, 0);
        // A line bigger than the buffer is written (and lost) at once.
        let f = o.push(&vec![b'z'; BUFFER + 1]);
        assert_eq!((f.written, f.lost), (0, 1));
    }

    /// A line cut by a crash is ended before the next alert is appended.
    #[test]
    fn a_cut_last_line_is_ended_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alerts.jsonl");
        std::fs::write(&p, b"{\"id\":\"a\"}\n{\"id\":\"b\",\"ru").unwrap();
        let mut f = open_append(&p).unwrap();
        f.write_all(b"{\"id\":\"c\"}\n").unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().last(), Some("{\"id\":\"c\"}"), "{text}");
        drop(f);
        // A whole file is left as it is.
        let before = std::fs::read(&p).unwrap();
        drop(open_append(&p).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }
}
