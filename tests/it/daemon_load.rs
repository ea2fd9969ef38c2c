//! Load tool for the socket source (ignored by default; run it on a release build):
//!
//! ```sh
//! cargo test --release --test it daemon_load:: -- --ignored --nocapture
//! AW_LOAD_ENTRIES=400000 AW_LOAD_NODES=8 cargo test --release --test it daemon_load:: -- --ignored --nocapture
//! AW_LOAD_RATE=2000 cargo test --release --test it daemon_load:: -- --ignored --nocapture   # paced: entries/s per node
//! AW_LOAD_MEMORY=1073741824 ...   # spool.memory_bytes (default 64 MiB)
//! AW_LOAD_RULES=shipped ...        # the shipped rules instead of one alert per entry
//! ```
//!
//! Several "Vault nodes" each hold one TCP connection and write realistic ~1.3 KB
//! response entries one `write` per entry, as the socket device does. Reported: the
//! sustained ingest rate (bytes read off the sockets), the engine's rate (entries
//! processed), what spilled to disk, the longest time any single write took (the figure
//! that matters to Vault: its audit writes hold a mutex), and how often and how long a
//! write found the socket buffers full: push-back from the daemon, as opposed to the
//! writer's thread losing its core on a machine the writers and the daemon share.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::*;

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

#[test]
#[ignore = "a load measurement: run with --release --ignored --nocapture"]
fn socket_ingest_rate_and_longest_blocked_write() {
    let entries = env_u64("AW_LOAD_ENTRIES", 200_000);
    let nodes = env_u64("AW_LOAD_NODES", 4).max(1);
    let per = entries / nodes;
    let rate = env_u64("AW_LOAD_RATE", 0);
    let memory = env_u64("AW_LOAD_MEMORY", 64 << 20);
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "server: {{listen: 127.0.0.1:0, tick_secs: 0, drain_timeout_secs: 600}}
sources:
  - {{name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0, max_connections: 256}}
spool: {{dir: '{}', memory_bytes: {memory}}}
",
        dir.path().join("spool").display()
    );
    // By default every entry raises an alert (the worst case for the engine and sinks);
    // AW_LOAD_RULES=shipped runs the shipped rules, which stay quiet on this traffic.
    let shipped = std::env::var("AW_LOAD_RULES").is_ok_and(|v| v == "shipped");
    let rules = rules_dir(dir.path(), &[("every.yaml", EVERY_READ_RULE)]);
    let args: Vec<&str> = if shipped {
        Vec::new()
    } else {
        vec!["--rules", rules.to_str().unwrap()]
    };
    let d = Daemon::start(dir.path(), &cfg, &args);
    let addr = d.source("vault-socket");

    // Lines prepared up front so the writers measure writing, not JSON building.
    let template = response_line(
        "REQUEST-ID-PLACEHOLDER-000000000000",
        "2026-03-02T10:00:00Z",
    );
    let (head, tail) = template
        .split_once("REQUEST-ID-PLACEHOLDER-000000000000")
        .unwrap();
    let node_lines: Vec<Vec<Vec<u8>>> = (0..nodes)
        .map(|n| {
            (0..per)
                .map(|i| format!("{head}{}{tail}\n", request_id(n as u32, i)).into_bytes())
                .collect()
        })
        .collect();
    let total_bytes: u64 = node_lines.iter().flatten().map(|l| l.len() as u64).sum();
    let total_entries = per * nodes;

    let start = Instant::now();
    let handles: Vec<_> = node_lines
        .into_iter()
        .map(|lines| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                // Non-blocking, so a write that cannot go on because the socket buffers
                // between this writer and the daemon are full (push-back) is told apart
                // from this thread merely losing its core to another.
                s.set_nonblocking(true).unwrap();
                let mut blocked = Vec::with_capacity(lines.len());
                let mut full_waits = Vec::new();
                let mut sent = Vec::with_capacity(lines.len());
                let begin = Instant::now();
                for (i, l) in lines.iter().enumerate() {
                    if rate > 0 {
                        // Paced like a node serving `rate` audited requests a second.
                        let due = begin + Duration::from_secs_f64(i as f64 / rate as f64);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    let t = Instant::now();
                    let (mut off, mut full_since) = (0, None);
                    while off < l.len() {
                        match s.write(&l[off..]) {
                            Ok(n) => {
                                off += n;
                                if let Some(since) = full_since.take() {
                                    full_waits.push(Instant::now().duration_since(since));
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                full_since.get_or_insert_with(Instant::now);
                                // Sleep, not spin: a spinning writer would take the
                                // core the daemon needs to drain the socket.
                                std::thread::sleep(Duration::from_micros(20));
                            }
                            Err(e) => panic!("write: {e}"),
                        }
                    }
                    blocked.push(t.elapsed());
                    sent.push(t);
                }
                (blocked, full_waits, sent)
            })
        })
        .collect();
    // With one alert per entry, when each alert reached the JSON lines file.
    let tail = (!shipped).then(|| {
        let path = dir.path().join("alerts.jsonl");
        std::thread::spawn(move || tail_alerts(&path, total_entries))
    });
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let written = start.elapsed();
    // Polled often: the rates below are worked out from when these first hold.
    let every = Duration::from_millis(10);
    d.wait_polling("every byte read", Duration::from_secs(600), every, |d| {
        d.metric("auditwatch_source_bytes_total", &[]) >= total_bytes as f64
    });
    let read = start.elapsed();
    let spilled = d.metric("auditwatch_spilled_bytes_total", &[]);
    d.wait_polling(
        "every entry processed",
        Duration::from_secs(1200),
        every,
        |d| d.metric("auditwatch_events_total", &[]) >= total_entries as f64,
    );
    let processed = start.elapsed();
    // Figures are worked out once the daemon is done, so this test's own work (hashing
    // 200,000 ids, sorting) does not take the cores from the daemon it measures.
    let mut blocked = Vec::new();
    let mut full_waits = Vec::new();
    let mut sent_at: std::collections::HashMap<String, Instant> = Default::default();
    for (n, (b, full, sent)) in results.into_iter().enumerate() {
        blocked.extend(b);
        full_waits.extend(full);
        for (i, t) in sent.into_iter().enumerate() {
            sent_at.insert(request_id(n as u32, i as u64), t);
        }
    }
    blocked.sort_unstable();
    let pct = |p: f64| blocked[((blocked.len() as f64 * p) as usize).min(blocked.len() - 1)];
    let worst = *blocked.last().unwrap();
    let over_10ms = blocked
        .iter()
        .filter(|d| **d > Duration::from_millis(10))
        .count();
    if let Some(tail) = tail {
        let seen = tail.join().unwrap();
        let mut lat: Vec<Duration> = seen
            .iter()
            .filter_map(|(id, at)| sent_at.get(id).map(|t| at.saturating_duration_since(*t)))
            .collect();
        lat.sort_unstable();
        if !lat.is_empty() {
            let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
            eprintln!(
                "  socket write to alert line in the JSON lines file ({} alerts): p50 {:?}, p99 {:?}, longest {:?}",
                lat.len(),
                q(0.5),
                q(0.99),
                lat[lat.len() - 1]
            );
        }
    }
    let exit = d.stop();
    assert_eq!(exit.code, Some(0));
    let mb = total_bytes as f64 / 1e6;
    eprintln!(
        "daemon_load: {nodes} connections, {total_entries} entries, {mb:.1} MB, pacing {} entries/s per connection, spool.memory_bytes {memory}\n  \
         writers done in {:.2}s; ingest (all bytes read off the sockets) {:.2}s: {:.0} MB/s, {:.0} entries/s\n  \
         engine done in {:.2}s: {:.0} entries/s; spilled to disk: {:.1} MB\n  \
         blocked writes: p50 {:?}, p99 {:?}, p99.9 {:?}, longest {:?}, {over_10ms} over 10 ms\n  \
         socket buffers full (push-back): {} times, longest wait {:?}",
        rate,
        written.as_secs_f64(),
        read.as_secs_f64(),
        mb / read.as_secs_f64(),
        total_entries as f64 / read.as_secs_f64(),
        processed.as_secs_f64(),
        total_entries as f64 / processed.as_secs_f64(),
        spilled / 1e6,
        pct(0.5),
        pct(0.99),
        pct(0.999),
        worst,
        full_waits.len(),
        full_waits.iter().max().copied().unwrap_or_default()
    );
    if !shipped {
        let alerts = read_alerts(&dir.path().join("alerts.jsonl"));
        assert_eq!(alerts.len() as u64, total_entries, "no entry lost");
    }
}

/// Follow the alert file until `n` alerts were seen (or a minute passed): each alert's
/// request id and when its line appeared (polled every 0.5 ms).
fn tail_alerts(path: &std::path::Path, n: u64) -> Vec<(String, Instant)> {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let mut buf = Vec::new();
    let mut file = None;
    let key = b"\"request_id\":\"";
    while (seen.len() as u64) < n && Instant::now() < deadline {
        if file.is_none() {
            file = std::fs::File::open(path).ok();
        }
        let got = file
            .as_mut()
            .map_or(0, |f| f.read_to_end(&mut buf).unwrap_or(0));
        if got == 0 {
            std::thread::sleep(Duration::from_micros(500));
            continue;
        }
        let now = Instant::now();
        let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        for line in buf[..end].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if let Some(at) = line.windows(key.len()).position(|w| w == key) {
                let rest = &line[at + key.len()..];
                let close = rest.iter().position(|&b| b == b'"').unwrap_or(0);
                seen.push((String::from_utf8_lossy(&rest[..close]).into_owned(), now));
            }
        }
        buf.drain(..end);
    }
    seen
}
