//! `simulate --output` to a socket writes exactly what it writes to a file, one entry per
//! write as Vault's socket device does, and `--rate` paces it and reports the longest write.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::process::Command;

use crate::util::BIN;

const ARGS: [&str; 7] = [
    "simulate",
    "--seed",
    "3",
    "--tenants",
    "2",
    "--duration",
    "20m",
];

fn simulate(extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(ARGS)
        .args(extra)
        .output()
        .expect("runs")
}

fn to_file() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("out.log");
    let out = simulate(&["--output", f.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(f).unwrap()
}

#[test]
fn tcp_output_carries_the_same_bytes_as_a_file() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    let out = simulate(&["--output", &format!("tcp://{addr}"), "--rate", "20000"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("longest single write"), "{stderr}");
    let got = reader.join().unwrap();
    let want = to_file();
    assert!(!want.is_empty());
    assert!(
        got == want,
        "tcp output differs from file output ({} vs {} bytes)",
        got.len(),
        want.len()
    );
}

#[test]
fn unix_socket_output_carries_the_same_bytes_as_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    let out = simulate(&["--output", &format!("unix://{}", path.display())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(reader.join().unwrap() == to_file());
}

#[test]
fn an_unreachable_socket_exits_1_and_a_bad_rate_exits_2() {
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = simulate(&["--output", &format!("tcp://{free}")]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = simulate(&["--rate", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Replay simulated lines with an optional config; the alerts' rules.
fn replay_rules(lines: &[u8], config: Option<&str>) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("day.log");
    std::fs::write(&log, lines).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["replay", "--quiet"]);
    if let Some(c) = config {
        let cfg = dir.path().join("config.yaml");
        std::fs::write(&cfg, c).unwrap();
        cmd.arg("--config").arg(cfg);
    }
    let out = cmd.arg(&log).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["rule"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn time_zone_moves_office_hours_and_matches_a_replay_in_that_zone() {
    let out = Command::new(BIN)
        .args([
            "simulate",
            "--seed",
            "4",
            "--tenants",
            "3",
            "--duration",
            "24h",
            "--time-zone",
            "Asia/Tokyo",
        ])
        .args(["--store-validation", "off", "--metrics-scrape", "off"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Judged in Tokyo, the admins keep office hours: a clean day raises nothing.
    let tokyo = replay_rules(
        &out.stdout,
        Some("business_hours:\n  time_zone: Asia/Tokyo\n"),
    );
    assert!(tokyo.is_empty(), "{tokyo:?}");
    // Judged in UTC, their 10:00 JST morning check is 01:00 UTC: after hours.
    let utc = replay_rules(&out.stdout, None);
    assert!(utc.iter().any(|r| r == "after-hours-admin"), "{utc:?}");
    let bad = simulate(&["--time-zone", "Mars/Olympus"]);
    assert_eq!(bad.status.code(), Some(2));
}
