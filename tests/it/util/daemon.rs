//! Start the real `auditwatch run` binary with a config, learn its bound addresses from its
//! log, talk to it, signal it, and kill it on drop. Every wait is bounded; only loopback
//! and ephemeral ports are used.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cli::BIN;

/// A running daemon.
pub struct Daemon {
    child: Option<Child>,
    pub alerts_path: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    pub http: Option<String>,
    pub sources: BTreeMap<String, String>,
}

/// How a daemon ended.
pub struct Exit {
    pub code: Option<i32>,
    pub log: String,
}

impl Daemon {
    /// Start `auditwatch run --config DIR/config.yaml [args]`; alerts go to DIR/alerts.jsonl
    /// (the config's `output` is set here). Waits for "auditwatch running".
    pub fn start(dir: &Path, config: &str, args: &[&str]) -> Daemon {
        Daemon::start_env(dir, config, args, &[])
    }

    /// [`Daemon::start`] with extra environment variables.
    pub fn start_env(dir: &Path, config: &str, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let cfg_path = dir.join("config.yaml");
        let alerts_path = dir.join("alerts.jsonl");
        // A config that sets `output` itself must write to `<dir>/alerts.jsonl`.
        let mut text = if config.contains("output:") {
            format!("{config}\n")
        } else {
            format!(
                "{config}\noutput: {{alerts: '{}'}}\n",
                alerts_path.display()
            )
        };
        if !config.contains("spool:") {
            // Inside the test's directory, so even a killed daemon leaves nothing behind.
            text.push_str(&format!(
                "spool: {{dir: '{}'}}\n",
                dir.join("spool").display()
            ));
        }
        std::fs::write(&cfg_path, text).expect("write config");
        let mut cmd = Command::new(BIN);
        cmd.arg("run")
            .arg("--config")
            .arg(&cfg_path)
            .args(args)
            // The test's own variables win (a test of the default log filter sets it empty).
            .env("AUDITWATCH_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn auditwatch run");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut d = Daemon {
            child: Some(child),
            alerts_path,
            log,
            reader: Some(reader),
            http: None,
            sources: BTreeMap::new(),
        };
        d.wait_log("auditwatch running", Duration::from_secs(30));
        for line in d.log_lines() {
            if line.contains("http endpoint listening") {
                d.http = field(&line, "address");
            }
            if line.contains("source listening") {
                if let (Some(s), Some(a)) = (field(&line, "source"), field(&line, "address")) {
                    d.sources.insert(s, a);
                }
            }
        }
        d
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn log_text(&self) -> String {
        self.log_lines().join("\n")
    }

    /// Wait until a log line contains `needle`; panics with the log after `timeout`.
    #[track_caller]
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            if self.log_lines().iter().any(|l| l.contains(needle)) {
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    std::thread::sleep(Duration::from_millis(100));
                    panic!(
                        "auditwatch exited ({status}) before logging `{needle}`:\n{}",
                        self.log_text()
                    );
                }
            }
            if start.elapsed() > timeout {
                panic!(
                    "no `{needle}` in the log within {timeout:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn source(&self, name: &str) -> String {
        self.sources
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no source `{name}` in {:?}", self.sources))
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// SIGTERM and wait (bounded) for the exit.
    pub fn stop(mut self) -> Exit {
        let start = Instant::now();
        self.signal("TERM");
        let mut child = self.child.take().expect("running");
        let code = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s.code();
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "auditwatch did not exit within 60s of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // The whole log, up to the pipe's end.
        if let Some(r) = self.reader.take() {
            let t = Instant::now();
            while !r.is_finished() && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Exit {
            code,
            log: self.log_text(),
        }
    }

    /// One HTTP GET to the daemon's endpoint: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http.as_deref().expect("http endpoint"), path)
    }

    /// Write `input` to the TCP source `source` over one connection, then close it.
    pub fn send(&self, source: &str, input: &[u8]) {
        let mut s = TcpStream::connect(self.source(source)).unwrap();
        s.write_all(input).unwrap();
    }

    /// [`Daemon::send`], then wait until the source has read every line of `input`.
    pub fn send_and_wait_read(&self, source: &str, input: &[u8]) {
        self.send(source, input);
        let lines = input
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count() as f64;
        let label = format!("source=\"{source}\"");
        self.wait_until("every entry read", Duration::from_secs(30), |d| {
            d.metric("auditwatch_events_total", &[&label]) >= lines
        });
    }

    /// The sum of every series of `name` whose labels contain all of `labels`
    /// (`source="x"` pairs).
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let (code, body) = self.get("/metrics");
        assert_eq!(code, 200);
        metric_sum(&body, name, labels)
    }

    /// Poll until `f` holds (bounded).
    #[track_caller]
    pub fn wait_until(&self, what: &str, timeout: Duration, f: impl FnMut(&Daemon) -> bool) {
        self.wait_polling(what, timeout, Duration::from_millis(50), f)
    }

    /// [`Daemon::wait_until`], polling every `every`: a timing taken from when `f` first
    /// holds is late by up to one interval.
    #[track_caller]
    pub fn wait_polling(
        &self,
        what: &str,
        timeout: Duration,
        every: Duration,
        mut f: impl FnMut(&Daemon) -> bool,
    ) {
        let start = Instant::now();
        while !f(self) {
            if start.elapsed() > timeout {
                panic!("timed out waiting for {what}:\n{}", self.log_text());
            }
            std::thread::sleep(every);
        }
    }

    /// Alerts written so far.
    pub fn alerts(&self) -> Vec<Value> {
        read_alerts(&self.alerts_path)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn read_alerts(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // A line still being written is not an alert yet.
    let whole = &text[..text.rfind('\n').map_or(0, |p| p + 1)];
    whole
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("alert is not JSON ({e}): {l}")))
        .collect()
}

/// The daemon's records with `observer` (the detector instance, which the library pipeline
/// does not know) checked present and set to null, to compare them with the library's.
pub fn without_observer(mut alerts: Vec<Value>) -> Vec<Value> {
    for a in &mut alerts {
        let o = a
            .get_mut("observer")
            .expect("a daemon record carries observer");
        assert!(
            o.as_str().is_some_and(|s| !s.is_empty()),
            "observer is the instance name: {o}"
        );
        *o = Value::Null;
    }
    alerts
}

/// `key=value` from a compact tracing line.
pub fn field(line: &str, key: &str) -> Option<String> {
    let pat = format!(" {key}=");
    let at = line.find(&pat)? + pat.len();
    let rest = &line[at..];
    let v = rest.split_whitespace().next()?;
    Some(v.trim_matches('"').to_string())
}

/// Poll `f` until it holds; after `timeout`, fail saying `what` and `context()`.
#[track_caller]
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The wall clock in Unix nanoseconds, to date a stream in the recent past.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Timed lines `(unix ns, line)` as JSON-lines input.
pub fn timed_bytes(lines: &[(i64, String)]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|(_, l)| format!("{l}\n").into_bytes())
        .collect()
}

/// One daemon after the other on `config` (whose `state` block they share), each in its
/// own directory `dir/<i>` and fed `parts[i]`: each waits until every entry is read and
/// `settle(i, &daemon)` returns, then stops cleanly, and every one after the first must
/// have restored the detection state its predecessor left. Their alerts, in order.
#[track_caller]
pub fn across_restarts(
    dir: &Path,
    config: &str,
    args: &[&str],
    parts: &[&[(i64, String)]],
    settle: impl Fn(usize, &Daemon),
) -> Vec<Value> {
    let mut all = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let run = dir.join(i.to_string());
        std::fs::create_dir_all(&run).unwrap();
        let d = Daemon::start(&run, config, args);
        d.send("vault-socket", &timed_bytes(part));
        d.wait_until("every entry read", Duration::from_secs(30), |d| {
            d.metric("auditwatch_events_total", &["source=\"vault-socket\""]) >= part.len() as f64
        });
        settle(i, &d);
        let exit = d.stop();
        assert_eq!(exit.code, Some(0), "{}", exit.log);
        if i > 0 {
            assert!(
                exit.log.contains("detection state restored"),
                "daemon {i} starts from the state of the one before:\n{}",
                exit.log
            );
        }
        all.extend(read_alerts(&run.join("alerts.jsonl")));
    }
    all
}

/// `auditwatch replay` of `lines` (written under `dir`) with the detection settings
/// `detection` and `args`; it must succeed.
#[track_caller]
pub fn replay_timed(
    dir: &Path,
    lines: &[(i64, String)],
    detection: &str,
    args: &[&str],
) -> super::cli::Run {
    let input = dir.join("input.jsonl");
    std::fs::write(&input, timed_bytes(lines)).unwrap();
    let cfg = dir.join("detection.yaml");
    std::fs::write(&cfg, detection).unwrap();
    let run = super::cli::replay(
        [input.as_os_str(), OsStr::new("--config"), cfg.as_os_str()]
            .into_iter()
            .chain(args.iter().map(OsStr::new)),
    );
    run.assert_code(0);
    run
}

/// A loopback TCP port free at the time of asking (for a server a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the http endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read the http response");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

pub fn metric_sum(body: &str, name: &str, labels: &[&str]) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let series = l.split_whitespace().next().unwrap_or("");
            let base = series.split('{').next().unwrap_or("");
            base == name && labels.iter().all(|lab| series.contains(lab))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Write a rules directory holding `files` (name, text).
pub fn rules_dir(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let d = dir.join("rules");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for (n, t) in files {
        std::fs::write(d.join(n), t).unwrap();
    }
    d
}

/// Request ids of alerts, counted.
pub fn ids(alerts: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for a in alerts {
        if let Some(id) = a["request_id"].as_str() {
            *m.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    m
}
