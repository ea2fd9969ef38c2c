//! Run the real `auditwatch` binary to completion (replay, simulate, rules and config
//! commands): its exit code, output, `--stats-json` summary and JSON-lines alerts.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// Command-line arguments of mixed types (`&str`, paths) as `OsString`s.
macro_rules! os_args {
    ($($a:expr),* $(,)?) => {
        vec![$(::std::ffi::OsString::from(::std::convert::AsRef::<::std::ffi::OsStr>::as_ref(&$a))),*]
    };
}
pub(crate) use os_args;

/// The binary under test, built by cargo for these tests: the one way every test finds it.
pub const BIN: &str = env!("CARGO_BIN_EXE_auditwatch");

/// No single run may take longer than this (a hang is a failure, not a stuck CI job).
const TIMEOUT: Duration = Duration::from_secs(180);

/// The crate root; commands run there so relative fixture paths are stable in messages.
pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One `auditwatch` invocation, built up and then [`Auditwatch::run`].
pub struct Auditwatch {
    cmd: Command,
    stdin: Option<Vec<u8>>,
    stats: Option<PathBuf>,
    dir: TempDir,
}

impl Auditwatch {
    pub fn new() -> Auditwatch {
        let mut cmd = Command::new(BIN);
        // What the machine's environment could change: the log filter, the config found.
        cmd.current_dir(crate_dir())
            .env_remove("AUDITWATCH_LOG")
            .env_remove("RUST_LOG")
            .env_remove("AUDITWATCH_CONFIG");
        Auditwatch {
            cmd,
            stdin: None,
            stats: None,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Auditwatch {
        self.cmd.arg(a);
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Auditwatch {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Auditwatch {
        self.cmd.env(k, v);
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Auditwatch {
        self.stdin = Some(bytes.into());
        self
    }

    /// Add `--stats-json FILE` (a fresh temp file); [`Run::stats`] reads it.
    pub fn with_stats(mut self) -> Auditwatch {
        let p = self.dir.path().join("stats.json");
        self.cmd.arg("--stats-json").arg(&p);
        self.stats = Some(p);
        self
    }

    /// Run to completion. Output goes through files (no pipe deadlocks); a run over
    /// [`TIMEOUT`] is killed and fails the test.
    pub fn run(mut self) -> Run {
        let out_path = self.dir.path().join("stdout");
        let err_path = self.dir.path().join("stderr");
        self.cmd
            .stdout(File::create(&out_path).expect("stdout file"))
            .stderr(File::create(&err_path).expect("stderr file"));
        match &self.stdin {
            Some(bytes) => {
                let p = self.dir.path().join("stdin");
                std::fs::write(&p, bytes).expect("stdin file");
                self.cmd.stdin(File::open(&p).expect("stdin file"));
            }
            None => {
                self.cmd.stdin(Stdio::null());
            }
        }
        let shown = format!("{:?}", self.cmd);
        let start = Instant::now();
        let mut child = self.cmd.spawn().expect("spawn auditwatch");
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if start.elapsed() > TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{shown} did not finish within {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
        let stats_text = self.stats.as_ref().and_then(|p| std::fs::read(p).ok());
        Run {
            command: shown,
            code: status
                .code()
                .unwrap_or_else(|| panic!("killed by a signal: {status}")),
            stdout: read(&out_path),
            stderr: read(&err_path),
            stats_text: stats_text.map(|b| String::from_utf8(b).expect("stats are UTF-8")),
        }
    }
}

/// `auditwatch ARGS...`
pub fn auditwatch<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Run {
    Auditwatch::new().args(args).run()
}

/// `auditwatch replay --stats-json TMP PATHS...`
pub fn replay<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Run {
    Auditwatch::new()
        .arg("replay")
        .with_stats()
        .args(args)
        .run()
}

/// The outcome of one run.
pub struct Run {
    pub command: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The `--stats-json` file's text, when one was asked for and written.
    pub stats_text: Option<String>,
}

impl Run {
    /// Everything the run showed, for assertion messages.
    pub fn context(&self) -> String {
        format!(
            "{}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.code,
            truncate(&self.stdout),
            truncate(&self.stderr)
        )
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "unexpected exit code\n{}", self.context());
        self
    }

    /// The parsed `--stats-json` document.
    #[track_caller]
    pub fn stats(&self) -> Value {
        let text = self
            .stats_text
            .as_deref()
            .unwrap_or_else(|| panic!("no stats file was written\n{}", self.context()));
        serde_json::from_str(text).expect("stats file is JSON")
    }

    /// A count of the stats: a top-level key (`entries`, `blank_lines`, ...) or a JSON
    /// pointer (`/entries_by_type/request`).
    #[track_caller]
    pub fn count(&self, key: &str) -> u64 {
        let stats = self.stats();
        let v = if key.starts_with('/') {
            stats.pointer(key)
        } else {
            stats.get(key)
        };
        v.and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("stats have no count `{key}`\n{}", self.context()))
    }

    /// Every parse-error reason with a non-zero count.
    pub fn nonzero_parse_errors(&self) -> Vec<(String, u64)> {
        let stats = self.stats();
        let map = stats["parse_errors"].as_object().expect("parse_errors map");
        map.iter()
            .filter_map(|(k, v)| {
                let n = v.as_u64().unwrap();
                (n > 0).then(|| (k.clone(), n))
            })
            .collect()
    }

    /// Assert the parse errors are exactly these (reason, count) pairs, and that the total
    /// agrees.
    #[track_caller]
    pub fn assert_parse_errors(&self, expected: &[(&str, u64)]) -> &Run {
        let mut want: Vec<(String, u64)> =
            expected.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        want.sort();
        let mut got = self.nonzero_parse_errors();
        got.sort();
        assert_eq!(got, want, "parse errors by reason\n{}", self.context());
        let total: u64 = expected.iter().map(|(_, n)| n).sum();
        assert_eq!(
            self.count("parse_errors_total"),
            total,
            "{}",
            self.context()
        );
        self
    }

    /// The alerts on stdout (JSON lines).
    #[track_caller]
    pub fn alerts(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("alert line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// The `request_id` of every alert on stdout, in output order.
    #[track_caller]
    pub fn alert_ids(&self) -> Vec<String> {
        self.alerts()
            .iter()
            .map(|a| a["request_id"].as_str().unwrap_or("<none>").to_string())
            .collect()
    }

    /// Assert the alerts on stdout are for exactly these request ids, in this order.
    #[track_caller]
    pub fn assert_alerts_for<S: AsRef<str>>(&self, ids: &[S]) -> &Run {
        let want: Vec<&str> = ids.iter().map(|s| s.as_ref()).collect();
        assert_eq!(
            self.alert_ids(),
            want,
            "alerts by request id\n{}",
            self.context()
        );
        self
    }

    #[track_caller]
    pub fn assert_no_alerts(&self) -> &Run {
        self.assert_alerts_for::<&str>(&[])
    }

    /// The `inputs` (or `skipped_inputs`) reports of the stats, by name.
    pub fn input_reports(&self, which: &str) -> Vec<Value> {
        self.stats()[which]
            .as_array()
            .expect("inputs array")
            .clone()
    }

    /// The file names (last path component) of the replayed inputs, in replay order.
    pub fn input_names(&self) -> Vec<String> {
        names(&self.input_reports("inputs"))
    }

    /// The file names of the inputs skipped as not audit logs.
    pub fn skipped_names(&self) -> Vec<String> {
        names(&self.input_reports("skipped_inputs"))
    }
}

fn names(reports: &[Value]) -> Vec<String> {
    reports
        .iter()
        .map(|r| {
            let n = r["name"].as_str().unwrap();
            Path::new(n)
                .file_name()
                .map_or(n.to_string(), |f| f.to_string_lossy().into_owned())
        })
        .collect()
}

fn truncate(s: &str) -> String {
    const MAX: usize = 6000;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n... ({} more bytes)", &s[..end], s.len() - end)
}

/// A temp directory with files written into it.
pub struct Dir {
    pub tmp: TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Write `bytes` to `name` (sub-directories are created) and return its path.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.tmp.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Write `lines`, each followed by `\n`.
    pub fn write_lines(&self, name: &str, lines: &[&[u8]]) -> PathBuf {
        self.write(name, join_lines(lines))
    }
}

/// Lines joined with `\n` after each.
pub fn join_lines(lines: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

/// gzip `bytes` as one member.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A simulated platform's stream (`simulate --inject all` over `duration` with `tenants`
/// and `seed`, written as `<name>.sim.jsonl` in `dir`) with two closing entries two hours
/// after its last, so that every timer is judged by the stream's own time (a jump of the
/// stream's time is held until the next entry confirms it), and what `replay` makes of it.
pub fn simulated_stream(
    dir: &Path,
    name: &str,
    duration: &str,
    tenants: usize,
    seed: u64,
) -> (Vec<Vec<u8>>, Vec<Value>) {
    let sim = dir.join(format!("{name}.sim.jsonl"));
    auditwatch([
        "simulate",
        "--duration",
        duration,
        "--tenants",
        &tenants.to_string(),
        "--inject",
        "all",
        "--seed",
        &seed.to_string(),
        "-o",
        sim.to_str().unwrap(),
    ])
    .assert_code(0);
    let text = std::fs::read(&sim).unwrap();
    let mut lines: Vec<Vec<u8>> = text
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    let last: Value = serde_json::from_slice(lines.last().unwrap()).unwrap();
    let t: jiff::Timestamp = last["time"].as_str().unwrap().parse().unwrap();
    for n in 0..2 {
        let closing = t + jiff::SignedDuration::from_secs(7200 + n);
        let id = super::request_id(0xc105e + seed as u32, n as u64);
        lines.push(format!("{}\n", super::response_line(&id, &closing.to_string())).into_bytes());
    }
    let all = dir.join(format!("{name}.jsonl"));
    std::fs::write(&all, lines.concat()).unwrap();
    let run = replay([all.to_str().unwrap()]);
    run.assert_code(0);
    (lines, run.alerts())
}
