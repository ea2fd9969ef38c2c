//! A real Alertmanager for the tests: Debian's `prometheus-alertmanager` on 127.0.0.1, no
//! gossip, storage in a temporary directory, killed on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const AM: &str = "prometheus-alertmanager";

/// The alert name the daemon's push gives a detection category:
/// `cross_tenant_read` → `AuditwatchCrossTenantRead`.
pub fn alert_name(category: &str) -> String {
    let mut s = String::from("Auditwatch");
    for w in category.split('_') {
        let mut c = w.chars();
        if let Some(f) = c.next() {
            s.push(f.to_ascii_uppercase());
            s.extend(c);
        }
    }
    s
}

/// No notification at all: the tests read Alertmanager's API.
const BLACKHOLE: &str =
    "route:\n  receiver: blackhole\n  group_wait: 1h\nreceivers:\n  - name: blackhole\n";

/// A real Alertmanager on 127.0.0.1:`port`, gossip off, storage in `dir`.
pub struct Alertmanager {
    pub addr: String,
    child: Child,
    log: PathBuf,
}

impl Alertmanager {
    pub fn start(dir: &Path, port: u16) -> Alertmanager {
        Alertmanager::start_with_config(dir, port, BLACKHOLE)
    }

    /// [`Alertmanager::start`] with the routes, receivers and inhibitions of `config`.
    pub fn start_with_config(dir: &Path, port: u16, config: &str) -> Alertmanager {
        let mut am = Alertmanager::spawn_with_config(dir, port, None, config);
        let start = Instant::now();
        loop {
            am.check_running();
            if try_get(&am.addr, "/-/ready").is_some_and(|(c, _)| c == 200) {
                return am;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "alertmanager not ready within 30s:\n{}",
                am.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Serving https only (`--web.config.file` with `tls_server_config`).
    pub fn start_tls(dir: &Path, port: u16, web_config: &Path) -> Alertmanager {
        let mut am = Alertmanager::spawn(dir, port, Some(web_config));
        let start = Instant::now();
        while !am.log_text().contains("TLS is enabled") || TcpStream::connect(&am.addr).is_err() {
            am.check_running();
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "alertmanager not listening within 30s:\n{}",
                am.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        am
    }

    #[track_caller]
    pub fn check_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("alertmanager exited ({status}):\n{}", self.log_text());
        }
    }

    /// Alertmanager's alerts over https, through `amtool` trusting `ca`.
    pub fn query_tls(&self, ca: &Path) -> Vec<Value> {
        let http = self.log.with_file_name("amtool-http.yml");
        std::fs::write(&http, format!("tls_config:\n  ca_file: {}\n", ca.display())).unwrap();
        let out = Command::new("amtool")
            .arg(format!("--alertmanager.url=https://{}", self.addr))
            .arg(format!("--http.config.file={}", http.display()))
            .args(["-o", "json", "alert", "query"])
            .output()
            .expect("amtool");
        assert!(out.status.success(), "amtool: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    }

    pub fn spawn(dir: &Path, port: u16, web_config: Option<&Path>) -> Alertmanager {
        Alertmanager::spawn_with_config(dir, port, web_config, BLACKHOLE)
    }

    fn spawn_with_config(
        dir: &Path,
        port: u16,
        web_config: Option<&Path>,
        config: &str,
    ) -> Alertmanager {
        std::fs::create_dir_all(dir).unwrap();
        let cfg = dir.join("alertmanager.yml");
        std::fs::write(&cfg, config).unwrap();
        let log = dir.join("alertmanager.log");
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(AM)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .args(web_config.map(|w| format!("--web.config.file={}", w.display())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn prometheus-alertmanager");
        Alertmanager { child, addr, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Alertmanager's active alerts (`GET /api/v2/alerts`).
    pub fn alerts(&self) -> Vec<Value> {
        let (code, body) = try_get(&self.addr, "/api/v2/alerts").expect("alertmanager answers");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<Vec<Value>>(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    /// Poll until Alertmanager holds `n` alerts (bounded).
    #[track_caller]
    pub fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
        context: impl Fn() -> String,
    ) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let got = self.alerts();
            if got.len() == n {
                return got;
            }
            if start.elapsed() > timeout {
                panic!(
                    "alertmanager holds {} alerts, expected {n}, after {timeout:?}\n{}\n{}",
                    got.len(),
                    context(),
                    serde_json::to_string_pretty(&got).unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.0 GET (so Go answers without chunking); `None` when nothing listens.
pub fn try_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    Some((code, body))
}
