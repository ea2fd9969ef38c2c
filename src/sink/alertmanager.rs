//! Alertmanager: every alert pushed to Alertmanager's v2 API (`POST /api/v2/alerts`), to
//! every configured Alertmanager (a cluster gets each alert on each peer, as Prometheus
//! does).
//!
//! Invariants:
//! - The labels are a pure function of the alert and the config (`alertname`, `category`,
//!   `severity`, `rule`, `tenant`, `kind`, `alert_key`, static `labels`): two detectors run
//!   as an HA pair send the same label set for the same alert, and Alertmanager merges them
//!   into one. Times and annotations may differ between the two; they do not identify.
//! - Alerts are point events: `startsAt` is the record's `time` and `endsAt` is
//!   `resolve_after_secs` past the later of `startsAt` and the moment the sink took the
//!   alert, so an alert that reaches Alertmanager late (a backlog, a file read from the
//!   start) still arrives firing instead of already resolved.
//! - Detection is never held up: the framework's bounded queue is drained continuously,
//!   alerts waiting for a retry sit in a bounded pending list (`max_pending`), and every
//!   alert ends delivered or dropped with a reason (`rejected`, `expired`, `retry_full`,
//!   `shutdown`), counted in the `auditwatch_sink_*` metrics and logged (rate-limited).
//! - 2xx: delivered; 429, 408, 5xx, connection errors and timeouts: retried with
//!   exponential backoff and jitter per Alertmanager until `retry_for_secs`; other answers:
//!   rejected (a rejected batch is retried one alert per POST first, so one bad alert
//!   cannot take its neighbours with it).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{header, Request, Uri};
use hyper_util::rt::TokioIo;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use tokio::net::TcpStream;

use crate::alert::Alert;
use crate::metrics::Metrics;
use crate::yaml::{self, Ctx, MapReader, Node};

use super::{Inbox, Msg, Running, SinkError};

const NAME: &str = "alertmanager";

/// Labels this sink sets itself; static `labels` may not use these names.
const OWN_LABELS: [&str; 7] = [
    "alertname",
    "category",
    "severity",
    "rule",
    "tenant",
    "kind",
    "alert_key",
];

/// Alertmanagers one daemon pushes to (one bit each in the pending list).
const MAX_URLS: usize = 16;
/// Longest label value / annotation sent (bytes; longer ones are cut, deterministically).
const LABEL_MAX: usize = 256;
const ANNOTATION_MAX: usize = 2048;
/// One log line per kind of trouble and Alertmanager per this long at most.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// At shutdown, what is pending gets one last attempt within this long.
const FINAL_ATTEMPT: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Alertmanager base URLs (`http(s)://host:port[/prefix]`); empty: not used.
    pub urls: Vec<String>,
    /// `endsAt` = max(`startsAt`, time taken) + this.
    pub resolve_after_secs: u64,
    /// One POST: connect, TLS, request and answer.
    pub timeout_secs: u64,
    /// Retry a failing Alertmanager this long after the alert was taken, then drop it.
    pub retry_for_secs: u64,
    /// Alerts held for delivery and retries; beyond, the oldest is dropped.
    pub max_pending: usize,
    /// Alerts per POST.
    pub batch_max: usize,
    /// Static labels added to every alert (e.g. `cluster: prod`).
    pub labels: BTreeMap<String, String>,
    /// A PEM CA bundle trusted for https besides the built-in web PKI roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            urls: Vec::new(),
            resolve_after_secs: 3600,
            timeout_secs: 10,
            retry_for_secs: 900,
            max_pending: 10_000,
            batch_max: 64,
            labels: BTreeMap::new(),
            ca_file: None,
        }
    }
}

impl Settings {
    pub fn enabled(&self) -> bool {
        !self.urls.is_empty()
    }
}

/// `alertmanager:`.
pub fn apply(ctx: &mut Ctx, node: &Node, s: &mut Settings) {
    let Some(mut m) = MapReader::new(ctx, node, "alertmanager") else {
        return;
    };
    let one = m.take("url");
    let many = m.take("urls");
    let mut set_one = false;
    if let Some(n) = one {
        match yaml::string(ctx, n, "alertmanager.url").as_deref() {
            Some("") => s.urls.clear(),
            Some(u) => match Endpoint::parse(u) {
                Ok(e) => {
                    s.urls = vec![e.base];
                    set_one = true;
                }
                Err(why) => ctx.error(n, format!("alertmanager.url {why}")),
            },
            None => {}
        }
    }
    if let Some(n) = many {
        let mut urls: Vec<String> = Vec::new();
        let mut ok = true;
        for item in yaml::list(ctx, n, "alertmanager.urls") {
            let Some(u) = yaml::string(ctx, item, "alertmanager.urls") else {
                ok = false;
                continue;
            };
            match Endpoint::parse(&u) {
                Ok(e) if urls.contains(&e.base) => {
                    ok = false;
                    ctx.error(item, "alertmanager.urls lists this Alertmanager twice");
                }
                Ok(e) => urls.push(e.base),
                Err(why) => {
                    ok = false;
                    ctx.error(item, format!("alertmanager.urls: each {why}"));
                }
            }
        }
        if urls.len() > MAX_URLS {
            ctx.error(
                n,
                format!("alertmanager.urls may list at most {MAX_URLS} Alertmanagers"),
            );
        } else if set_one && !urls.is_empty() {
            ctx.error(n, "set alertmanager.url or alertmanager.urls, not both");
        } else if ok && !set_one {
            s.urls = urls;
        }
    }
    let mut max_pending = s.max_pending as u64;
    let mut batch_max = s.batch_max as u64;
    for (key, max, out) in [
        ("resolve_after_secs", 30 * 86_400, &mut s.resolve_after_secs),
        ("timeout_secs", 300, &mut s.timeout_secs),
        ("retry_for_secs", 7 * 86_400, &mut s.retry_for_secs),
        ("max_pending", 1_000_000, &mut max_pending),
        ("batch_max", 10_000, &mut batch_max),
    ] {
        if let Some(n) = m.take(key) {
            if let Some(v) = yaml::positive_at_most(ctx, n, &format!("alertmanager.{key}"), max) {
                *out = v;
            }
        }
    }
    s.max_pending = max_pending as usize;
    s.batch_max = batch_max as usize;
    if let Some(n) = m.take("labels") {
        if let Some(labels) = static_labels(ctx, n) {
            s.labels = labels;
        }
    }
    if let Some(n) = m.take("ca_file") {
        if let Some(p) = yaml::string(ctx, n, "alertmanager.ca_file") {
            s.ca_file = (!p.is_empty()).then(|| PathBuf::from(p));
        }
    }
    m.finish(ctx, "alertmanager");
}

/// `alertmanager.labels`: a mapping of label names to non-empty strings.
fn static_labels(ctx: &mut Ctx, node: &Node) -> Option<BTreeMap<String, String>> {
    let m = MapReader::new(ctx, node, "alertmanager.labels")?;
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, name, v) in m.keys() {
        if !label_name_ok(name) {
            ok = false;
            ctx.error(
                k,
                format!("alertmanager.labels: `{name}` is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"),
            );
            continue;
        }
        if OWN_LABELS.contains(&name) {
            ok = false;
            ctx.error(
                k,
                format!(
                    "alertmanager.labels: `{name}` is set by auditwatch itself; reserved: {}",
                    OWN_LABELS.join(", ")
                ),
            );
            continue;
        }
        match yaml::string(ctx, v, &format!("alertmanager.labels.{name}")) {
            Some(s) if s.is_empty() => {
                ok = false;
                ctx.error(
                    v,
                    format!("alertmanager.labels.{name} must not be empty (Alertmanager drops empty labels)"),
                );
            }
            Some(s) if s.len() > LABEL_MAX => {
                ok = false;
                ctx.error(
                    v,
                    format!("alertmanager.labels.{name} must be at most {LABEL_MAX} bytes"),
                );
            }
            Some(s) => {
                out.insert(name.to_string(), s);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn label_name_ok(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !n.starts_with("__")
}

/// One Alertmanager: where to connect and what to send.
#[derive(Clone, Debug)]
struct Endpoint {
    /// The normalised base URL (no trailing `/`), for config and logs.
    base: String,
    tls: bool,
    /// Host to resolve and to verify the certificate for (IPv6 without brackets).
    host: String,
    port: u16,
    /// The `Host` header.
    authority: String,
    /// `<prefix>/api/v2/alerts`.
    path: String,
}

impl Endpoint {
    /// Parse a base URL; the error completes "alertmanager.url ..." and never repeats the
    /// URL (it could carry a password).
    fn parse(url: &str) -> Result<Endpoint, String> {
        let uri: Uri = url
            .parse()
            .map_err(|_| "must be an http:// or https:// URL".to_string())?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err("must start with http:// or https://".into()),
        };
        let auth = uri
            .authority()
            .ok_or_else(|| "must name a host".to_string())?;
        if auth.as_str().contains('@') {
            return Err("must not carry credentials (user:password@)".into());
        }
        let host = auth.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("must name a host".into());
        }
        if uri.query().is_some() {
            return Err("must not have a query string".into());
        }
        let prefix = uri.path().trim_end_matches('/');
        if prefix.ends_with("/api/v2/alerts") || prefix.ends_with("/api/v2") {
            return Err(
                "must be Alertmanager's base URL (e.g. http://127.0.0.1:9093), without /api/v2"
                    .into(),
            );
        }
        let port = auth.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Endpoint {
            base: format!(
                "{}://{}{prefix}",
                if tls { "https" } else { "http" },
                auth.as_str()
            ),
            tls,
            host: host.to_string(),
            port,
            authority: auth.as_str().to_string(),
            path: format!("{prefix}/api/v2/alerts"),
        })
    }
}

// ---- the payload ----

/// Alertmanager's `alertname` for a category: `Auditwatch` + the category in CamelCase
/// (`cross_tenant_read` → `AuditwatchCrossTenantRead`).
pub fn alertname(category: &str) -> String {
    let mut out = String::from("Auditwatch");
    for word in category.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut c = word.chars();
        if let Some(f) = c.next() {
            out.push(f.to_ascii_uppercase());
            out.extend(c);
        }
    }
    out
}

/// `s` cut to at most `max` bytes on a character boundary, marked when cut.
fn cap(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// When the alert happened: the record's `time`, else its event time, else `taken`.
fn starts_at(a: &Alert, taken: Timestamp) -> Timestamp {
    a.time
        .parse::<Timestamp>()
        .ok()
        .or_else(|| {
            (a.time_nanos != 0)
                .then(|| Timestamp::from_nanosecond(i128::from(a.time_nanos)).ok())
                .flatten()
        })
        .unwrap_or(taken)
}

/// The label set of an alert: a function of the alert and the static labels only.
pub fn labels(a: &Alert, s: &Settings) -> BTreeMap<String, String> {
    let mut l = s.labels.clone();
    let mut put = |k: &str, v: &str| {
        if !v.is_empty() {
            l.insert(k.to_string(), cap(v, LABEL_MAX));
        }
    };
    put("alertname", &alertname(&a.category));
    put("category", &a.category);
    put("severity", a.severity.as_str());
    put("rule", &a.rule);
    if let Some(t) = &a.tenant {
        put("tenant", t);
    }
    if let Some(k) = a.evidence.get("kind").and_then(|k| k.as_str()) {
        put("kind", k);
    }
    put("alert_key", &super::alert_key(a));
    l
}

/// One alert as Alertmanager's v2 API takes it (`postableAlert`). `taken` is when the sink
/// took it off its queue (the floor of `endsAt`'s base).
pub fn payload(a: &Alert, s: &Settings, runbook_template: &str, taken: Timestamp) -> Value {
    let advice = super::advice::for_category(&a.category);
    let mut ann: BTreeMap<&str, String> = BTreeMap::new();
    let mut put = |k: &'static str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            ann.insert(k, cap(v, ANNOTATION_MAX));
        }
    };
    put("summary", Some(&a.summary));
    put(
        "description",
        Some(&format!("{}\n\nWhat to do: {}", advice.why, advice.todo)),
    );
    put(
        "runbook_url",
        super::runbook_url(runbook_template, a).as_deref(),
    );
    put("time", Some(&a.time));
    put("target_tenant", a.target_tenant.as_deref());
    put("request_id", a.request_id.as_deref());
    put("path", a.path.as_deref());
    put("operation", a.operation.as_deref());
    put("outcome", a.outcome.as_deref());
    put("actor", a.actor.display_name.as_deref());
    put("entity_id", a.actor.entity_id.as_deref());
    put("auth_method", a.actor.auth_method.as_deref());
    put("role", a.actor.role.as_deref());
    put("service_account", a.actor.service_account.as_deref());
    put("namespace", a.actor.namespace.as_deref());
    put("remote_address", a.actor.remote_address.as_deref());
    if !a.evidence.is_empty() {
        put(
            "evidence",
            Some(&Value::Object(a.evidence.clone()).to_string()),
        );
    }
    let starts = starts_at(a, taken);
    let base = starts.max(taken);
    let resolve = SignedDuration::from_secs(s.resolve_after_secs as i64);
    let ends = base.checked_add(resolve).unwrap_or(base);
    json!({
        "labels": labels(a, s),
        "annotations": ann,
        "startsAt": starts.to_string(),
        "endsAt": ends.to_string(),
    })
}

// ---- what waits for delivery ----

/// An alert on its way to every Alertmanager.
struct Entry {
    seq: u64,
    /// The serialised `postableAlert`.
    json: Box<str>,
    /// For log lines: rule and alert key.
    rule: Box<str>,
    key: Box<str>,
    taken: Instant,
    /// One bit per Alertmanager still to accept it.
    todo: u32,
    /// One bit per Alertmanager that rejected a batch holding it: send it alone there.
    solo: u32,
    accepted: bool,
    rejected: bool,
}

/// How an entry left the pending list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Accepted by every Alertmanager (or by some, the others having rejected it).
    Delivered,
    /// Accepted by some Alertmanagers; the others never answered within the retry window.
    Partly,
    Rejected,
    Expired,
    Shutdown,
    RetryFull,
}

/// The answer to one POST.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Accepted,
    /// A final "no" (4xx other than 408/429, 3xx): status and a body excerpt.
    Rejected(String),
    /// Worth retrying (5xx, 408, 429, connection errors, timeouts).
    Retry(String),
}

/// Alerts waiting for delivery, oldest first, bounded.
struct Pending {
    entries: VecDeque<Entry>,
    all: u32,
    next_seq: u64,
    cap: usize,
    batch_max: usize,
    retry_for: Duration,
}

impl Pending {
    fn new(targets: usize, cap: usize, batch_max: usize, retry_for: Duration) -> Pending {
        Pending {
            entries: VecDeque::new(),
            all: if targets >= 32 {
                u32::MAX
            } else {
                (1u32 << targets) - 1
            },
            next_seq: 0,
            cap: cap.max(1),
            batch_max: batch_max.max(1),
            retry_for,
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Add an alert; when full, the oldest makes room and is returned.
    fn push(&mut self, json: String, rule: &str, key: String, now: Instant) -> Option<Entry> {
        let evicted = if self.entries.len() >= self.cap {
            self.entries.pop_front()
        } else {
            None
        };
        self.entries.push_back(Entry {
            seq: self.next_seq,
            json: json.into(),
            rule: rule.into(),
            key: key.into(),
            taken: now,
            todo: self.all,
            solo: 0,
            accepted: false,
            rejected: false,
        });
        self.next_seq += 1;
        evicted
    }

    fn has_work(&self, t: usize) -> bool {
        self.entries.iter().any(|e| e.todo & (1 << t) != 0)
    }

    /// The next batch for Alertmanager `t`: sequence numbers and the JSON array body.
    fn batch(&self, t: usize) -> Option<(Vec<u64>, Bytes)> {
        let bit = 1u32 << t;
        let mut seqs = Vec::new();
        let mut body = String::from("[");
        for e in self.entries.iter().filter(|e| e.todo & bit != 0) {
            let solo = e.solo & bit != 0;
            if solo && !seqs.is_empty() {
                continue;
            }
            if !seqs.is_empty() {
                body.push(',');
            }
            body.push_str(&e.json);
            seqs.push(e.seq);
            if solo || seqs.len() >= self.batch_max {
                break;
            }
        }
        body.push(']');
        (!seqs.is_empty()).then(|| (seqs, Bytes::from(body)))
    }

    /// Record Alertmanager `t`'s answer to the batch `seqs`.
    fn answer(&mut self, t: usize, seqs: &[u64], o: &Outcome) {
        let bit = 1u32 << t;
        let split = seqs.len() > 1;
        for e in self.entries.iter_mut().filter(|e| seqs.contains(&e.seq)) {
            match o {
                Outcome::Accepted => {
                    e.todo &= !bit;
                    e.accepted = true;
                }
                // Retry a rejected batch one alert per POST: only the bad one is dropped.
                Outcome::Rejected(_) if split => e.solo |= bit,
                Outcome::Rejected(_) => {
                    e.todo &= !bit;
                    e.rejected = true;
                }
                Outcome::Retry(_) => {}
            }
        }
    }

    /// Remove what is settled: done everywhere, or past the retry window (or everything,
    /// at shutdown).
    fn reap(&mut self, now: Instant, shutdown: bool) -> Vec<(Entry, Fate)> {
        let mut out = Vec::new();
        let mut keep = VecDeque::with_capacity(self.entries.len());
        for e in self.entries.drain(..) {
            let fate = if e.todo == 0 {
                Some(if e.accepted {
                    Fate::Delivered
                } else {
                    Fate::Rejected
                })
            } else if shutdown || now.duration_since(e.taken) >= self.retry_for {
                Some(if e.accepted {
                    Fate::Partly
                } else if shutdown {
                    Fate::Shutdown
                } else {
                    Fate::Expired
                })
            } else {
                None
            };
            match fate {
                Some(f) => out.push((e, f)),
                None => keep.push_back(e),
            }
        }
        self.entries = keep;
        out
    }
}

// ---- HTTP ----

/// Posts JSON to an Alertmanager; TLS when the URL says https.
#[derive(Clone)]
struct Client {
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Client {
    fn new(s: &Settings, endpoints: &[Endpoint]) -> Result<Client, String> {
        if !endpoints.iter().any(|e| e.tls) {
            return Ok(Client { tls: None });
        }
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(p) = &s.ca_file {
            let shown = p.display();
            let mut added = 0;
            let certs = CertificateDer::pem_file_iter(p)
                .map_err(|e| format!("cannot read ca_file {shown}: {e}"))?;
            for c in certs {
                let c = c.map_err(|e| format!("ca_file {shown}: {e}"))?;
                roots.add(c).map_err(|e| format!("ca_file {shown}: {e}"))?;
                added += 1;
            }
            if added == 0 {
                return Err(format!("ca_file {shown} holds no PEM certificate"));
            }
        }
        // Both ring and aws-lc-rs are compiled in (other crates want them): name one.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Client {
            tls: Some(tokio_rustls::TlsConnector::from(Arc::new(cfg))),
        })
    }

    /// One POST of `body` to `ep`, within `timeout`.
    async fn post(self, ep: Arc<Endpoint>, body: Bytes, timeout: Duration) -> Outcome {
        match tokio::time::timeout(timeout, self.exchange(&ep, body)).await {
            Ok(Ok(o)) => o,
            Ok(Err(why)) => Outcome::Retry(why),
            Err(_) => Outcome::Retry(format!("no answer within {}ms", timeout.as_millis())),
        }
    }

    async fn exchange(&self, ep: &Endpoint, body: Bytes) -> Result<Outcome, String> {
        let tcp = TcpStream::connect((ep.host.as_str(), ep.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        match (&self.tls, ep.tls) {
            (Some(tls), true) => {
                let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
                    .map_err(|e| format!("tls server name: {e}"))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("tls: {}", chain(&e)))?;
                request(TokioIo::new(stream), ep, body).await
            }
            (None, true) => Err("https without a tls setup".into()),
            _ => request(TokioIo::new(tcp), ep, body).await,
        }
    }
}

async fn request<I>(io: I, ep: &Endpoint, body: Bytes) -> Result<Outcome, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("http: {}", chain(&e)))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::post(ep.path.as_str())
        .header(header::HOST, ep.authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            concat!("auditwatch/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(body))
        .map_err(|e| format!("request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("http: {}", chain(&e)))?;
    let status = resp.status();
    // The answer's text, for the log: bounded, and only what a person needs.
    let text = match Limited::new(resp.into_body(), 8192).collect().await {
        Ok(b) => excerpt(&b.to_bytes()),
        Err(_) => String::new(),
    };
    let code = status.as_u16();
    let what = if text.is_empty() {
        format!("HTTP {code}")
    } else {
        format!("HTTP {code}: {text}")
    };
    Ok(if status.is_success() {
        Outcome::Accepted
    } else if status.is_server_error() || code == 429 || code == 408 {
        Outcome::Retry(what)
    } else {
        Outcome::Rejected(what)
    })
}

/// The first 200 characters of a body on one line, printable only.
fn excerpt(b: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(b)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    s.trim().to_string()
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.ends_with(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

// ---- the sink thread ----

/// Parse the URLs, set up TLS (a bad `ca_file` fails the start) and run the sink thread.
pub fn start(all: &super::Settings, metrics: Arc<Metrics>) -> Result<Running, SinkError> {
    let s = all.alertmanager.clone();
    let setup = |message: String| SinkError::Setup {
        sink: NAME,
        message,
    };
    let endpoints = s
        .urls
        .iter()
        .map(|u| Endpoint::parse(u).map_err(|why| setup(format!("the url {why}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if endpoints.is_empty() || endpoints.len() > MAX_URLS {
        return Err(setup(format!("1 to {MAX_URLS} urls are needed")));
    }
    let client = Client::new(&s, &endpoints).map_err(setup)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| setup(format!("cannot start its runtime: {e}")))?;
    for reason in ["rejected", "expired", "retry_full", "shutdown"] {
        metrics.sink_dropped.with_label_values(&[NAME, reason]);
    }
    let (tx, inbox) = super::queue(all.queue_alerts);
    let runbook = all.runbook_url.clone();
    let thread = std::thread::Builder::new()
        .name("auditwatch-alertmanager".into())
        .spawn(move || {
            let mut sink = Sink::new(s, runbook, endpoints, client, metrics);
            sink.run(&rt, &inbox);
        })
        .map_err(|e| setup(e.to_string()))?;
    for ep in &all.alertmanager.urls {
        tracing::info!(url = %ep, "pushing alerts to alertmanager");
    }
    Ok(Running {
        name: NAME,
        tx,
        thread,
    })
}

/// Per Alertmanager: when it may be tried again.
struct Target {
    ep: Arc<Endpoint>,
    next_try: Instant,
    failures: u32,
}

struct Sink {
    s: Settings,
    runbook: String,
    targets: Vec<Target>,
    client: Client,
    pending: Pending,
    metrics: Arc<Metrics>,
    log: LogLimit,
    rng: u64,
}

impl Sink {
    fn new(
        s: Settings,
        runbook: String,
        endpoints: Vec<Endpoint>,
        client: Client,
        metrics: Arc<Metrics>,
    ) -> Sink {
        let now = Instant::now();
        let pending = Pending::new(
            endpoints.len(),
            s.max_pending,
            s.batch_max,
            Duration::from_secs(s.retry_for_secs),
        );
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        Sink {
            s,
            runbook,
            targets: endpoints
                .into_iter()
                .map(|ep| Target {
                    ep: Arc::new(ep),
                    next_try: now,
                    failures: 0,
                })
                .collect(),
            client,
            pending,
            metrics,
            log: LogLimit::default(),
            rng: seed | 1,
        }
    }

    fn run(&mut self, rt: &tokio::runtime::Runtime, inbox: &Inbox) {
        loop {
            let wait = self.next_due(Instant::now());
            match inbox.recv_timeout(wait) {
                Ok(msg) => {
                    self.take(msg);
                    // Whatever else is queued joins the same round (and the same POSTs);
                    // past `max_pending` the oldest make room (`retry_full`).
                    for _ in 0..self.pending.cap {
                        match inbox.try_recv() {
                            Ok(m) => self.take(m),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.finish(rt);
                    self.set_backlog(inbox);
                    return;
                }
            }
            self.send_due(rt, Instant::now());
            self.settle(Instant::now(), false);
            self.set_backlog(inbox);
        }
    }

    fn set_backlog(&self, inbox: &Inbox) {
        self.metrics
            .sink_backlog
            .with_label_values(&[NAME])
            .set((inbox.queued() + self.pending.len() as u64) as i64);
    }

    /// How long the loop may wait for the next alert before something is due.
    fn next_due(&self, now: Instant) -> Duration {
        let idle = Duration::from_secs(1);
        self.targets
            .iter()
            .enumerate()
            .filter(|(i, _)| self.pending.has_work(*i))
            .map(|(_, t)| t.next_try.saturating_duration_since(now))
            .min()
            .map_or(idle, |d| d.min(idle))
    }

    fn take(&mut self, msg: Msg) {
        let Msg::Alert(a) = msg else { return };
        let body = payload(&a, &self.s, &self.runbook, Timestamp::now()).to_string();
        let key = super::alert_key(&a);
        if let Some(old) = self.pending.push(body, &a.rule, key, Instant::now()) {
            self.account(old, Fate::RetryFull);
        }
    }

    /// One POST to every Alertmanager that is due and has work, concurrently.
    fn send_due(&mut self, rt: &tokio::runtime::Runtime, now: Instant) {
        let timeout = Duration::from_secs(self.s.timeout_secs);
        let jobs: Vec<(usize, Vec<u64>, Bytes)> = (0..self.targets.len())
            .filter(|&i| self.targets[i].next_try <= now)
            .filter_map(|i| self.pending.batch(i).map(|(seqs, body)| (i, seqs, body)))
            .collect();
        if jobs.is_empty() {
            return;
        }
        let results = self.post_all(rt, &jobs, timeout);
        let now = Instant::now();
        for ((i, seqs, _), o) in jobs.iter().zip(results) {
            self.pending.answer(*i, seqs, &o);
            self.after(*i, seqs.len(), &o, now);
        }
    }

    fn post_all(
        &self,
        rt: &tokio::runtime::Runtime,
        jobs: &[(usize, Vec<u64>, Bytes)],
        timeout: Duration,
    ) -> Vec<Outcome> {
        let calls: Vec<_> = jobs
            .iter()
            .map(|(i, _, body)| {
                self.client
                    .clone()
                    .post(self.targets[*i].ep.clone(), body.clone(), timeout)
            })
            .collect();
        rt.block_on(async move {
            let handles: Vec<_> = calls.into_iter().map(tokio::spawn).collect();
            let mut out = Vec::with_capacity(handles.len());
            for h in handles {
                out.push(
                    h.await
                        .unwrap_or_else(|e| Outcome::Retry(format!("post task failed: {e}"))),
                );
            }
            out
        })
    }

    /// Metrics, backoff and logs after Alertmanager `i` answered a batch of `n`.
    fn after(&mut self, i: usize, n: usize, o: &Outcome, now: Instant) {
        let url = self.targets[i].ep.base.clone();
        match o {
            Outcome::Accepted => {
                let t = &mut self.targets[i];
                if t.failures > 0 {
                    tracing::info!(url = %url, failed_attempts = t.failures, "alertmanager accepts alerts again");
                }
                t.failures = 0;
                t.next_try = now;
            }
            Outcome::Rejected(why) => {
                self.metrics.sink_failures.with_label_values(&[NAME]).inc();
                if let Some(more) = self.log.allow(i, "rejected", now) {
                    tracing::error!(url = %url, answer = %why, alerts = n, similar_lines_suppressed = more,
                        "alertmanager rejected alerts; a rejected batch is retried alert by alert, a rejected single alert is dropped");
                }
            }
            Outcome::Retry(why) => {
                self.metrics.sink_failures.with_label_values(&[NAME]).inc();
                let t = &mut self.targets[i];
                t.failures = t.failures.saturating_add(1);
                let wait = backoff(t.failures, next_rand(&mut self.rng));
                t.next_try = now + wait;
                let failures = t.failures;
                if let Some(more) = self.log.allow(i, "retry", now) {
                    tracing::warn!(url = %url, error = %why, alerts = n, consecutive_failures = failures,
                        retry_in_ms = wait.as_millis() as u64, similar_lines_suppressed = more,
                        "cannot push alerts to alertmanager; retrying");
                }
            }
        }
    }

    /// Count and log what left the pending list.
    fn settle(&mut self, now: Instant, shutdown: bool) {
        for (e, fate) in self.pending.reap(now, shutdown) {
            self.account(e, fate);
        }
    }

    fn account(&mut self, e: Entry, fate: Fate) {
        let m = &self.metrics;
        let (reason, level_error) = match fate {
            Fate::Delivered => {
                m.sink_delivered.with_label_values(&[NAME]).inc();
                return;
            }
            Fate::Partly => {
                m.sink_delivered.with_label_values(&[NAME]).inc();
                ("partly", false)
            }
            Fate::Rejected => ("rejected", true),
            Fate::Expired => ("expired", true),
            Fate::Shutdown => ("shutdown", true),
            Fate::RetryFull => ("retry_full", true),
        };
        if level_error {
            m.sink_dropped.with_label_values(&[NAME, reason]).inc();
        }
        let Some(more) = self.log.allow(usize::MAX, reason, Instant::now()) else {
            return;
        };
        let waited_secs = e.taken.elapsed().as_secs();
        if level_error {
            tracing::error!(reason, rule = %e.rule, alert_key = %e.key, waited_secs, similar_lines_suppressed = more,
                "alert dropped for alertmanager; see auditwatch_sink_dropped_total");
        } else {
            tracing::warn!(rule = %e.rule, alert_key = %e.key, waited_secs, similar_lines_suppressed = more,
                "alert reached only some of the alertmanagers within retry_for_secs");
        }
    }

    /// The queue is closed: one last attempt for what is pending, then drop the rest.
    fn finish(&mut self, rt: &tokio::runtime::Runtime) {
        let deadline = Instant::now() + FINAL_ATTEMPT;
        let mut given_up = vec![false; self.targets.len()];
        loop {
            self.settle(Instant::now(), false);
            let now = Instant::now();
            if self.pending.len() == 0 || now >= deadline {
                break;
            }
            let timeout = (deadline - now).min(Duration::from_secs(self.s.timeout_secs));
            let jobs: Vec<(usize, Vec<u64>, Bytes)> = (0..self.targets.len())
                .filter(|&i| !given_up[i])
                .filter_map(|i| self.pending.batch(i).map(|(seqs, body)| (i, seqs, body)))
                .collect();
            if jobs.is_empty() {
                break;
            }
            let results = self.post_all(rt, &jobs, timeout);
            let now = Instant::now();
            for ((i, seqs, _), o) in jobs.iter().zip(results) {
                self.pending.answer(*i, seqs, &o);
                if let Outcome::Retry(_) = o {
                    given_up[*i] = true;
                }
                self.after(*i, seqs.len(), &o, now);
            }
        }
        self.settle(Instant::now(), true);
    }
}

/// Exponential backoff (0.5 s doubling, at most 15 s) with jitter: 50-100 % of the step.
fn backoff(failures: u32, rand: u64) -> Duration {
    let step_ms = (500u64 << failures.saturating_sub(1).min(5)).min(15_000);
    let frac = (rand % 1000) as f64 / 1000.0;
    Duration::from_millis((step_ms as f64 * (0.5 + 0.5 * frac)) as u64)
}

/// xorshift64: jitter only, not security.
fn next_rand(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// At most one log line per (Alertmanager, kind) per [`LOG_EVERY`], counting the rest.
#[derive(Default)]
struct LogLimit {
    last: HashMap<(usize, &'static str), (Instant, u64)>,
}

impl LogLimit {
    /// `Some(lines suppressed since the last one)` when a line may be written now.
    fn allow(&mut self, target: usize, kind: &'static str, now: Instant) -> Option<u64> {
        match self.last.get_mut(&(target, kind)) {
            Some((at, skipped)) if now.duration_since(*at) < LOG_EVERY => {
                *skipped += 1;
                None
            }
            Some((at, skipped)) => {
                let more = *skipped;
                *at = now;
                *skipped = 0;
                Some(more)
            }
            None => {
                self.last.insert((target, kind), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Actor, Severity};

    fn alert() -> Alert {
        let mut evidence = serde_json::Map::new();
        evidence.insert("kind".into(), json!("stale"));
        evidence.insert("observed_secs".into(), json!(7200));
        Alert {
            time: "2026-03-02T14:07:00.123456Z".into(),
            rule: "cross-tenant-kv-read".into(),
            category: "cross_tenant_read".into(),
            severity: Severity::Critical,
            summary: "acme identity read secret/data/lumen/db (allowed)".into(),
            tenant: Some("acme".into()),
            target_tenant: Some("lumen".into()),
            request_id: Some("c915b587".into()),
            path: Some("secret/data/lumen/db".into()),
            operation: Some("read".into()),
            outcome: Some("allowed".into()),
            actor: Actor {
                display_name: Some("kubernetes-acme-eso".into()),
                entity_id: Some("1f2e3d4c".into()),
                auth_method: Some("kubernetes".into()),
                accessor: Some("hmac-sha256:0c2e4a6b8d0f".into()),
                ..Actor::default()
            },
            evidence,
            time_nanos: 1_772_460_420_123_456_000,
        }
    }

    fn settings() -> Settings {
        Settings {
            urls: vec!["http://127.0.0.1:9093".into()],
            labels: [("cluster".to_string(), "prod".to_string())].into(),
            ..Settings::default()
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn labels_are_a_stable_function_of_the_alert() {
        let a = alert();
        let s = settings();
        let l = labels(&a, &s);
        let want: BTreeMap<String, String> = [
            ("alertname", "AuditwatchCrossTenantRead"),
            ("category", "cross_tenant_read"),
            ("severity", "critical"),
            ("rule", "cross-tenant-kv-read"),
            ("tenant", "acme"),
            ("kind", "stale"),
            ("alert_key", super::super::alert_key(&a).as_str()),
            ("cluster", "prod"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(l, want);
        // What differs between two detectors of an HA pair does not touch the labels.
        let p1 = payload(&a, &s, "", ts("2026-11-22T10:00:00Z"));
        let mut b = a.clone();
        b.summary = "another wording".into();
        let p2 = payload(
            &b,
            &s,
            "https://wiki/{category}",
            ts("2026-11-22T10:00:07Z"),
        );
        assert_eq!(p1["labels"], p2["labels"]);
        // Distinct alerts stay distinct.
        b.request_id = Some("another-request".into());
        assert_ne!(labels(&a, &s)["alert_key"], labels(&b, &s)["alert_key"]);
        // No tenant: no label (an empty matcher in Alertmanager matches it).
        b.tenant = None;
        assert!(!labels(&b, &s).contains_key("tenant"));
    }

    #[test]
    fn payload_carries_advice_runbook_and_times_but_no_accessor() {
        let a = alert();
        let s = settings();
        let p = payload(
            &a,
            &s,
            "https://wiki.example/aw/{category}",
            ts("2026-11-22T10:00:00Z"),
        );
        let ann = &p["annotations"];
        assert_eq!(ann["summary"], json!(a.summary));
        assert!(ann["description"]
            .as_str()
            .unwrap()
            .contains("What to do: Check the actor's policies"));
        assert_eq!(
            ann["runbook_url"],
            json!("https://wiki.example/aw/cross_tenant_read")
        );
        assert_eq!(ann["path"], json!("secret/data/lumen/db"));
        assert_eq!(ann["actor"], json!("kubernetes-acme-eso"));
        assert_eq!(ann["request_id"], json!("c915b587"));
        assert_eq!(ann["target_tenant"], json!("lumen"));
        assert!(ann["evidence"].as_str().unwrap().contains("observed_secs"));
        // The HMAC'd accessor is useless to a responder and is left out.
        assert!(!p.to_string().contains("hmac-sha256"), "{p}");
        assert_eq!(p["startsAt"], json!("2026-03-02T14:07:00.123456Z"));
        // An old alert is pushed firing: endsAt counts from when it was taken.
        assert_eq!(p["endsAt"], json!("2026-11-22T11:00:00Z"));
        // A fresh one: from its own time.
        let p = payload(&a, &s, "", ts("2026-03-02T14:06:00Z"));
        assert_eq!(p["endsAt"], json!("2026-03-02T15:07:00.123456Z"));
        assert!(p["annotations"].get("runbook_url").is_none());
        // What Alertmanager parses: every field of a postableAlert, nothing else.
        let keys: Vec<_> = p.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["annotations", "endsAt", "labels", "startsAt"]);
    }

    #[test]
    fn long_values_are_cut_on_a_char_boundary() {
        let mut a = alert();
        a.tenant = Some("é".repeat(400));
        a.path = Some("p".repeat(5000));
        let p = payload(&a, &settings(), "", ts("2026-11-22T10:00:00Z"));
        let t = p["labels"]["tenant"].as_str().unwrap();
        assert!(t.len() <= LABEL_MAX && t.ends_with('…'), "{t}");
        assert!(p["annotations"]["path"].as_str().unwrap().len() <= ANNOTATION_MAX);
        // Cutting is deterministic, so the label stays stable.
        assert_eq!(labels(&a, &settings()), labels(&a, &settings()));
    }

    #[test]
    fn alertnames_come_from_the_category() {
        assert_eq!(alertname("eso_cadence"), "AuditwatchEsoCadence");
        assert_eq!(alertname("test-read.x"), "AuditwatchTestReadX");
        assert_eq!(alertname(""), "Auditwatch");
    }

    fn pending(targets: usize, cap: usize, batch: usize) -> Pending {
        Pending::new(targets, cap, batch, Duration::from_secs(60))
    }

    fn push(p: &mut Pending, n: u64, now: Instant) {
        assert!(p
            .push(format!("{{\"n\":{n}}}"), "r", n.to_string(), now)
            .is_none());
    }

    #[test]
    fn batches_split_after_a_rejection_and_settle_per_target() {
        let now = Instant::now();
        let mut p = pending(2, 100, 3);
        for n in 0..4 {
            push(&mut p, n, now);
        }
        let (seqs, body) = p.batch(0).unwrap();
        assert_eq!(seqs, [0, 1, 2]);
        assert_eq!(&body[..], br#"[{"n":0},{"n":1},{"n":2}]"#);
        // Target 0 rejects the batch: its alerts go one per POST there.
        p.answer(0, &seqs, &Outcome::Rejected("HTTP 400".into()));
        assert_eq!(p.batch(0).unwrap().0, [0]);
        p.answer(0, &[0], &Outcome::Accepted);
        assert_eq!(p.batch(0).unwrap().0, [1]);
        p.answer(0, &[1], &Outcome::Rejected("HTTP 400".into()));
        assert_eq!(p.batch(0).unwrap().0, [2]);
        p.answer(0, &[2], &Outcome::Accepted);
        assert_eq!(p.batch(0).unwrap().0, [3]);
        p.answer(0, &[3], &Outcome::Retry("HTTP 503".into()));
        assert_eq!(p.batch(0).unwrap().0, [3]);
        p.answer(0, &[3], &Outcome::Accepted);
        assert!(!p.has_work(0));
        // Target 1 still owes everything: nothing settled yet.
        assert!(p.reap(now, false).is_empty());
        let (seqs, _) = p.batch(1).unwrap();
        p.answer(1, &seqs, &Outcome::Accepted);
        let (seqs, _) = p.batch(1).unwrap();
        assert_eq!(seqs, [3]);
        p.answer(1, &seqs, &Outcome::Accepted);
        let fates: Vec<_> = p
            .reap(now, false)
            .into_iter()
            .map(|(e, f)| (e.seq, f))
            .collect();
        // #1 was rejected by one Alertmanager and accepted by the other: delivered.
        assert_eq!(
            fates,
            [
                (0, Fate::Delivered),
                (1, Fate::Delivered),
                (2, Fate::Delivered),
                (3, Fate::Delivered)
            ]
        );
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn rejected_everywhere_expired_shutdown_and_full_are_drops() {
        let t0 = Instant::now();
        let mut p = pending(1, 3, 10);
        for n in 0..3 {
            push(&mut p, n, t0);
        }
        p.answer(0, &[1], &Outcome::Rejected("HTTP 400".into()));
        // Full: the oldest makes room.
        let old = p.push("{}".into(), "r", "k".into(), t0 + Duration::from_secs(30));
        assert_eq!(old.map(|e| e.seq), Some(0));
        let fates: Vec<_> = p
            .reap(t0 + Duration::from_secs(61), false)
            .into_iter()
            .map(|(e, f)| (e.seq, f))
            .collect();
        assert_eq!(fates, [(1, Fate::Rejected), (2, Fate::Expired)]);
        let fates: Vec<_> = p
            .reap(t0 + Duration::from_secs(62), true)
            .into_iter()
            .map(|(e, f)| (e.seq, f))
            .collect();
        assert_eq!(fates, [(3, Fate::Shutdown)]);
    }

    #[test]
    fn partly_delivered_when_one_alertmanager_stays_down() {
        let t0 = Instant::now();
        let mut p = pending(2, 10, 10);
        push(&mut p, 0, t0);
        p.answer(0, &[0], &Outcome::Accepted);
        p.answer(1, &[0], &Outcome::Retry("connect: refused".into()));
        assert!(p.reap(t0 + Duration::from_secs(59), false).is_empty());
        let f: Vec<_> = p
            .reap(t0 + Duration::from_secs(60), false)
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(f, [Fate::Partly]);
    }

    #[test]
    fn backoff_grows_to_a_cap_with_jitter() {
        assert!(backoff(1, 0) >= Duration::from_millis(250));
        assert!(backoff(1, 999) < Duration::from_millis(500));
        assert!(backoff(3, 500) > backoff(2, 500));
        assert!(backoff(40, 999) <= Duration::from_secs(15));
        assert!(backoff(40, 0) >= Duration::from_millis(7500));
        let mut r = 1;
        let (a, b) = (next_rand(&mut r), next_rand(&mut r));
        assert_ne!(a, b);
    }

    #[test]
    fn log_lines_are_rate_limited_and_count_what_they_skip() {
        let t0 = Instant::now();
        let mut l = LogLimit::default();
        assert_eq!(l.allow(0, "retry", t0), Some(0));
        assert_eq!(l.allow(0, "retry", t0 + Duration::from_secs(1)), None);
        assert_eq!(l.allow(1, "retry", t0 + Duration::from_secs(1)), Some(0));
        assert_eq!(l.allow(0, "retry", t0 + Duration::from_secs(2)), None);
        assert_eq!(l.allow(0, "retry", t0 + Duration::from_secs(11)), Some(2));
    }

    #[test]
    fn urls_are_checked_and_normalised() {
        let e = Endpoint::parse("http://127.0.0.1:9093/").unwrap();
        assert_eq!(
            (e.base.as_str(), e.path.as_str()),
            ("http://127.0.0.1:9093", "/api/v2/alerts")
        );
        let e = Endpoint::parse("https://am.example/alertmanager").unwrap();
        assert!(e.tls);
        assert_eq!((e.host.as_str(), e.port), ("am.example", 443));
        assert_eq!(e.path, "/alertmanager/api/v2/alerts");
        let e = Endpoint::parse("http://[::1]:9093").unwrap();
        assert_eq!(
            (e.host.as_str(), e.authority.as_str()),
            ("::1", "[::1]:9093")
        );
        for bad in [
            "127.0.0.1:9093",
            "ftp://x",
            "http://user:pw@am:9093",
            "http://am:9093/api/v2/alerts",
            "http://am:9093/?a=1",
            "not a url",
        ] {
            let e = Endpoint::parse(bad);
            assert!(e.is_err(), "{bad}");
            assert!(!e.unwrap_err().contains("pw"));
        }
    }

    #[test]
    fn config_reads_every_key() {
        let c = crate::sink::Settings::from_yaml_str(
            "u.yaml",
            "alertmanager:
  urls: ['http://am-0:9093/', 'https://am-1.example']
  resolve_after_secs: 600
  timeout_secs: 3
  retry_for_secs: 120
  max_pending: 50
  batch_max: 7
  labels: {cluster: prod, env: eu}
  ca_file: /etc/ssl/am-ca.pem
",
        )
        .unwrap();
        let s = &c.alertmanager;
        assert!(s.enabled());
        assert_eq!(s.urls, ["http://am-0:9093", "https://am-1.example"]);
        assert_eq!(
            (
                s.resolve_after_secs,
                s.timeout_secs,
                s.retry_for_secs,
                s.max_pending,
                s.batch_max
            ),
            (600, 3, 120, 50, 7)
        );
        assert_eq!(s.labels.len(), 2);
        assert_eq!(
            s.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/ssl/am-ca.pem"))
        );
        // The built-in default: off, with the documented values.
        let d = crate::sink::Settings::from_yaml_str("d", "")
            .unwrap()
            .alertmanager;
        assert_eq!(d, Settings::default());
        assert!(!d.enabled());
        let one = crate::sink::Settings::from_yaml_str(
            "u.yaml",
            "alertmanager: {url: 'http://127.0.0.1:9093'}\n",
        )
        .unwrap();
        assert_eq!(one.alertmanager.urls, ["http://127.0.0.1:9093"]);
    }

    #[test]
    fn config_problems_are_reported_with_positions() {
        let text = "alertmanager:
  url: 'http://u:secretpw@am:9093'
  urls: ['ftp://x', 'http://a:1', 'http://a:1/']
  resolve_after_secs: 0
  timeout_secs: 301
  retry_for_secs: -1
  max_pending: many
  batch_max: 0
  labels: {severity: x, 'bad name': y, ok: '', __x: z}
  ca_file: 7
  bogus: 1
";
        let problems = crate::sink::Settings::from_yaml_str("u.yaml", text).unwrap_err();
        let got: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let want = [
            "u.yaml:2:8: alertmanager.url must not carry credentials (user:password@)",
            "u.yaml:3:10: alertmanager.urls: each must start with http:// or https://",
            "u.yaml:3:35: alertmanager.urls lists this Alertmanager twice",
            "u.yaml:4:23: alertmanager.resolve_after_secs must be greater than zero",
            "u.yaml:5:17: alertmanager.timeout_secs must be at most 300",
            "u.yaml:6:19: alertmanager.retry_for_secs must be a non-negative integer, found -1",
            "u.yaml:7:16: alertmanager.max_pending must be a non-negative integer, found a string",
            "u.yaml:8:14: alertmanager.batch_max must be greater than zero",
            "u.yaml:9:12: alertmanager.labels: `severity` is set by auditwatch itself",
            "u.yaml:9:25: alertmanager.labels: `bad name` is not a label name",
            "u.yaml:9:44: alertmanager.labels.ok must not be empty",
            "u.yaml:9:48: alertmanager.labels: `__x` is not a label name",
            "u.yaml:10:12: alertmanager.ca_file must be a string, found an integer",
            "u.yaml:11:3: unknown field `bogus` in alertmanager",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(w), "got {g}\nwant {w}…\nall: {got:#?}");
        }
        assert!(!got.iter().any(|p| p.contains("secretpw")), "{got:#?}");
    }
}
