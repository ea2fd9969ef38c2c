//! The socket source: the peer of Vault's `socket` audit device (tcp, unix or udp).
//!
//! Vault writes each entry synchronously under one mutex and fails or stalls client
//! requests when the write blocks, so this source never pushes back: every connection has
//! its own task that reads the moment data arrives, frames whole lines and hands them to
//! the ingest queue without waiting (the queue spills to disk when the engine is behind).
//!
//! Anyone who can connect may be hostile, so Vault must always get in. Invariants:
//! - Only peers in `allow` (default: loopback) are served; a tcp connection from another
//!   is reset at once, a udp datagram from one dropped, both counted. A unix socket is
//!   bound in a private directory, given its owner, group and mode, and only then linked
//!   at its path, so no peer connects before its permissions hold.
//! - A new connection is always admitted. At `max_connections_per_peer` for its peer (tcp:
//!   the source address; unix: the peer's uid), that peer's connection that has delivered
//!   no complete entry for the longest time is closed; else at `max_connections`, the
//!   source's. A blank or whitespace-only line is not an entry, so connections held open
//!   with blank lines or silence go first; a never-delivering connection counts from
//!   when it was accepted. One pass over the open connections per accept.
//! - A connection closed to make room first has what the kernel already holds read (an
//!   entry that has arrived is not lost), then is reset: Vault never reads, so a FIN would
//!   only show as its next write lost, while a reset fails that write and Vault reconnects
//!   and writes it again.
//! - The unterminated lines all connections hold share one budget (`max_partial_bytes`),
//!   past which the connection whose line began the longest ago is closed and its fragment
//!   counted. Bytes are never spliced across connections; an unterminated fragment left
//!   when a connection closes (Vault re-sends the whole entry on a new connection) is
//!   discarded and counted.
//! - Labels carry the source name, never a peer address; addresses go to rate-limited log
//!   lines only.

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use tokio::sync::{watch, Notify};

use super::framer::{FrameStats, Framer};
use crate::ingest::batch::{Batch, SourceId};
use crate::ingest::queue::Queue;
use crate::metrics::{ConnectionEvent, LineDrop, Metrics};
use crate::parse::ParseError;
use crate::source::settings::{Listen, SocketSource, UnixPerms};
use crate::util::lograte::LogRate;

/// How long a connection is still read after shutdown begins.
const DRAIN_READ: Duration = Duration::from_millis(200);

/// At most this much of what the kernel already holds for a connection closed to make
/// room is read before it is reset (a socket's receive buffer holds a few MiB at most).
const EVICT_READ_MAX: usize = 4 << 20;

/// How often each kind of refusal or eviction is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Where a socket source reports: its id and name, the queue, the metrics.
#[derive(Clone)]
pub struct SourceCtx {
    pub id: SourceId,
    pub name: Arc<str>,
    pub queue: Arc<Queue>,
    pub metrics: Arc<Metrics>,
    pub max_line: usize,
}

impl SourceCtx {
    fn emit(&self, data: Vec<u8>, st: FrameStats) {
        if st.too_long > 0 {
            self.metrics
                .parse_errors
                .with_label_values(&[&self.name, ParseError::LineTooLong.as_str()])
                .inc_by(st.too_long);
            tracing::warn!(source = %self.name, lines = st.too_long, "skipped lines over parse.max_line_bytes");
        }
        if !data.is_empty() {
            self.queue.push(Batch {
                source: self.id,
                data,
                commit: None,
            });
        }
    }

    fn fragment(&self, bytes: usize, why: &str) {
        self.metrics
            .dropped_lines
            .with_label_values(&[&self.name, LineDrop::Fragment.as_str()])
            .inc();
        tracing::warn!(source = %self.name, bytes, reason = why, "discarded an unterminated fragment");
    }

    fn count(&self, e: ConnectionEvent) {
        self.metrics
            .connection_events
            .with_label_values(&[&self.name, e.as_str()])
            .inc();
    }
}

/// A bound socket source, ready to run.
pub enum Bound {
    Tcp(TcpListener),
    /// The listener, its path, and the identity of the file bound there (removed at exit
    /// only while it is still that file).
    Unix(UnixListener, PathBuf, (u64, u64)),
    Udp(UdpSocket),
}

impl Bound {
    /// Bind the configured address. A unix socket gets its owner, group and mode before
    /// anyone can connect; a stale socket at its path is replaced, any other file there is
    /// an error and left alone.
    pub async fn bind(cfg: &SocketSource) -> io::Result<Bound> {
        Ok(match &cfg.listen {
            Listen::Tcp(a) => Bound::Tcp(TcpListener::bind(a).await?),
            Listen::Udp(a) => Bound::Udp(UdpSocket::bind(a).await?),
            Listen::Unix(p) => {
                let (l, id) = bind_unix(p, &cfg.unix)?;
                Bound::Unix(l, p.clone(), id)
            }
        })
    }

    /// The bound address, for logs (`127.0.0.1:9200`, `udp://…`, a socket path).
    pub fn describe(&self) -> String {
        match self {
            Bound::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "?".into()),
            Bound::Udp(s) => s
                .local_addr()
                .map(|a: SocketAddr| a.to_string())
                .unwrap_or_else(|_| "?".into()),
            Bound::Unix(_, p, _) => p.display().to_string(),
        }
    }

    /// Serve until `shutdown` turns true; then stop accepting, read what connections
    /// still have buffered, and return when every connection task has ended.
    pub async fn run(self, cfg: SocketSource, ctx: SourceCtx, shutdown: watch::Receiver<bool>) {
        match self {
            Bound::Tcp(l) => {
                accept_loop(
                    || async {
                        let (s, a) = l.accept().await?;
                        Ok((s, Peer::Ip(a.ip().to_canonical())))
                    },
                    cfg,
                    ctx,
                    shutdown,
                )
                .await
            }
            Bound::Unix(l, path, id) => {
                accept_loop(
                    || async {
                        let (s, _) = l.accept().await?;
                        let peer = s.peer_cred().map_or(Peer::Unknown, |c| Peer::Uid(c.uid()));
                        Ok((s, peer))
                    },
                    cfg,
                    ctx,
                    shutdown,
                )
                .await;
                // Only the file this run bound: another process may have replaced it.
                if std::fs::symlink_metadata(&path).is_ok_and(|m| (m.dev(), m.ino()) == id) {
                    let _ = std::fs::remove_file(path);
                }
            }
            Bound::Udp(s) => udp_loop(s, cfg, ctx, shutdown).await,
        }
    }
}

/// Bind a unix socket at `path` with `perms`, so that no peer can connect before they
/// hold: it is bound in a private directory (0700) beside `path`, given its owner, group
/// and mode there, then hard-linked at `path` (which fails, rather than replace, if a file
/// appeared there meanwhile). Returns the listener and the bound file's (dev, inode).
fn bind_unix(path: &Path, perms: &UnixPerms) -> io::Result<(UnixListener, (u64, u64))> {
    clear_stale_socket(path)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Unique per process and bind; short, since a socket path has at most 107 bytes and
    // this one is longer than `path`.
    static BINDS: AtomicU64 = AtomicU64::new(0);
    let private = parent.join(format!(
        ".aw-{}-{}",
        std::process::id(),
        BINDS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let bound = (|| {
        let tmp = private.join("s");
        let l = UnixListener::bind(&tmp)?;
        if perms.owner.is_some() || perms.group.is_some() {
            std::os::unix::fs::chown(&tmp, perms.owner, perms.group)?;
        }
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(perms.mode))?;
        std::fs::hard_link(&tmp, path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot link the bound socket at {}: {e}", path.display()),
            )
        })?;
        let m = std::fs::symlink_metadata(path)?;
        Ok((l, (m.dev(), m.ino())))
    })();
    let _ = std::fs::remove_file(private.join("s"));
    let _ = std::fs::remove_dir(&private);
    bound
}

/// Make way for binding at `path`: nothing there, or a socket nobody listens on (left by
/// a crash), which is removed. A live socket or any other file is an error, left alone.
fn clear_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !m.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; it is left alone (remove it or choose another path)",
                path.display()
            ),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another process is listening on {}", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!(
                "cannot tell whether the socket at {} is in use: {e}",
                path.display()
            ),
        )),
    }
}

/// Who is at the other end: what the per-peer cap counts by, and what logs show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    /// A tcp source address (IPv4-mapped IPv6 as IPv4).
    Ip(IpAddr),
    /// A unix peer's uid.
    Uid(u32),
    /// A unix peer whose credentials could not be read: these share one count.
    Unknown,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ip(ip) => write!(f, "{ip}"),
            Peer::Uid(uid) => write!(f, "uid {uid}"),
            Peer::Unknown => f.write_str("unknown"),
        }
    }
}

/// Why a connection is told to close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Close {
    /// Not told.
    No = 0,
    /// Made room at `max_connections`.
    Cap = 1,
    /// Made room at `max_connections_per_peer`.
    PeerCap = 2,
    /// Its partial line was the oldest when all partial lines passed `max_partial_bytes`.
    Budget = 3,
}

impl Close {
    fn from_u8(v: u8) -> Close {
        match v {
            1 => Close::Cap,
            2 => Close::PeerCap,
            3 => Close::Budget,
            _ => Close::No,
        }
    }
}

/// One open connection, as the caps and the budget see it.
struct Slot {
    id: u64,
    peer: Peer,
    /// When it last delivered a complete, non-blank line, or was accepted (µs on the
    /// source's clock): the connection with the smallest is the one closed to make room.
    last_entry_us: AtomicU64,
    evict: Notify,
    /// A [`Close`]: set once, by whoever tells it to close first.
    close: AtomicU8,
    /// Bytes of the unterminated line this connection holds.
    partial: AtomicU64,
    /// When that line began (µs on the source's clock; meaningless while `partial` is 0).
    partial_since_us: AtomicU64,
}

impl Slot {
    fn new(id: u64, peer: Peer, now_us: u64) -> Slot {
        Slot {
            id,
            peer,
            last_entry_us: AtomicU64::new(now_us),
            evict: Notify::new(),
            close: AtomicU8::new(Close::No as u8),
            partial: AtomicU64::new(0),
            partial_since_us: AtomicU64::new(0),
        }
    }

    /// Tell the connection's task to close for `why` (the first reason given stands).
    fn tell_close(&self, why: Close) {
        let _ = self.close.compare_exchange(
            Close::No as u8,
            why as u8,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        self.evict.notify_one();
    }

    fn told(&self) -> Close {
        Close::from_u8(self.close.load(Ordering::Relaxed))
    }
}

/// Which open connection a new one from `peer` closes, if any (its index in `slots`): at
/// `max_per_peer` connections of that peer, the one of them that has delivered no entry
/// for the longest time; otherwise at `max_total`, the one of all. Ties go to the older.
fn victim(
    slots: &[Arc<Slot>],
    peer: Peer,
    max_total: usize,
    max_per_peer: usize,
) -> Option<(usize, Close)> {
    let mut same = 0usize;
    let mut open = 0usize;
    let mut stalest_same: Option<(u64, u64, usize)> = None;
    let mut stalest: Option<(u64, u64, usize)> = None;
    // One already told to close (over the partial-line budget) is leaving: it neither
    // counts nor is chosen.
    for (i, s) in slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.told() == Close::No)
    {
        open += 1;
        let key = (s.last_entry_us.load(Ordering::Relaxed), s.id, i);
        if s.peer == peer {
            same += 1;
            stalest_same = Some(stalest_same.map_or(key, |k| k.min(key)));
        }
        stalest = Some(stalest.map_or(key, |k| k.min(key)));
    }
    if same >= max_per_peer {
        return stalest_same.map(|k| (k.2, Close::PeerCap));
    }
    if open >= max_total {
        return stalest.map(|k| (k.2, Close::Cap));
    }
    None
}

/// Whether framed lines hold an entry: a line with something besides whitespace.
fn has_entry(lines: &[u8]) -> bool {
    lines.iter().any(|b| !b.is_ascii_whitespace())
}

struct Conns {
    start: Instant,
    slots: Mutex<Vec<Arc<Slot>>>,
    /// `auditwatch_source_connections`: the connections in `slots`, changed under its lock,
    /// so it never shows more than the cap (one closed to make room no longer counts).
    open: prometheus::IntGauge,
    next_id: AtomicU64,
    /// Bytes of unterminated lines all connections hold, and the budget for them.
    partial_total: AtomicU64,
    partial_budget: u64,
}

impl Conns {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Slot>>> {
        crate::util::sync::lock(&self.slots)
    }

    fn add(&self, slot: Arc<Slot>) {
        let mut slots = self.lock();
        slots.push(slot);
        self.open.inc();
    }

    /// Take the connection out of `slots`, if it is still there.
    fn remove(&self, id: u64) {
        let mut slots = self.lock();
        if let Some(i) = slots.iter().position(|s| s.id == id) {
            slots.swap_remove(i);
            self.open.dec();
        }
    }

    /// `slot` now holds `held` bytes of an unterminated line. Over the budget shared by all
    /// connections, the connection whose unterminated line began the longest ago is the one
    /// to close: Vault writes each entry whole, so a line left pending is a peer that started
    /// one and stopped (or trickles it), never Vault's; a large line of Vault's that is still
    /// arriving is the newest. As many are told to close as it takes to be within the budget
    /// again; `true` when `slot` itself is next. `new_line`: a line ended in this read, so
    /// what is held now is a line that began in it.
    fn hold_partial(&self, slot: &Slot, held: u64, new_line: bool) -> bool {
        let before = slot.partial.swap(held, Ordering::Relaxed);
        if held > 0 && (before == 0 || new_line) {
            slot.partial_since_us
                .store(self.now_us(), Ordering::Relaxed);
        }
        if held >= before {
            self.partial_total
                .fetch_add(held - before, Ordering::Relaxed);
        } else {
            self.partial_total
                .fetch_sub(before - held, Ordering::Relaxed);
        }
        while self.partial_total.load(Ordering::Relaxed) > self.partial_budget {
            let oldest = self
                .lock()
                .iter()
                .filter(|s| s.partial.load(Ordering::Relaxed) > 0 && s.told() == Close::No)
                .min_by_key(|s| s.partial_since_us.load(Ordering::Relaxed))
                .cloned();
            match oldest {
                Some(s) if s.id == slot.id => return true,
                Some(s) => self.close(&s, Close::Budget),
                // Only connections already closing hold partial lines.
                None => break,
            }
        }
        false
    }

    /// Tell `slot`'s task to close; what it holds no longer counts against the budget (it
    /// is about to be freed), so one over-budget read does not close more than it must.
    fn close(&self, slot: &Slot, why: Close) {
        slot.tell_close(why);
        self.release_partial(slot);
    }

    /// A connection ended: what it held is no longer held.
    fn release_partial(&self, slot: &Slot) {
        let held = slot.partial.swap(0, Ordering::Relaxed);
        self.partial_total.fetch_sub(held, Ordering::Relaxed);
    }
}

/// Where the bytes [`Conn::close_now`] reads before closing go.
type Sink<'a> = &'a mut dyn FnMut(&[u8]);

/// What [`Conn::close_now`] reads before closing: a buffer and where the bytes go.
type Drain<'a> = Option<(&'a mut [u8], Sink<'a>)>;

/// A stream connection as the source needs it: read, and closed at once when it must go.
trait Conn: AsyncRead + Unpin + Send + 'static {
    /// Close so that the peer's next write fails at once; first, with `drain`, hand what
    /// the kernel already holds for it (read without waiting, at most [`EVICT_READ_MAX`])
    /// to the drain's sink. A real read: the reactor may not have seen the newest bytes.
    fn close_now(self, drain: Drain<'_>);
}

impl Conn for TcpStream {
    fn close_now(self, drain: Drain<'_>) {
        // A reset, not a FIN: a writer that never reads learns of a FIN only by losing
        // its next write; a reset fails that write, and Vault reconnects and repeats it.
        let _ = self.set_zero_linger();
        if let (Some(d), Ok(s)) = (drain, self.into_std()) {
            read_held(s, d);
        }
    }
}

impl Conn for UnixStream {
    fn close_now(self, drain: Drain<'_>) {
        // A unix peer's next write fails as soon as this end is closed.
        if let (Some(d), Ok(s)) = (drain, self.into_std()) {
            read_held(s, d);
        }
    }
}

/// Read a non-blocking stream until it has nothing more right now (or
/// [`EVICT_READ_MAX`]), handing each chunk on.
fn read_held<R: Read>(mut s: R, (buf, sink): (&mut [u8], Sink<'_>)) {
    let mut total = 0;
    while total < EVICT_READ_MAX {
        match s.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n;
                sink(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // WouldBlock: nothing more is held; anything else: the peer is gone.
            Err(_) => break,
        }
    }
}

/// The accept loop's rate-limited log lines, one kind each.
struct Logs {
    refused: LogRate,
    cap: LogRate,
    peer_cap: LogRate,
}

async fn accept_loop<F, Fut, S>(
    accept: F,
    cfg: SocketSource,
    ctx: SourceCtx,
    mut shutdown: watch::Receiver<bool>,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<(S, Peer)>>,
    S: Conn,
{
    let conns = Arc::new(Conns {
        start: Instant::now(),
        slots: Mutex::new(Vec::new()),
        open: ctx.metrics.connections.with_label_values(&[&ctx.name]),
        next_id: AtomicU64::new(0),
        partial_total: AtomicU64::new(0),
        partial_budget: cfg.max_partial_bytes,
    });
    let mut tasks = tokio::task::JoinSet::new();
    let mut logs = Logs {
        refused: LogRate::new(LOG_EVERY),
        cap: LogRate::new(LOG_EVERY),
        peer_cap: LogRate::new(LOG_EVERY),
    };
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            r = accept() => r,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(source = %ctx.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Peer::Ip(ip) = peer {
            if !cfg.allows(ip) {
                stream.close_now(None);
                ctx.count(ConnectionEvent::Refused);
                if let Some(more) = logs.refused.allow(Instant::now()) {
                    tracing::warn!(source = %ctx.name, peer = %ip, similar_lines_suppressed = more, "refused a connection from a peer outside allow");
                }
                continue;
            }
        }
        admit(&conns, &cfg, &ctx, peer, &mut logs);
        let slot = Arc::new(Slot::new(
            conns.next_id.fetch_add(1, Ordering::Relaxed),
            peer,
            conns.now_us(),
        ));
        conns.add(slot.clone());
        ctx.count(ConnectionEvent::Accepted);
        tracing::debug!(source = %ctx.name, peer = %peer, "connection accepted");
        let ctx = ctx.clone();
        let conns = conns.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            serve_conn(stream, &ctx, &conns, &slot, shutdown).await;
            ctx.count(ConnectionEvent::Closed);
        });
    }
    // Stop accepting; connections read what is already buffered and end.
    while tasks.join_next().await.is_some() {}
}

/// Make room for a new connection from `peer`: at a cap, close the connection that has
/// delivered no entry for the longest time (of that peer, or of all); counted and logged.
fn admit(conns: &Conns, cfg: &SocketSource, ctx: &SourceCtx, peer: Peer, logs: &mut Logs) {
    let now = conns.now_us();
    let closed = {
        let mut slots = conns.lock();
        victim(
            &slots,
            peer,
            cfg.max_connections,
            cfg.max_connections_per_peer,
        )
        .map(|(i, why)| {
            conns.open.dec();
            (slots.swap_remove(i), why)
        })
    };
    let Some((s, why)) = closed else { return };
    conns.close(&s, why);
    let quiet_secs = now.saturating_sub(s.last_entry_us.load(Ordering::Relaxed)) / 1_000_000;
    if why == Close::PeerCap {
        ctx.count(ConnectionEvent::EvictedPeer);
        if let Some(more) = logs.peer_cap.allow(Instant::now()) {
            tracing::warn!(source = %ctx.name, peer = %s.peer, cap = cfg.max_connections_per_peer, quiet_secs, similar_lines_suppressed = more, "per-peer connection cap reached: closed that peer's connection that delivered no entry for the longest time");
        }
    } else {
        ctx.count(ConnectionEvent::Evicted);
        if let Some(more) = logs.cap.allow(Instant::now()) {
            tracing::warn!(source = %ctx.name, peer = %s.peer, cap = cfg.max_connections, quiet_secs, similar_lines_suppressed = more, "connection cap reached: closed the connection that delivered no entry for the longest time");
        }
    }
}

async fn serve_conn<S: Conn>(
    mut stream: S,
    ctx: &SourceCtx,
    conns: &Conns,
    slot: &Slot,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut framer = Framer::new(ctx.max_line, false);
    // Shutdown: take what the kernel already holds (bounded: a peer that keeps writing
    // must not hold the drain open), then close.
    let mut drain_until = shutdown.borrow().then(|| Instant::now() + DRAIN_READ);
    let mut over_budget = false;
    let mut told = false;
    loop {
        let r = if let Some(until) = drain_until {
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, stream.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                r = stream.read(&mut buf) => r,
                _ = slot.evict.notified() => {
                    told = true;
                    break;
                }
                _ = shutdown.changed() => {
                    drain_until = Some(Instant::now() + DRAIN_READ);
                    continue;
                }
            }
        };
        match r {
            Ok(0) => break,
            Ok(n) => {
                ctx.metrics
                    .bytes
                    .with_label_values(&[&ctx.name])
                    .inc_by(n as u64);
                let mut out = Vec::with_capacity(n + framer.pending());
                let st = framer.push(&buf[..n], &mut out);
                if has_entry(&out) {
                    slot.last_entry_us.store(conns.now_us(), Ordering::Relaxed);
                }
                ctx.emit(out, st);
                if slot.told() != Close::No {
                    // Told to close while this read was on its way: hold nothing more.
                    told = true;
                    break;
                }
                if conns.hold_partial(slot, framer.pending() as u64, st.lines > 0) {
                    over_budget = true;
                    break;
                }
            }
            Err(e) => {
                tracing::debug!(source = %ctx.name, error = %e, "connection read failed");
                break;
            }
        }
    }
    // Out of the caps' count first, so that once its closing is counted it is not open.
    conns.remove(slot.id);
    let why = if over_budget {
        Close::Budget
    } else {
        slot.told()
    };
    match why {
        // Closed to make room: first what has already arrived, so an entry that did is
        // not lost.
        Close::Cap | Close::PeerCap if told => {
            let mut sink = |chunk: &[u8]| {
                ctx.metrics
                    .bytes
                    .with_label_values(&[&ctx.name])
                    .inc_by(chunk.len() as u64);
                let mut out = Vec::with_capacity(chunk.len() + framer.pending());
                let st = framer.push(chunk, &mut out);
                ctx.emit(out, st);
            };
            stream.close_now(Some((&mut buf, &mut sink)));
        }
        Close::Budget => stream.close_now(None),
        _ => drop(stream),
    }
    conns.release_partial(slot);
    if let Some(n) = framer.discard() {
        match why {
            Close::Budget => {
                ctx.count(ConnectionEvent::Evicted);
                ctx.fragment(n, "closed: the oldest partial line when all connections' partial lines passed max_partial_bytes");
            }
            Close::Cap | Close::PeerCap => {
                ctx.fragment(n, "closed to make room at a connection cap");
            }
            Close::No => ctx.fragment(n, "connection closed mid-line"),
        }
    }
}

async fn udp_loop(
    sock: UdpSocket,
    cfg: SocketSource,
    ctx: SourceCtx,
    mut shutdown: watch::Receiver<bool>,
) {
    // One datagram is one or more whole entries; the IPv4 UDP payload limit fits.
    let mut buf = vec![0u8; 65536];
    let mut refused_log = LogRate::new(LOG_EVERY);
    let mut take = |n: usize, from: SocketAddr, buf: &[u8]| {
        if cfg.allows(from.ip()) {
            datagram(&ctx, &buf[..n]);
        } else {
            ctx.count(ConnectionEvent::Refused);
            if let Some(more) = refused_log.allow(Instant::now()) {
                tracing::warn!(source = %ctx.name, peer = %from.ip(), similar_lines_suppressed = more, "dropped a datagram from a peer outside allow");
            }
        }
    };
    loop {
        let r = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            r = sock.recv_from(&mut buf) => r,
        };
        match r {
            Ok((n, from)) => take(n, from, &buf),
            Err(e) => {
                tracing::debug!(source = %ctx.name, error = %e, "udp receive failed");
            }
        }
    }
    // Datagrams already queued in the kernel.
    while let Ok((n, from)) = sock.try_recv_from(&mut buf) {
        take(n, from, &buf);
    }
}

fn datagram(ctx: &SourceCtx, d: &[u8]) {
    ctx.metrics
        .bytes
        .with_label_values(&[&ctx.name])
        .inc_by(d.len() as u64);
    if d.is_empty() {
        return;
    }
    let mut framer = Framer::new(ctx.max_line, false);
    let mut out = Vec::with_capacity(d.len() + 1);
    let mut st = framer.push(d, &mut out);
    if framer.pending() > 0 {
        // A datagram is complete by definition: its last entry needs no newline.
        out.extend_from_slice(&framer.take_partial());
        out.push(b'\n');
        st.lines += 1;
    } else if framer.discard().is_some() {
        st.too_long += 1;
    }
    ctx.emit(out, st);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(id: u64, peer: Peer, last_entry_us: u64) -> Arc<Slot> {
        Arc::new(Slot::new(id, peer, last_entry_us))
    }

    fn ip(s: &str) -> Peer {
        Peer::Ip(s.parse().unwrap())
    }

    #[test]
    fn below_both_caps_nobody_is_closed() {
        let slots = vec![slot(0, ip("127.0.0.1"), 0), slot(1, ip("127.0.0.2"), 0)];
        assert_eq!(victim(&slots, ip("127.0.0.1"), 3, 2), None);
    }

    #[test]
    fn at_the_cap_the_connection_quiet_the_longest_is_closed_whoever_it_is() {
        // 1 delivered last at 50, 0 at 100, 2 never since it was accepted at 10.
        let slots = vec![
            slot(0, ip("127.0.0.1"), 100),
            slot(1, ip("127.0.0.2"), 50),
            slot(2, ip("127.0.0.3"), 10),
        ];
        assert_eq!(victim(&slots, ip("127.0.0.9"), 3, 3), Some((2, Close::Cap)));
        // Equal times: the older connection goes.
        let slots = vec![slot(5, ip("127.0.0.1"), 7), slot(3, ip("127.0.0.2"), 7)];
        assert_eq!(victim(&slots, ip("127.0.0.9"), 2, 2), Some((1, Close::Cap)));
    }

    #[test]
    fn at_the_per_peer_cap_only_that_peers_connections_are_candidates() {
        let slots = vec![
            slot(0, ip("127.0.0.2"), 1),
            slot(1, ip("127.0.0.1"), 30),
            slot(2, ip("127.0.0.1"), 20),
        ];
        // 127.0.0.2's connection is quieter, but the new one is 127.0.0.1's third.
        assert_eq!(
            victim(&slots, ip("127.0.0.1"), 10, 2),
            Some((2, Close::PeerCap))
        );
        // Another peer is under its own cap and the source under its cap: no one.
        assert_eq!(victim(&slots, ip("127.0.0.3"), 10, 2), None);
        // Unix peers count by uid.
        let slots = vec![slot(0, Peer::Uid(1000), 5), slot(1, Peer::Uid(0), 1)];
        assert_eq!(
            victim(&slots, Peer::Uid(1000), 10, 1),
            Some((0, Close::PeerCap))
        );
    }

    #[test]
    fn a_blank_or_whitespace_line_is_not_an_entry() {
        assert!(!has_entry(b""));
        assert!(!has_entry(b"\n"));
        assert!(!has_entry(b"  \t\r\n\n \n"));
        assert!(has_entry(b"\n{\"type\":\"request\"}\n"));
        assert!(has_entry(b"x\n"));
    }

    #[test]
    fn a_stale_socket_is_replaced_and_its_mode_set_before_anyone_connects() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.sock");
        // A socket file nobody listens on, as a crash leaves it.
        drop(std::os::unix::net::UnixListener::bind(&p).unwrap());
        assert!(p.exists());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let perms = UnixPerms {
            mode: 0o640,
            owner: None,
            group: None,
        };
        let (_l, id) = rt.block_on(async { bind_unix(&p, &perms) }).unwrap();
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o640);
        assert_eq!((m.dev(), m.ino()), id);
        assert!(std::os::unix::net::UnixStream::connect(&p).is_ok());
        // The private directory it was bound in is gone.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("audit.sock")]);
    }

    #[test]
    fn a_live_socket_or_another_file_at_the_path_is_an_error_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let perms = UnixPerms::default();
        // Another process listening there.
        let live = dir.path().join("live.sock");
        let other = std::os::unix::net::UnixListener::bind(&live).unwrap();
        let err = rt
            .block_on(async { bind_unix(&live, &perms) })
            .expect_err("a live socket is not replaced");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(std::os::unix::net::UnixStream::connect(&live).is_ok());
        drop(other);
        // A regular file.
        let file = dir.path().join("audit.log");
        std::fs::write(&file, "keep me").unwrap();
        let err = rt
            .block_on(async { bind_unix(&file, &perms) })
            .expect_err("a regular file is not replaced");
        assert!(err.to_string().contains("is not a socket"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    }
}
