//! A real SMTP server for the tests: aiosmtpd (`tests/smtp/server.py`) on 127.0.0.1,
//! writing each mail it accepts as JSON under a directory; and readers of those mails.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::tools::require_python_module;

/// Whether python3 has aiosmtpd, the SMTP server these tests run.
#[track_caller]
pub fn have_aiosmtpd() -> bool {
    require_python_module("aiosmtpd", "pip install 'aiosmtpd==1.4.6'")
}

/// A running aiosmtpd; killed on drop.
pub struct Smtp {
    child: Child,
}

impl Smtp {
    pub fn start(port: u16, out: &Path, args: &[&str], env: &[(&str, &str)]) -> Smtp {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg("--port")
            .arg(port.to_string())
            .arg("--out")
            .arg(out)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the SMTP server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the SMTP server did not start within 20s");
        assert!(line.starts_with("READY"), "SMTP server: {line:?}");
        Smtp { child }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Mails the server accepted, in arrival order.
pub fn mails(out: &Path) -> Vec<Value> {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(out)
        .map(|d| {
            d.filter_map(|e| {
                let p = e.ok()?.path();
                let n = p
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()?;
                Some((n, p))
            })
            .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|(_, p)| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

pub fn rcpts(m: &Value) -> Vec<String> {
    let mut r: Vec<String> = m["rcpt_tos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    r.sort();
    r
}

pub fn text(m: &Value) -> &str {
    m["text"].as_str().expect("a text/plain part")
}

/// How often each request id appears as an alert in the mails (to `who`, or any).
pub fn id_counts(mails: &[Value], who: Option<&str>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for mail in mails {
        if who.is_some_and(|w| !rcpts(mail).iter().any(|r| r == w)) {
            continue;
        }
        for l in text(mail).lines() {
            if let Some(id) = l.trim().strip_prefix("request id: ") {
                *m.entry(id.to_string()).or_insert(0) += 1;
            }
        }
    }
    m
}

/// How often each alert `id` appears in the mails.
pub fn alert_id_counts(mails: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for mail in mails {
        for l in text(mail).lines() {
            if let Some(id) = l.trim().strip_prefix("alert id: ") {
                *m.entry(id.to_string()).or_insert(0) += 1;
            }
        }
    }
    m
}
