//! JSON lines: one alert record per line to stdout or a file, for SIEM shippers and
//! forensics. A file is appended to, reopened on SIGHUP (logrotate's `create` + a
//! `postrotate` kill -HUP), and, with `output.rotate_bytes`, rotated by size itself:
//! `alerts.jsonl` becomes `alerts.jsonl.1`, the older ones shift up to `keep_files` and the
//! oldest goes. A line is never split across two files.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;

use crate::config::daemon::AlertOutput;
use crate::config::yaml::{self, Ctx, MapReader};
use crate::metrics::Metrics;

use super::{Inbox, Msg, Running, SinkError};

const NAME: &str = "jsonl";

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub target: AlertOutput,
    /// Rotate the file before it would pass this size; 0: never (leave it to logrotate).
    pub rotate_bytes: u64,
    /// Rotated files kept (`alerts.jsonl.1` … `.N`).
    pub keep_files: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            target: AlertOutput::Stdout,
            rotate_bytes: 0,
            keep_files: 5,
        }
    }
}

/// `output.alerts`, `output.rotate_bytes`, `output.keep_files`.
pub fn apply(ctx: &mut Ctx, m: &mut MapReader<'_>, s: &mut Settings) {
    if let Some(n) = m.take("alerts") {
        match yaml::string(ctx, n, "output.alerts").as_deref() {
            Some("stdout") | Some("-") => s.target = AlertOutput::Stdout,
            Some("") => ctx.error(n, "output.alerts must be `stdout` or a file path"),
            Some(p) => s.target = AlertOutput::File(PathBuf::from(p)),
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
) -> Result<Running, SinkError> {
    let out = Output::open(s).map_err(|e| SinkError::Output {
        path: match &s.target {
            AlertOutput::Stdout => "stdout".into(),
            AlertOutput::File(p) => p.display().to_string(),
        },
        source: e,
    })?;
    let (tx, inbox) = super::queue(queue_alerts);
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
    let backlog = metrics.sink_backlog.with_label_values(&[NAME]);
    let mut dirty = false;
    loop {
        // Flush when the queue runs dry, so a line is on disk within moments of its alert.
        let wait = if dirty {
            Duration::ZERO
        } else {
            Duration::from_millis(200)
        };
        match inbox.recv_timeout(wait) {
            Ok(Msg::Alert(a)) => {
                let mut line = a.to_json_line();
                line.push('\n');
                match out.write_line(line.as_bytes()) {
                    Ok(()) => {
                        delivered.inc();
                        dirty = true;
                    }
                    Err(e) => {
                        metrics.alert_write_errors.inc();
                        metrics
                            .sink_dropped
                            .with_label_values(&[NAME, "write_error"])
                            .inc();
                        tracing::error!(error = %e, rule = %a.rule, "cannot write an alert");
                    }
                }
            }
            Ok(Msg::Reopen) => {
                if let Err(e) = out.reopen() {
                    tracing::error!(error = %e, "cannot reopen the alert output; keeping the old one");
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if dirty {
                    out.flush(&metrics);
                    dirty = false;
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                out.flush(&metrics);
                return;
            }
        }
        backlog.set(inbox.queued() as i64);
    }
}

struct Output {
    s: Settings,
    out: BufWriter<Box<dyn Write + Send>>,
    /// Bytes in the current file (files only).
    size: u64,
}

impl Output {
    fn open(s: &Settings) -> io::Result<Output> {
        let (w, size): (Box<dyn Write + Send>, u64) = match &s.target {
            AlertOutput::Stdout => (Box::new(io::stdout()), 0),
            AlertOutput::File(p) => {
                let f = open_append(p)?;
                let size = f.metadata()?.len();
                (Box::new(f), size)
            }
        };
        Ok(Output {
            s: s.clone(),
            out: BufWriter::with_capacity(64 * 1024, w),
            size,
        })
    }

    fn reopen(&mut self) -> io::Result<()> {
        if let AlertOutput::File(_) = self.s.target {
            self.out.flush()?;
            *self = Output::open(&self.s)?;
        }
        Ok(())
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if let AlertOutput::File(p) = &self.s.target {
            let cap = self.s.rotate_bytes;
            if cap > 0 && self.size > 0 && self.size + line.len() as u64 > cap {
                self.out.flush()?;
                rotate(p, self.s.keep_files)?;
                let p = p.clone();
                self.out = BufWriter::with_capacity(64 * 1024, Box::new(open_append(&p)?));
                self.size = 0;
                tracing::info!(path = %p.display(), "rotated the alert output");
            }
        }
        self.out.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn flush(&mut self, metrics: &Metrics) {
        if let Err(e) = self.out.flush() {
            metrics.alert_write_errors.inc();
            tracing::error!(error = %e, "cannot flush alerts");
        }
    }
}

fn open_append(p: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(p)
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
            target: AlertOutput::File(p.clone()),
            rotate_bytes: 4096,
            keep_files: 2,
        };
        let mut o = Output::open(&s).unwrap();
        let line = format!("{{\"n\":\"{}\"}}\n", "x".repeat(1000));
        for _ in 0..17 {
            o.write_line(line.as_bytes()).unwrap();
        }
        o.out.flush().unwrap();
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
            target: AlertOutput::File(p.clone()),
            rotate_bytes: 4096,
            keep_files: 3,
        };
        let mut o = Output::open(&s).unwrap();
        o.write_line(b"{\"a\":1}\n").unwrap();
        o.write_line(&[b'y'; 200]).unwrap();
        o.out.flush().unwrap();
        assert_eq!(std::fs::read(&p).unwrap().len(), 200);
        assert_eq!(std::fs::read(numbered(&p, 1)).unwrap().len(), 4009);
    }
}
