//! The socket source: the peer of Vault's `socket` audit device (tcp, unix or udp).
//!
//! Vault writes each entry synchronously under one mutex and fails or stalls client
//! requests when the write blocks, so this source never pushes back: every connection has
//! its own task that reads the moment data arrives, frames whole lines and hands them to
//! the ingest queue without waiting (the queue spills to disk when the engine is behind).
//! Invariants: bytes are never spliced across connections; an unterminated fragment left
//! when a connection closes (Vault re-sends the whole entry on a new connection) is
//! discarded and counted; connections are capped, and at the cap a peer idle longer than
//! `evict_idle_after_secs` is closed to make room; the unterminated lines all connections
//! hold share one budget (`max_partial_bytes`), past which the connection whose line
//! began the longest ago is closed and its fragment counted; labels carry the source name, never a peer
//! address.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio::sync::{watch, Notify};

use super::framer::{FrameStats, Framer};
use crate::ingest::batch::{Batch, SourceId};
use crate::ingest::queue::Queue;
use crate::metrics::{ConnectionEvent, LineDrop, Metrics};
use crate::parse::ParseError;
use crate::source::settings::{Listen, SocketSource};
use crate::util::lograte::LogRate;

/// How long a connection is still read after shutdown begins.
const DRAIN_READ: Duration = Duration::from_millis(200);

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
}

/// A bound socket source, ready to run.
pub enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
    Udp(UdpSocket),
}

impl Bound {
    /// Bind the configured address. A stale unix socket file is replaced.
    pub async fn bind(cfg: &SocketSource) -> io::Result<Bound> {
        Ok(match &cfg.listen {
            Listen::Tcp(a) => Bound::Tcp(TcpListener::bind(a).await?),
            Listen::Udp(a) => Bound::Udp(UdpSocket::bind(a).await?),
            Listen::Unix(p) => {
                use std::os::unix::fs::FileTypeExt;
                if let Ok(m) = std::fs::symlink_metadata(p) {
                    if m.file_type().is_socket() {
                        std::fs::remove_file(p)?;
                    }
                }
                Bound::Unix(UnixListener::bind(p)?, p.clone())
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
            Bound::Unix(_, p) => p.display().to_string(),
        }
    }

    /// Serve until `shutdown` turns true; then stop accepting, read what connections
    /// still have buffered, and return when every connection task has ended.
    pub async fn run(self, cfg: SocketSource, ctx: SourceCtx, shutdown: watch::Receiver<bool>) {
        match self {
            Bound::Tcp(l) => {
                accept_loop(
                    || async { l.accept().await.map(|(s, _)| s) },
                    cfg,
                    ctx,
                    shutdown,
                )
                .await
            }
            Bound::Unix(l, path) => {
                accept_loop(
                    || async { l.accept().await.map(|(s, _)| s) },
                    cfg,
                    ctx,
                    shutdown,
                )
                .await;
                let _ = std::fs::remove_file(path);
            }
            Bound::Udp(s) => udp_loop(s, ctx, shutdown).await,
        }
    }
}

/// One open connection, as the cap sees it.
struct Slot {
    id: u64,
    last_active_ms: AtomicU64,
    evict: Notify,
    /// Bytes of the unterminated line this connection holds.
    partial: AtomicU64,
    /// When that line began (ms on the source's clock; meaningless while `partial` is 0).
    partial_since_ms: AtomicU64,
    /// Told to close because its partial line was the oldest when the budget was passed.
    over_budget: std::sync::atomic::AtomicBool,
}

struct Conns {
    start: Instant,
    slots: Mutex<Vec<Arc<Slot>>>,
    next_id: AtomicU64,
    /// Bytes of unterminated lines all connections hold, and the budget for them.
    partial_total: AtomicU64,
    partial_budget: u64,
}

impl Conns {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Slot>>> {
        crate::util::sync::lock(&self.slots)
    }

    /// `slot` now holds `held` bytes of an unterminated line. Over the budget shared by all
    /// connections, the connection whose unterminated line began the longest ago is the one
    /// to close: Vault writes each entry whole, so a line left pending is a peer that started
    /// one and stopped (or trickles it), never Vault's; a large line of Vault's that is still
    /// arriving is the newest. `true` when that is `slot` itself; another is told to close.
    /// `new_line`: a line ended in this read, so what is held now is a line that began in it.
    fn hold_partial(&self, slot: &Slot, held: u64, new_line: bool) -> bool {
        let before = slot.partial.swap(held, Ordering::Relaxed);
        if held > 0 && (before == 0 || new_line) {
            slot.partial_since_ms
                .store(self.now_ms(), Ordering::Relaxed);
        }
        let total = if held >= before {
            self.partial_total
                .fetch_add(held - before, Ordering::Relaxed)
                .saturating_add(held - before)
        } else {
            self.partial_total
                .fetch_sub(before - held, Ordering::Relaxed)
                .saturating_sub(before - held)
        };
        if total <= self.partial_budget {
            return false;
        }
        let oldest = self
            .lock()
            .iter()
            .filter(|s| s.partial.load(Ordering::Relaxed) > 0)
            .min_by_key(|s| s.partial_since_ms.load(Ordering::Relaxed))
            .cloned();
        match oldest {
            Some(s) if s.id != slot.id => {
                s.over_budget.store(true, Ordering::Relaxed);
                s.evict.notify_one();
                false
            }
            _ => true,
        }
    }

    /// A connection ended: what it held is no longer held.
    fn release_partial(&self, slot: &Slot) {
        let held = slot.partial.swap(0, Ordering::Relaxed);
        self.partial_total.fetch_sub(held, Ordering::Relaxed);
    }
}

async fn accept_loop<F, Fut, S>(
    accept: F,
    cfg: SocketSource,
    ctx: SourceCtx,
    mut shutdown: watch::Receiver<bool>,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<S>>,
    S: AsyncRead + Unpin + Send + 'static,
{
    let conns = Arc::new(Conns {
        start: Instant::now(),
        slots: Mutex::new(Vec::new()),
        next_id: AtomicU64::new(0),
        partial_total: AtomicU64::new(0),
        partial_budget: cfg.max_partial_bytes,
    });
    let mut tasks = tokio::task::JoinSet::new();
    let evict_after = cfg.evict_idle_after_secs * 1000;
    let mut reject_log = LogRate::new(Duration::from_secs(10));
    loop {
        let stream = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            r = accept() => r,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(source = %ctx.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = {
            let mut slots = conns.lock();
            if slots.len() >= cfg.max_connections {
                let now = conns.now_ms();
                let idlest = slots
                    .iter()
                    .min_by_key(|s| s.last_active_ms.load(Ordering::Relaxed))
                    .cloned();
                match idlest {
                    Some(s)
                        if now.saturating_sub(s.last_active_ms.load(Ordering::Relaxed))
                            >= evict_after =>
                    {
                        s.evict.notify_one();
                        slots.retain(|x| x.id != s.id);
                        ctx.metrics
                            .connection_events
                            .with_label_values(&[&ctx.name, ConnectionEvent::Evicted.as_str()])
                            .inc();
                        tracing::warn!(source = %ctx.name, cap = cfg.max_connections, "connection cap reached: closed the idlest connection");
                        true
                    }
                    _ => false,
                }
            } else {
                true
            }
        };
        if !admitted {
            ctx.metrics
                .connection_events
                .with_label_values(&[&ctx.name, ConnectionEvent::Rejected.as_str()])
                .inc();
            if let Some(more) = reject_log.allow(Instant::now()) {
                tracing::error!(source = %ctx.name, cap = cfg.max_connections, similar_lines_suppressed = more, "connection cap reached and no idle peer: refused a connection");
            }
            drop(stream);
            continue;
        }
        let slot = Arc::new(Slot {
            id: conns.next_id.fetch_add(1, Ordering::Relaxed),
            last_active_ms: AtomicU64::new(conns.now_ms()),
            evict: Notify::new(),
            partial: AtomicU64::new(0),
            partial_since_ms: AtomicU64::new(0),
            over_budget: Default::default(),
        });
        conns.lock().push(slot.clone());
        ctx.metrics
            .connection_events
            .with_label_values(&[&ctx.name, ConnectionEvent::Accepted.as_str()])
            .inc();
        ctx.metrics
            .connections
            .with_label_values(&[&ctx.name])
            .inc();
        tracing::debug!(source = %ctx.name, "connection accepted");
        let ctx = ctx.clone();
        let conns = conns.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            serve_conn(stream, &ctx, &conns, &slot, shutdown).await;
            conns.lock().retain(|x| x.id != slot.id);
            ctx.metrics
                .connections
                .with_label_values(&[&ctx.name])
                .dec();
            ctx.metrics
                .connection_events
                .with_label_values(&[&ctx.name, ConnectionEvent::Closed.as_str()])
                .inc();
        });
    }
    // Stop accepting; connections read what is already buffered and end.
    while tasks.join_next().await.is_some() {}
}

async fn serve_conn<S: AsyncRead + Unpin>(
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
                _ = slot.evict.notified() => break,
                _ = shutdown.changed() => {
                    drain_until = Some(Instant::now() + DRAIN_READ);
                    continue;
                }
            }
        };
        match r {
            Ok(0) => break,
            Ok(n) => {
                slot.last_active_ms.store(conns.now_ms(), Ordering::Relaxed);
                ctx.metrics
                    .bytes
                    .with_label_values(&[&ctx.name])
                    .inc_by(n as u64);
                let mut out = Vec::with_capacity(n + framer.pending());
                let st = framer.push(&buf[..n], &mut out);
                ctx.emit(out, st);
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
    conns.release_partial(slot);
    let evicted_for_budget = over_budget || slot.over_budget.load(Ordering::Relaxed);
    if let Some(n) = framer.discard() {
        if evicted_for_budget {
            ctx.metrics
                .connection_events
                .with_label_values(&[&ctx.name, ConnectionEvent::Evicted.as_str()])
                .inc();
            ctx.fragment(n, "closed: the oldest partial line when all connections' partial lines passed max_partial_bytes");
        } else {
            ctx.fragment(n, "connection closed mid-line");
        }
    }
}

async fn udp_loop(sock: UdpSocket, ctx: SourceCtx, mut shutdown: watch::Receiver<bool>) {
    // One datagram is one or more whole entries; the IPv4 UDP payload limit fits.
    let mut buf = vec![0u8; 65536];
    loop {
        let r = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            r = sock.recv_from(&mut buf) => r,
        };
        match r {
            Ok((n, _peer)) => datagram(&ctx, &buf[..n]),
            Err(e) => {
                tracing::debug!(source = %ctx.name, error = %e, "udp receive failed");
            }
        }
    }
    // Datagrams already queued in the kernel.
    while let Ok((n, _)) = sock.try_recv_from(&mut buf) {
        datagram(&ctx, &buf[..n]);
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
