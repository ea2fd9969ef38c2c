//! `auditwatch run`: its HTTP endpoint and metrics, validation before binding, SIGHUP
//! reloads, the socket source (tcp, udp, unix; fragments; the partial-line budget; its
//! caps and allow list are `socket_lockdown.rs`'s), the idle wall clock, the spool when
//! the engine is behind, and the JSON lines output. That the daemon's alerts are replay's
//! is `paths.rs`'s check. Each test starts the real binary on ephemeral loopback ports and
//! kills it on drop.

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::util::*;

const TCP_ONLY: &str = "server: {listen: 127.0.0.1:0, tick_secs: 0}
sources:
  - {name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}
";

#[test]
fn http_endpoint_serves_metrics_health_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), TCP_ONLY, &[]);
    assert_eq!(d.get("/-/healthy"), (200, "ok\n".into()));
    assert_eq!(d.get("/-/ready"), (200, "ready\n".into()));
    assert_eq!(d.get("/nope").0, 404);
    let mut s = TcpStream::connect(d.source("vault-socket")).unwrap();
    let input = scenario("day-on-the-platform");
    s.write_all(&input).unwrap();
    s.write_all(b"{not json\n").unwrap();
    drop(s);
    d.wait_until("the bad line counted", Duration::from_secs(30), |d| {
        d.metric(
            "auditwatch_parse_errors_total",
            &["source=\"vault-socket\""],
        ) >= 1.0
    });
    let (_, body) = d.get("/metrics");
    for help in [
        "# HELP auditwatch_events_total",
        "# HELP auditwatch_parse_errors_total",
        "# HELP auditwatch_alerts_total",
        "# HELP auditwatch_last_event_timestamp_seconds",
        "# HELP auditwatch_source_connections ",
        "# HELP auditwatch_backlog_bytes",
        "# HELP auditwatch_spilled_bytes_total",
        "# HELP auditwatch_state_table_size",
        "# HELP auditwatch_spool_bytes",
    ] {
        assert!(body.contains(help), "missing `{help}`:\n{body}");
    }
    assert!(metric_sum(&body, "auditwatch_events_total", &["type=\"response\""]) >= 100.0);
    assert!(
        metric_sum(
            &body,
            "auditwatch_alerts_total",
            &["category=\"cross_tenant_read\"", "severity=\"critical\""]
        ) >= 1.0,
        "{body}"
    );
    assert!(
        metric_sum(
            &body,
            "auditwatch_last_event_timestamp_seconds",
            &["source=\"vault-socket\""]
        ) > 1.7e9
    );
    assert!(
        metric_sum(
            &body,
            "auditwatch_state_table_size",
            &["table=\"decided_requests\""]
        ) > 0.0
    );
    // Labels come from bounded sets: no peer address or path anywhere.
    assert!(
        !body.contains("127.0.0.1"),
        "an address leaked into a label"
    );
    assert!(!body.contains("secret/"), "a path leaked into a label");
    let exit = d.stop();
    assert_eq!(exit.code, Some(0));
}

#[test]
fn bad_config_or_rules_exit_2_before_anything_is_bound() {
    let dir = tempfile::tempdir().unwrap();
    // Hold a port, then name it in a config that also has errors: the daemon must report
    // every problem and exit 2 without trying to bind.
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(
        &cfg,
        "server: {listen: 127.0.0.1:0, tick_secs: -1}\nsources:\n  - {kind: socket, protocol: sctp, listen: 127.0.0.1:0}\n  - {kind: file, name: Bad Name}\n  - {kind: carrier-pigeon}\noutput: {alerts: ''}\nspool: {memory_bytes: 10, bogus: 1}\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for want in [
        "bad.yaml:1:42: tick_secs must be a non-negative integer",
        "bad.yaml:3:30: unknown protocol `sctp`",
        "bad.yaml:4:5: a file source is missing required field `path`",
        "bad.yaml:4:24: source name `Bad Name` must be",
        "bad.yaml:5:12: unknown source kind `carrier-pigeon`",
        "bad.yaml:6:18: output.alerts must be `stdout` or a file path",
        "bad.yaml:7:23: memory_bytes must be at least 65536",
        "bad.yaml:7:27: unknown field `bogus` in spool",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
    assert!(!err.contains("listening"), "nothing may be bound: {err}");
    // `config check` reports the same.
    let out = std::process::Command::new(BIN)
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown source kind"));
    // And the default config checks clean, new sections included.
    let def = dir.path().join("default.yaml");
    let out = std::process::Command::new(BIN)
        .args(["config", "default"])
        .output()
        .unwrap();
    std::fs::write(&def, &out.stdout).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["config", "check"])
        .arg(&def)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Bad rules: exit 2 too.
    let rules = rules_dir(dir.path(), &[("r.yaml", "id: x\n")]);
    let out = std::process::Command::new(BIN)
        .args(["run", "--rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A port in use is a runtime failure (exit 1), reported with the address.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    std::fs::write(
        &cfg,
        format!("server: {{listen: ''}}\nsources:\n  - {{kind: socket, listen: '{addr}'}}\n"),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot bind source `socket`"));
}

const OTHER_RULE: &str = r#"id: test-other-rule
title: Every request under secret/, second version
category: test_other
severity: warning
description: Test rule.
when: {field: path, prefix: [secret/]}
detector: {kind: match}
examples:
  - name: fires
    expect: fire
    entries:
      - {time: '2026-03-02T10:00:00Z', type: response, request: {id: r-1, operation: read, path: secret/data/x}, response: {}}
  - name: quiet
    expect: quiet
    entries:
      - {time: '2026-03-02T10:00:00Z', type: response, request: {id: r-2, operation: read, path: sys/x}, response: {}}
"#;

#[test]
fn sighup_reloads_rules_atomically_and_rejects_a_bad_set() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(dir.path(), &[("every.yaml", EVERY_READ_RULE)]);
    let d = Daemon::start(dir.path(), TCP_ONLY, &["--rules", rules.to_str().unwrap()]);
    let addr = d.source("vault-socket");
    let send = |i: u64| {
        let mut s = TcpStream::connect(&addr).unwrap();
        writeln!(
            s,
            "{}",
            response_line(&request_id(7, i), "2026-03-02T10:00:00Z")
        )
        .unwrap();
    };
    send(1);
    d.wait_until("alert 1", Duration::from_secs(20), |d| {
        d.alerts().len() == 1
    });

    // A broken rule set is rejected; the old one keeps running.
    std::fs::write(rules.join("broken.yaml"), "id: Broken\ncategory: 1\n").unwrap();
    d.signal("HUP");
    d.wait_until("the rejection", Duration::from_secs(20), |d| {
        d.metric("auditwatch_reloads_total", &["outcome=\"rejected\""]) >= 1.0
            && d.log_text()
                .contains("the running config and rules are kept")
    });
    assert!(
        d.log_text().contains("broken.yaml:1:5"),
        "problems are logged with positions"
    );
    send(2);
    d.wait_until("alert 2 from the old rules", Duration::from_secs(20), |d| {
        d.alerts().len() == 2
    });

    // A good set replaces the old one whole.
    std::fs::remove_file(rules.join("broken.yaml")).unwrap();
    std::fs::remove_file(rules.join("every.yaml")).unwrap();
    std::fs::write(rules.join("other.yaml"), OTHER_RULE).unwrap();
    d.signal("HUP");
    d.wait_until("the reload", Duration::from_secs(20), |d| {
        d.metric("auditwatch_reloads_total", &["outcome=\"ok\""]) >= 1.0
    });
    send(3);
    d.wait_until("alert 3 from the new rules", Duration::from_secs(20), |d| {
        d.alerts().len() == 3
    });
    let alerts = d.alerts();
    let rules: Vec<&str> = alerts.iter().map(|a| a["rule"].as_str().unwrap()).collect();
    assert_eq!(
        rules,
        vec![
            "test-every-secret-request",
            "test-every-secret-request",
            "test-other-rule"
        ]
    );
    assert_eq!(d.stop().code, Some(0));
}

#[test]
fn fragments_of_dropped_connections_are_discarded_never_spliced() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(dir.path(), &[("every.yaml", EVERY_READ_RULE)]);
    let d = Daemon::start(dir.path(), TCP_ONLY, &["--rules", rules.to_str().unwrap()]);
    let addr = d.source("vault-socket");
    let whole = response_line(&request_id(9, 1), "2026-03-02T10:00:00Z");
    // Vault's write timed out mid-entry: half an entry, then the connection is gone...
    let mut a = TcpStream::connect(&addr).unwrap();
    a.write_all(&whole.as_bytes()[..whole.len() / 2]).unwrap();
    // ...while another connection (another node, or the re-dial) writes whole entries.
    let mut b = TcpStream::connect(&addr).unwrap();
    writeln!(b, "{whole}").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(a);
    writeln!(
        b,
        "{}",
        response_line(&request_id(9, 2), "2026-03-02T10:00:01Z")
    )
    .unwrap();
    drop(b);
    d.wait_until("the fragment counted", Duration::from_secs(20), |d| {
        d.metric("auditwatch_dropped_lines_total", &["reason=\"fragment\""]) == 1.0
            && d.metric("auditwatch_events_total", &["source=\"vault-socket\""]) == 2.0
    });
    assert_eq!(
        d.metric("auditwatch_parse_errors_total", &[]),
        0.0,
        "nothing was spliced into a bad line"
    );
    // Alerts reach the file through the JSON lines sink's own thread: wait for both.
    d.wait_until("both alerts written", Duration::from_secs(10), |d| {
        d.alerts().len() == 2
    });
    d.wait_until("the fragment logged", Duration::from_secs(10), |d| {
        d.log_text().contains("discarded an unterminated fragment")
    });
    assert_eq!(d.stop().code, Some(0));
}

#[test]
fn many_nodes_at_once_over_tcp_udp_and_unix() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("audit.sock");
    let cfg = format!(
        "server: {{listen: 127.0.0.1:0, tick_secs: 0}}
sources:
  - {{name: tcp, kind: socket, protocol: tcp, listen: 127.0.0.1:0}}
  - {{name: udp, kind: socket, protocol: udp, listen: 127.0.0.1:0}}
  - {{name: unix, kind: socket, protocol: unix, listen: '{}'}}
",
        sock.display()
    );
    let rules = rules_dir(dir.path(), &[("every.yaml", EVERY_READ_RULE)]);
    let d = Daemon::start(dir.path(), &cfg, &["--rules", rules.to_str().unwrap()]);
    let tcp = d.source("tcp");
    const NODES: u64 = 16;
    const PER: u64 = 200;
    // Sixteen nodes write interleaved, each line in one write, as Vault does.
    let mut handles = Vec::new();
    for n in 0..NODES {
        let tcp = tcp.clone();
        handles.push(std::thread::spawn(move || {
            let mut s = TcpStream::connect(tcp).unwrap();
            for i in 0..PER {
                let line = response_line(&request_id(n as u32, i), "2026-03-02T10:00:00Z");
                s.write_all(format!("{line}\n").as_bytes()).unwrap();
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..50u64 {
        // Vault's UDP device: one entry per datagram, newline-terminated (or not).
        let mut line = response_line(&request_id(100, i), "2026-03-02T10:00:00Z");
        if i % 2 == 0 {
            line.push('\n');
        }
        udp.send_to(line.as_bytes(), d.source("udp")).unwrap();
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let mut u = UnixStream::connect(&sock).unwrap();
    for i in 0..100u64 {
        writeln!(
            u,
            "{}",
            response_line(&request_id(200, i), "2026-03-02T10:00:00Z")
        )
        .unwrap();
    }
    drop(u);
    d.wait_until("every entry", Duration::from_secs(60), |d| {
        d.metric("auditwatch_events_total", &["source=\"tcp\""]) == (NODES * PER) as f64
            && d.metric("auditwatch_events_total", &["source=\"unix\""]) == 100.0
            && d.metric("auditwatch_events_total", &["source=\"udp\""]) == 50.0
    });
    let exit = d.stop();
    assert_eq!(exit.code, Some(0));
    assert!(!sock.exists(), "the unix socket is removed at exit");
    let alerts = read_alerts(&dir.path().join("alerts.jsonl"));
    let ids = ids(&alerts);
    assert_eq!(ids.len() as u64, NODES * PER + 150);
    assert!(ids.values().all(|&n| n == 1), "no duplicate alert");
}

/// Partial lines from many peers stay within one budget for the whole source: past it,
/// the connection whose partial line began the longest ago is closed (its fragment dropped
/// and counted), and Vault's connection, which writes whole entries, gets in and is heard,
/// also with a large entry that arrives in pieces while the budget is full.
#[test]
fn partial_lines_from_many_peers_stay_within_the_shared_budget_and_vault_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "server: {listen: 127.0.0.1:0, tick_secs: 0}
parse: {max_line_bytes: 4194304}
sources:
  - {name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0, max_partial_bytes: 1048576}
";
    let d = Daemon::start(dir.path(), cfg, &[]);
    let addr = d.source("vault-socket");
    // Twelve peers each start a 300 KB line and stop: 3.6 MB against a 1 MiB budget.
    let chunk = vec![b'x'; 300_000];
    let mut peers = Vec::new();
    for _ in 0..12 {
        let mut p = TcpStream::connect(&addr).unwrap();
        p.write_all(b"{\"type\":\"request\",\"pad\":\"").unwrap();
        p.write_all(&chunk).unwrap();
        peers.push(p);
    }
    d.wait_until(
        "peers over the budget closed",
        Duration::from_secs(20),
        |d| {
            d.metric(
                "auditwatch_source_connection_events_total",
                &["outcome=\"evicted\""],
            ) >= 9.0
        },
    );
    // At most three 300 KB partial lines fit in 1 MiB: the rest were closed and counted.
    let open = d.metric("auditwatch_source_connections", &[]);
    assert!(open <= 3.0, "{open} connections still hold partial lines");
    assert!(
        d.metric("auditwatch_dropped_lines_total", &["reason=\"fragment\""]) >= 9.0,
        "the dropped partial lines are counted"
    );
    // Vault's own connection: a whole entry, alerted.
    let mut vault = TcpStream::connect(&addr).unwrap();
    writeln!(vault, "{}", cross_tenant_allowed("budget-1")).unwrap();
    d.wait_until("Vault's entry alerted", Duration::from_secs(20), |d| {
        d.metric(
            "auditwatch_alerts_total",
            &["category=\"cross_tenant_read\""],
        ) >= 1.0
    });
    // A large entry of Vault's, in pieces, while peers hold the budget again: the newest
    // partial line, so a peer's older one is closed, not Vault's.
    let mut more = Vec::new();
    for _ in 0..3 {
        let mut p = TcpStream::connect(&addr).unwrap();
        p.write_all(b"{\"type\":\"request\",\"pad\":\"").unwrap();
        p.write_all(&chunk).unwrap();
        more.push(p);
    }
    std::thread::sleep(Duration::from_millis(200));
    let big = cross_tenant_allowed("budget-2").replacen(
        '{',
        &format!("{{\"pad\":\"{}\",", "y".repeat(600_000)),
        1,
    );
    for piece in big.as_bytes().chunks(200_000) {
        vault.write_all(piece).unwrap();
        vault.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    vault.write_all(b"\n").unwrap();
    d.wait_until(
        "Vault's large entry alerted",
        Duration::from_secs(20),
        |d| {
            d.metric(
                "auditwatch_alerts_total",
                &["category=\"cross_tenant_read\""],
            ) >= 2.0
        },
    );
    drop((peers, more));
    assert_eq!(d.stop().code, Some(0));
}

/// A connection that streams entries is judged by when its current line began, not its
/// first: Vault's line that began after the peers' is not the one closed over the budget.
#[test]
fn a_streaming_connection_is_judged_by_its_current_line_not_its_first() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "server: {listen: 127.0.0.1:0, tick_secs: 0}
parse: {max_line_bytes: 4194304}
sources:
  - {name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0, max_partial_bytes: 1048576}
";
    let d = Daemon::start(dir.path(), cfg, &[]);
    let addr = d.source("vault-socket");
    let first = cross_tenant_allowed("stream-1");
    let second = cross_tenant_allowed("stream-2").replacen(
        '{',
        &format!("{{\"pad\":\"{}\",", "y".repeat(300_000)),
        1,
    );
    // Vault starts an entry, then three peers each hold 300 KB.
    let mut vault = TcpStream::connect(&addr).unwrap();
    vault.write_all(&first.as_bytes()[..20]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut peers = Vec::new();
    for _ in 0..3 {
        let mut p = TcpStream::connect(&addr).unwrap();
        p.write_all(b"{\"type\":\"request\",\"pad\":\"").unwrap();
        p.write_all(&vec![b'x'; 300_000]).unwrap();
        peers.push(p);
    }
    std::thread::sleep(Duration::from_millis(200));
    // Vault ends that entry and begins a large one in one write: over the budget, and its
    // current line is the newest.
    let mut next = first.as_bytes()[20..].to_vec();
    next.push(b'\n');
    next.extend_from_slice(&second.as_bytes()[..200_000]);
    vault.write_all(&next).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    vault.write_all(&second.as_bytes()[200_000..]).unwrap();
    vault.write_all(b"\n").unwrap();
    d.wait_until(
        "both of Vault's entries alerted",
        Duration::from_secs(20),
        |d| {
            d.metric(
                "auditwatch_alerts_total",
                &["category=\"cross_tenant_read\""],
            ) >= 2.0
        },
    );
    assert!(
        d.metric(
            "auditwatch_source_connection_events_total",
            &["outcome=\"evicted\""],
        ) >= 1.0,
        "a peer was closed to keep the budget"
    );
    drop(peers);
    assert_eq!(d.stop().code, Some(0));
}

const ABSENCE_RULE: &str = r#"id: test-audit-silence
title: The audit stream went silent (test rule)
category: test_silence
severity: high
description: Test rule.
detector: {kind: absence, silence_secs: 2}
examples:
  - name: silence fires
    expect: fire
    entries:
      - {time: '2026-03-02T10:00:00Z', type: response, request: {id: r-1, operation: read, path: secret/data/x}, response: {}}
      - {time: '2026-03-02T10:00:10Z', type: response, request: {id: r-2, operation: read, path: secret/data/x}, response: {}}
  - name: a steady stream stays quiet
    expect: quiet
    entries:
      - repeat: 5
        every_secs: 1
        entry: {time: '2026-03-02T10:00:00Z', type: response, request: {id: 'r-{i}', operation: read, path: secret/data/x}, response: {}}
"#;

#[test]
fn the_wall_clock_fires_absence_rules_on_an_idle_stream() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(dir.path(), &[("silence.yaml", ABSENCE_RULE)]);
    let cfg = "server: {listen: 127.0.0.1:0, tick_secs: 1}
engine: {lateness_secs: 0}
sources:
  - {name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}
";
    let d = Daemon::start(dir.path(), cfg, &["--rules", rules.to_str().unwrap()]);
    let now = auditwatch::parse::time::format_rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64,
    );
    let mut s = TcpStream::connect(d.source("vault-socket")).unwrap();
    writeln!(s, "{}", response_line(&request_id(5, 1), &now)).unwrap();
    let start = Instant::now();
    // No further entry: only the wall clock can move time on.
    d.wait_until("the silence alert", Duration::from_secs(15), |d| {
        d.alerts().iter().any(|a| a["category"] == "test_silence")
    });
    assert!(start.elapsed() >= Duration::from_millis(1500));
    drop(s);
    assert_eq!(d.stop().code, Some(0));
}

#[test]
fn an_engine_behind_spills_to_disk_and_the_drain_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let rules = rules_dir(dir.path(), &[("every.yaml", EVERY_READ_RULE)]);
    let cfg = format!(
        "server: {{listen: 127.0.0.1:0, tick_secs: 0, drain_timeout_secs: 120}}
sources:
  - {{name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}}
spool: {{dir: '{}', memory_bytes: 65536, segment_bytes: 1048576}}
",
        spool.display()
    );
    let d = Daemon::start(dir.path(), &cfg, &["--rules", rules.to_str().unwrap()]);
    const N: u64 = 20_000;
    let mut s = TcpStream::connect(d.source("vault-socket")).unwrap();
    let mut buf = Vec::new();
    for i in 0..N {
        buf.extend_from_slice(response_line(&request_id(3, i), "2026-03-02T10:00:00Z").as_bytes());
        buf.push(b'\n');
    }
    let start = Instant::now();
    s.write_all(&buf).unwrap();
    drop(s);
    let write_time = start.elapsed();
    d.wait_until(
        "everything read off the socket",
        Duration::from_secs(60),
        |d| d.metric("auditwatch_source_bytes_total", &[]) >= buf.len() as f64,
    );
    let spilled = d.metric("auditwatch_spilled_bytes_total", &[]);
    eprintln!(
        "wrote {} MB in {write_time:?}; spilled {spilled} bytes",
        buf.len() / 1_000_000
    );
    assert!(
        spilled > 0.0,
        "the engine was behind: lines went to the spool"
    );
    // Stop at once: the drain processes memory and spool before exiting.
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    let alerts = read_alerts(&dir.path().join("alerts.jsonl"));
    let ids = ids(&alerts);
    assert_eq!(ids.len() as u64, N, "no line lost");
    assert!(ids.values().all(|&n| n == 1));
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "the spool is empty after the drain"
    );
}

#[test]
fn the_json_lines_output_rotates_by_size_and_loses_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alerts.jsonl");
    let cfg = format!(
        "{TCP_ONLY}output: {{alerts: '{}', rotate_bytes: 4096, keep_files: 50}}\n",
        out.display()
    );
    let d = Daemon::start(dir.path(), &cfg, &[]);
    d.send("vault-socket", &scenario("day-on-the-platform"));
    d.wait_until("alerts written", Duration::from_secs(30), |d| {
        d.metric("auditwatch_sink_delivered_total", &["sink=\"jsonl\""]) >= 4.0
    });
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    // Oldest first: alerts.jsonl.N .. .1, then alerts.jsonl.
    let mut files: Vec<std::path::PathBuf> = (1..=50)
        .map(|n| dir.path().join(format!("alerts.jsonl.{n}")))
        .filter(|p| p.exists())
        .collect();
    files.reverse();
    files.push(out.clone());
    assert!(files.len() >= 2, "the output rotated: {files:?}");
    let mut written = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(text.len() <= 4096, "{} is over rotate_bytes", f.display());
        assert!(text.is_empty() || text.ends_with('\n'), "no line split");
        written.extend(text.lines().map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("each line is a whole record")
        }));
    }
    // The same records, in the same order, as the one-thread library pipeline.
    let (expected, _) = replay_lines(lines(&scenario("day-on-the-platform")));
    assert_eq!(without_observer(written), records(&expected));
}

#[test]
fn a_full_disk_under_the_json_lines_output_is_counted_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!("{TCP_ONLY}output: {{alerts: /dev/full}}\n"),
        &[],
    );
    d.send_and_wait_read("vault-socket", &scenario("day-on-the-platform"));
    // Every alert raised is counted lost (none delivered), once the sink got to it.
    d.wait_until("the lost alerts counted", Duration::from_secs(30), |d| {
        let raised = d.metric("auditwatch_alerts_total", &[]);
        let lost = d.metric(
            "auditwatch_sink_dropped_total",
            &["sink=\"jsonl\"", "reason=\"write_error\""],
        );
        raised >= 4.0 && lost == raised
    });
    assert_eq!(
        d.metric("auditwatch_sink_delivered_total", &["sink=\"jsonl\""]),
        0.0
    );
    assert!(d.log_text().contains("cannot write alerts to the output"));
    assert_eq!(d.stop().code, Some(0));
}

#[test]
fn sighup_reopens_the_alert_file_that_logrotate_moved() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(dir.path(), &[("every.yaml", EVERY_READ_RULE)]);
    let d = Daemon::start(dir.path(), TCP_ONLY, &["--rules", rules.to_str().unwrap()]);
    let send = |i: u64| {
        let line = response_line(&request_id(8, i), "2026-03-02T10:00:00Z") + "\n";
        d.send("vault-socket", line.as_bytes());
    };
    let current = dir.path().join("alerts.jsonl");
    let moved = dir.path().join("alerts.jsonl.1");
    let count = |p: &std::path::Path| read_alerts(p).len();
    send(1);
    d.wait_until("alert 1", Duration::from_secs(20), |_| count(&current) == 1);
    // logrotate's `create`: the file is moved away; until the SIGHUP the old one is kept.
    std::fs::rename(&current, &moved).unwrap();
    send(2);
    d.wait_until("alert 2 in the moved file", Duration::from_secs(20), |_| {
        count(&moved) == 2
    });
    d.signal("HUP");
    d.wait_until("the reload", Duration::from_secs(20), |d| {
        d.metric("auditwatch_reloads_total", &["outcome=\"ok\""]) >= 1.0
    });
    send(3);
    d.wait_until("alert 3 in a new file", Duration::from_secs(20), |_| {
        current.exists() && count(&current) == 1
    });
    assert_eq!(d.stop().code, Some(0));
    assert_eq!(
        count(&moved),
        2,
        "nothing after the SIGHUP went to the moved file"
    );
    assert_eq!(read_alerts(&current)[0]["request_id"], request_id(8, 3));
}
