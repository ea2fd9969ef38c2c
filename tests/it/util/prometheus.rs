//! A real Prometheus server (Debian's `prometheus`) for the tests that scrape the daemon
//! with it: started on a free loopback port with a config the test writes, asked through
//! its HTTP API, killed on drop. Callers check `require_tool("prometheus", ...)` first.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running Prometheus server, killed on drop.
pub struct Prometheus {
    child: Child,
    pub addr: String,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Start `prometheus` on a free loopback port with `config`; waits for `/-/ready`.
    pub fn start(dir: &Path, config: &Path) -> Prometheus {
        let mut last = String::new();
        // A free port can be taken between probing and binding: try a few.
        for attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = format!("127.0.0.1:{port}");
            let log = dir.join(format!("prometheus-{attempt}.log"));
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join(format!("data-{attempt}")).display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("spawn prometheus");
            let mut p = Prometheus { child, addr, log };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(_)) = p.child.try_wait() {
                    break;
                }
                if let Some((200, _)) = get(&p.addr, "/-/ready") {
                    return p;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            last = p.log();
            if !last.contains("address already in use") {
                panic!("prometheus did not become ready:\n{last}");
            }
        }
        panic!("prometheus could not bind a free port:\n{last}");
    }

    pub fn api(&self, path: &str) -> Value {
        match get(&self.addr, path) {
            Some((200, body)) => serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}")),
            other => panic!("{path}: {other:?}\n{}", self.log()),
        }
    }

    /// The result vector of an instant query.
    pub fn query(&self, q: &str) -> Vec<Value> {
        let v = self.api(&format!("/api/v1/query?query={}", urlencode(q)));
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Every rule group (and there is one) last evaluated after `t`.
    pub fn rules_evaluated_after(&self, t: jiff::Timestamp) -> bool {
        let groups = self.api("/api/v1/rules")["data"]["groups"].clone();
        groups.as_array().is_some_and(|g| {
            !g.is_empty()
                && g.iter().all(|g| {
                    g["lastEvaluation"]
                        .as_str()
                        .and_then(|e| e.parse::<jiff::Timestamp>().ok())
                        .is_some_and(|e| e > t)
                })
        })
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.1 GET (chunked bodies decoded): `None` when the server is not there.
pub fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    if !chunked {
        return Some((code, body.to_string()));
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        if n == 0 {
            break;
        }
        out.push_str(after.get(..n)?);
        rest = after.get(n + 2..)?;
    }
    Some((code, out))
}
