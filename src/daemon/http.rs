//! The daemon's HTTP endpoint: `GET /metrics` (Prometheus text), `/-/healthy` (the
//! engine thread is turning) and `/-/ready` (sources bound, engine running, not
//! draining). A deliberately small HTTP/1.1 responder: one request per connection, a
//! bounded request head read with a deadline, `Connection: close`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// What the endpoint reports on.
#[derive(Clone)]
pub struct Health {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    /// Unix ms of the engine thread's last loop turn.
    pub heartbeat: Arc<AtomicU64>,
}

/// The engine is considered stuck when its loop has not turned for this long.
const STUCK: Duration = Duration::from_secs(30);

pub async fn serve(listener: TcpListener, health: Health, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let h = health.clone();
        tokio::spawn(async move {
            if let Err(e) = tokio::time::timeout(Duration::from_secs(5), handle(stream, &h)).await {
                tracing::debug!(error = %e, "http request timed out");
            }
        });
    }
}

async fn handle(mut stream: TcpStream, h: &Health) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > 16 * 1024 {
            return respond(&mut stream, 431, "text/plain", b"request head too large\n").await;
        }
    }
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return respond(&mut stream, 405, "text/plain", b"method not allowed\n").await;
    }
    match path {
        "/metrics" => {
            let body = h.metrics.render();
            respond(
                &mut stream,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
            .await
        }
        "/-/healthy" => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let beat = h.heartbeat.load(Ordering::Relaxed);
            if now.saturating_sub(beat) <= STUCK.as_millis() as u64 {
                respond(&mut stream, 200, "text/plain", b"ok\n").await
            } else {
                respond(&mut stream, 503, "text/plain", b"engine stuck\n").await
            }
        }
        "/-/ready" => {
            if h.ready.load(Ordering::Relaxed) {
                respond(&mut stream, 200, "text/plain", b"ready\n").await
            } else {
                respond(&mut stream, 503, "text/plain", b"not ready\n").await
            }
        }
        _ => respond(&mut stream, 404, "text/plain", b"not found\n").await,
    }
}

async fn respond(
    stream: &mut TcpStream,
    code: u16,
    ctype: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}
