//! The daemon's HTTP endpoint: `GET /metrics` (Prometheus text), `/-/healthy` (the
//! engine thread is turning) and `/-/ready` (sources bound, engine running, not
//! draining). A deliberately small HTTP/1.1 responder: one request per connection,
//! `Connection: close`. `HEAD` gets the headers a `GET` would (its `Content-Length`
//! included) and no body.
//!
//! Secured as Prometheus exporters are, by a web config file ([`super::web`]): TLS
//! (rustls) and basic auth with bcrypt hashes ([`super::auth`]), on every path alike. The
//! web config's files are looked at again at a new connection (at most once a second) and a
//! changed set is used from then on.
//!
//! Bounds, so that no peer can hold the endpoint or grow its memory: at most
//! [`MAX_CONNECTIONS`] connections at once (past it a new one is closed at once); each
//! connection is its own task, so the accept loop never waits on a peer; the TLS handshake
//! and the request head ([`MAX_HEAD`] bytes at most) must be done within [`HEAD_DEADLINE`]
//! of the accept, and the answer (password check included) within [`ANSWER_DEADLINE`].
//! Every refusal is counted in `auditwatch_http_refused_total{reason}` and logged at most
//! once per 10 s per reason, with the peer's address (never a user name or a password).

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at};

use super::auth::{Auth, Outcome};
use super::web::{Live, Refresh, WebConfig};
use crate::metrics::{HttpRefusal, Metrics, ReloadOutcome};
use crate::util::lograte::LogRates;
use crate::util::sync::lock;

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
/// Connections served at once; more are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// From the accept to the end of the TLS handshake and of the request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// From the request head to the end of the answer (the password check included).
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(10);
/// The largest request head read.
pub const MAX_HEAD: usize = 16 * 1024;
/// The first byte of a TLS record carrying a handshake (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

struct Endpoint {
    health: Health,
    web: Option<Arc<Live>>,
    auth: Auth,
    logs: Mutex<LogRates<HttpRefusal>>,
}

/// Serve `listener` until `shutdown`; `web` is the web config (`None`: plain HTTP, no
/// authentication).
pub async fn serve(
    listener: TcpListener,
    health: Health,
    web: Option<Arc<WebConfig>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let metrics = &health.metrics;
    for r in HttpRefusal::ALL {
        metrics.http_refused.with_label_values(&[r.as_str()]);
    }
    if let Some(w) = &web {
        for o in ReloadOutcome::ALL {
            metrics
                .http_web_config_reloads
                .with_label_values(&[o.as_str()]);
        }
        let shape = w.shape();
        tracing::info!(
            web_config = %w.path().display(),
            tls = shape.tls,
            basic_auth = shape.basic_auth,
            client_certificates = ?shape.client_certs,
            "http endpoint secured by its web config"
        );
    }
    let ep = Arc::new(Endpoint {
        health,
        web: web.map(|w| Arc::new(Live::new(w))),
        auth: Auth::new(),
        logs: Mutex::new(LogRates::new(Duration::from_secs(10))),
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            ep.refused(HttpRefusal::ConnectionCap, peer, None);
            drop(stream);
            continue;
        };
        let ep = ep.clone();
        tokio::spawn(async move {
            ep.connection(stream, peer).await;
            drop(slot);
        });
    }
}

impl Endpoint {
    fn refused(&self, reason: HttpRefusal, peer: SocketAddr, detail: Option<&dyn Display>) {
        self.health
            .metrics
            .http_refused
            .with_label_values(&[reason.as_str()])
            .inc();
        let Some(more) = lock(&self.logs).allow(reason, Instant::now()) else {
            return;
        };
        let (reason, msg) = (
            reason.as_str(),
            "http endpoint refused a connection or request",
        );
        match detail {
            Some(e) => {
                tracing::warn!(reason, peer = %peer, error = %e, similar_lines_suppressed = more, "{msg}")
            }
            None => tracing::warn!(reason, peer = %peer, similar_lines_suppressed = more, "{msg}"),
        }
    }

    /// The web config for a new connection, read again first when its files changed.
    async fn web_config(&self) -> Option<Arc<WebConfig>> {
        let live = self.web.as_ref()?;
        if live.due(Instant::now()) {
            let l = live.clone();
            let refresh = tokio::task::spawn_blocking(move || l.refresh(Instant::now()));
            let metrics = &self.health.metrics.http_web_config_reloads;
            match refresh.await {
                Ok(Refresh::Reloaded) => {
                    metrics
                        .with_label_values(&[ReloadOutcome::Ok.as_str()])
                        .inc();
                    tracing::info!("web config changed: reloaded");
                }
                Ok(Refresh::Rejected(problems)) => {
                    metrics
                        .with_label_values(&[ReloadOutcome::Rejected.as_str()])
                        .inc();
                    for p in &problems {
                        tracing::error!(problem = %p, "web config reload rejected");
                    }
                    tracing::error!(
                        problems = problems.len(),
                        "web config reload rejected: the running one is kept"
                    );
                }
                Ok(Refresh::Unchanged) | Err(_) => {}
            }
        }
        Some(live.current())
    }

    async fn connection(&self, mut stream: TcpStream, peer: SocketAddr) {
        let head_by = tokio::time::Instant::now() + HEAD_DEADLINE;
        let web = self.web_config().await;
        let Some(acceptor) = web.as_deref().and_then(WebConfig::acceptor) else {
            return self.exchange(stream, peer, head_by, web.as_deref()).await;
        };
        let mut first = [0u8; 1];
        match timeout_at(head_by, stream.peek(&mut first)).await {
            Err(_) => return self.refused(HttpRefusal::Timeout, peer, None),
            Ok(Err(_) | Ok(0)) => return,
            Ok(Ok(_)) => {}
        }
        if first[0] != TLS_HANDSHAKE {
            // Plain HTTP (or anything else) on the TLS port: say so in plain text, after
            // reading the request, so closing does not reset the answer away.
            self.refused(HttpRefusal::NotTls, peer, None);
            if let Ok(Ok(_)) = timeout_at(head_by, read_head(&mut stream)).await {
                let body = b"this endpoint speaks HTTPS only: use https://\n";
                let _ = timeout(
                    ANSWER_DEADLINE,
                    respond(&mut stream, 400, "text/plain", &[], body),
                )
                .await;
            }
            return;
        }
        match timeout_at(head_by, acceptor.accept(stream)).await {
            Err(_) => self.refused(HttpRefusal::Timeout, peer, None),
            Ok(Err(e)) => self.refused(HttpRefusal::TlsHandshake, peer, Some(&e)),
            Ok(Ok(tls)) => self.exchange(tls, peer, head_by, web.as_deref()).await,
        }
    }

    /// Read one request (by `head_by`), check its credentials and answer it.
    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut s: S,
        peer: SocketAddr,
        head_by: tokio::time::Instant,
        web: Option<&WebConfig>,
    ) {
        let head = match timeout_at(head_by, read_head(&mut s)).await {
            Err(_) => return self.refused(HttpRefusal::Timeout, peer, None),
            Ok(Err(_)) => return,
            Ok(Ok(Head::Empty)) => return,
            Ok(Ok(Head::TooLarge)) => {
                self.refused(HttpRefusal::HeadTooLarge, peer, None);
                let body = b"request head too large\n";
                let _ = timeout(
                    ANSWER_DEADLINE,
                    respond(&mut s, 431, "text/plain", &[], body),
                )
                .await;
                return;
            }
            Ok(Ok(Head::Complete(h))) => h,
        };
        let reply = async {
            let req = Request::parse(&head);
            if let Some(w) = web {
                let refusal = match self.auth.check(w.users(), req.authorization).await {
                    Outcome::Allowed => None,
                    Outcome::NoCredentials => Some(HttpRefusal::NoCredentials),
                    Outcome::BadCredentials => Some(HttpRefusal::BadCredentials),
                    Outcome::Busy => Some(HttpRefusal::AuthBusy),
                };
                if let Some(r) = refusal {
                    self.refused(r, peer, None);
                    let head_only = req.method == "HEAD";
                    return if r == HttpRefusal::AuthBusy {
                        let retry = [("Retry-After", "1")];
                        answer(&mut s, head_only, 503, "text/plain", &retry, b"busy\n").await
                    } else {
                        let challenge = [("WWW-Authenticate", "Basic realm=\"auditwatch\"")];
                        let body = b"unauthorized\n";
                        answer(&mut s, head_only, 401, "text/plain", &challenge, body).await
                    };
                }
            }
            self.route(&mut s, &req).await
        };
        if timeout(ANSWER_DEADLINE, reply).await.is_err() {
            self.refused(HttpRefusal::Timeout, peer, None);
        }
    }

    async fn route<S: AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        req: &Request<'_>,
    ) -> std::io::Result<()> {
        let h = &self.health;
        if req.method != "GET" && req.method != "HEAD" {
            let allow = [("Allow", "GET, HEAD")];
            return respond(s, 405, "text/plain", &allow, b"method not allowed\n").await;
        }
        let head_only = req.method == "HEAD";
        match req.path {
            "/metrics" => {
                let body = h.metrics.render();
                let ctype = "text/plain; version=0.0.4; charset=utf-8";
                answer(s, head_only, 200, ctype, &[], &body).await
            }
            "/-/healthy" => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                let beat = h.heartbeat.load(Ordering::Relaxed);
                if now.saturating_sub(beat) <= STUCK.as_millis() as u64 {
                    answer(s, head_only, 200, "text/plain", &[], b"ok\n").await
                } else {
                    answer(s, head_only, 503, "text/plain", &[], b"engine stuck\n").await
                }
            }
            "/-/ready" => {
                if h.ready.load(Ordering::Relaxed) {
                    answer(s, head_only, 200, "text/plain", &[], b"ready\n").await
                } else {
                    answer(s, head_only, 503, "text/plain", &[], b"not ready\n").await
                }
            }
            _ => answer(s, head_only, 404, "text/plain", &[], b"not found\n").await,
        }
    }
}

enum Head {
    /// The peer closed before sending anything.
    Empty,
    TooLarge,
    Complete(Vec<u8>),
}

/// Read up to the blank line that ends a request head (or the peer's end of stream).
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Head> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return Ok(Head::TooLarge);
        }
    }
    Ok(if head.is_empty() {
        Head::Empty
    } else {
        Head::Complete(head)
    })
}

/// What the endpoint reads of a request head.
#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    method: &'a str,
    /// The target without its query.
    path: &'a str,
    /// The first `Authorization` header's value.
    authorization: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    fn parse(head: &'a [u8]) -> Request<'a> {
        let mut lines = head
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let first = lines.next().unwrap_or_default();
        let first = std::str::from_utf8(first).unwrap_or("");
        let mut parts = first.split_whitespace();
        let method = parts.next().unwrap_or("");
        let target = parts.next().unwrap_or("");
        let path = target.split('?').next().unwrap_or("");
        let authorization = lines.take_while(|l| !l.is_empty()).find_map(|l| {
            let colon = l.iter().position(|&b| b == b':')?;
            l[..colon]
                .eq_ignore_ascii_case(b"authorization")
                .then(|| l[colon + 1..].trim_ascii())
        });
        Request {
            method,
            path,
            authorization,
        }
    }
}

async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    code: u16,
    ctype: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    answer(stream, false, code, ctype, headers, body).await
}

/// An answer; `head_only` (a `HEAD` request): its headers, `Content-Length` of the body it
/// would have, and no body.
async fn answer<S: AsyncWrite + Unpin>(
    stream: &mut S,
    head_only: bool,
    code: u16,
    ctype: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body).await?;
    }
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_line_and_the_authorization_header_are_read() {
        let r = Request::parse(
            b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nauthorization:  Basic dTpw \r\nAuthorization: Basic other\r\n\r\n",
        );
        assert_eq!(
            r,
            Request {
                method: "GET",
                path: "/metrics",
                authorization: Some(&b"Basic dTpw"[..]),
            }
        );
        // A header after the blank line is body, not a header.
        let r = Request::parse(b"GET / HTTP/1.1\n\nAuthorization: Basic dTpw\n");
        assert_eq!(r.authorization, None);
        let r = Request::parse(b"");
        assert_eq!((r.method, r.path, r.authorization), ("", "", None));
    }

    /// Regression (issue 17): `HEAD` got the body of a `GET`.
    #[tokio::test]
    async fn head_gets_the_headers_of_get_and_no_body() {
        let mut get = Vec::new();
        answer(&mut get, false, 200, "text/plain", &[], b"metrics\n")
            .await
            .unwrap();
        let mut head = Vec::new();
        answer(&mut head, true, 200, "text/plain", &[], b"metrics\n")
            .await
            .unwrap();
        let get = String::from_utf8(get).unwrap();
        let head = String::from_utf8(head).unwrap();
        assert!(get.ends_with("\r\n\r\nmetrics\n"), "{get}");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
        assert_eq!(get.strip_suffix("metrics\n"), Some(head.as_str()));
        assert!(head.contains("Content-Length: 8\r\n"), "{head}");
    }
}
