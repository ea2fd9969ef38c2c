//! Email: alerts mailed over SMTP (lettre), with a durable outbox and digests.
//!
//! Every alert the sink accepts is first written to the outbox directory ([`outbox`]) and
//! leaves it only once the SMTP server accepted every mail it belongs in: an SMTP outage,
//! a crash or a restart loses nothing (at-least-once; a crash between the server's
//! acceptance and the removal can mail one alert twice). Alerts at or above
//! `email.immediate`, and `high` ones of the categories that cannot wait
//! (`immediate_categories`: root token use, audit device changes such as a `log_raw`
//! device), are mailed at once; the others wait in a per-recipient digest that goes out
//! when its window (`digest_minutes`, from its oldest alert) closes, split so no part's
//! HTML passes Gmail's clipping size ([`render::HTML_MAX_BYTES`]). Mails say they are
//! automatic (`Auto-Submitted: auto-generated`, RFC 3834, so vacation responders stay
//! quiet), and the mails of one incident (rule, tenant and actor) carry the same
//! `References`, so mail clients show repeats as one thread. Duplicates
//! (`alert_key`) and repeats of the same rule, tenant and actor within the suppression
//! window are counted and not mailed; beyond `max_per_hour` mails wait in the outbox.
//! Failures back off (1 s doubling to 5 min, with jitter). Everything is a metric:
//! `auditwatch_emails_sent_total{kind}`, `auditwatch_sink_{delivered,failures,backlog,
//! dropped,suppressed}{sink="email"}`. The sink runs on its own thread with a
//! current-thread tokio runtime for lettre; detection never waits for it.

pub mod outbox;
pub mod plan;
pub mod render;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::alert::{Alert, Severity};
use crate::metrics::{Metrics, SinkDrop, SinkName, SinkSuppress};
use crate::util::backoff::Rng;
use crate::util::lograte::LogRates;
use crate::yaml::{self, Ctx, MapReader, Node};

use super::{Inbox, Msg, Running, SinkError};
use outbox::{AddError, Entry, Outbox};
use plan::{Backoff, Filter, Kind, RateCap, Verdict};

pub const NAME: &str = SinkName::Email.as_str();
/// The longest dedup and suppression windows (a week).
const WEEK_SECS: u64 = 7 * 86_400;
/// How long one SMTP delivery may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// At shutdown, how long the sink keeps sending what is due.
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(3);
/// One log line per kind of trouble per this long, at most.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// `smtp://`: plain connect, then STARTTLS, required.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Tls,
    /// `smtp+plain://`: no TLS (loopback, or with `allow_plaintext`).
    Plain,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub security: Security,
    pub host: String,
    pub port: u16,
}

impl Server {
    /// `smtp://host[:587]`, `smtps://host[:465]`, `smtp+plain://host[:25]`.
    pub fn parse(url: &str) -> Result<Server, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("email.smtp `{url}` must look like smtp://host:port, smtps://host:port or smtp+plain://host:port"))?;
        let (security, default_port) = match scheme {
            "smtp" => (Security::StartTls, 587),
            "smtps" => (Security::Tls, 465),
            "smtp+plain" => (Security::Plain, 25),
            _ => {
                return Err(format!(
                    "email.smtp scheme `{scheme}` is not one of smtp (STARTTLS), smtps (implicit TLS), smtp+plain (no TLS)"
                ))
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err("email.smtp must not carry credentials: name environment variables in email.username_env and email.password_env".into());
        }
        if rest.contains('/') || rest.contains('?') {
            return Err(format!(
                "email.smtp `{url}` must be scheme://host:port, without a path"
            ));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("email.smtp `{url}`: unclosed `[`"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("email.smtp `{url}` has no host"));
        }
        let port =
            match port {
                None => default_port,
                Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    format!("email.smtp `{url}`: port `{p}` is not a port number")
                })?,
            };
        Ok(Server {
            security,
            host,
            port,
        })
    }

    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The SMTP server URL; `None`: not used.
    pub smtp: Option<String>,
    /// Allow `smtp+plain://` to a host that is not loopback.
    pub allow_plaintext: bool,
    /// Extra trusted CA certificates (PEM), besides the public roots.
    pub ca_file: Option<PathBuf>,
    /// Names of the environment variables holding the SMTP credentials.
    pub username_env: Option<String>,
    pub password_env: Option<String>,
    pub from: Option<String>,
    /// Recipients per severity, indexed by `Severity as usize` (info … critical).
    pub recipients: [Vec<String>; 4],
    /// The digest window; 0: every alert mailed at once.
    pub digest_ms: u64,
    /// Severities at or above this are mailed at once.
    pub immediate: Severity,
    pub dedup_window_secs: u64,
    /// Same rule + tenant + actor within this: not mailed again; 0: off.
    pub suppress_window_secs: u64,
    pub max_per_hour: u64,
    pub outbox_dir: Option<PathBuf>,
    pub outbox_max_bytes: u64,
    pub subject_prefix: String,
    /// Categories whose `high` alerts are mailed at once (they cannot wait for a digest).
    pub immediate_categories: Vec<String>,
    /// The IANA time zone mail times are shown in besides UTC: the detection config's
    /// `business_hours.time_zone` (set by the daemon, not read from `email:`).
    pub time_zone: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            smtp: None,
            allow_plaintext: false,
            ca_file: None,
            username_env: None,
            password_env: None,
            from: None,
            recipients: Default::default(),
            digest_ms: 15 * 60_000,
            immediate: Severity::Critical,
            dedup_window_secs: 3600,
            suppress_window_secs: 0,
            max_per_hour: 60,
            outbox_dir: None,
            outbox_max_bytes: 64 << 20,
            subject_prefix: "[auditwatch]".into(),
            immediate_categories: DEFAULT_IMMEDIATE_CATEGORIES
                .iter()
                .map(|c| c.to_string())
                .collect(),
            time_zone: "UTC".into(),
        }
    }
}

impl Settings {
    pub fn enabled(&self) -> bool {
        self.smtp.is_some()
    }

    pub fn recipients_for(&self, s: Severity) -> &[String] {
        &self.recipients[s as usize]
    }

    /// Whether an alert is mailed at once rather than in a digest.
    pub fn is_immediate(&self, severity: Severity, category: &str) -> bool {
        severity >= self.immediate
            || self.digest_ms == 0
            || (severity >= Severity::High
                && self.immediate_categories.iter().any(|c| c == category))
    }
}

/// `high` alerts of these categories are mailed at once by default: root token use, and
/// audit device changes (a `log_raw` device writes secrets in clear; a disabled device
/// blinds this detector). A digest would hold them up to `digest_minutes`.
pub const DEFAULT_IMMEDIATE_CATEGORIES: [&str; 2] = ["root_token_use", "audit_device_change"];

/// `Auto-Submitted: auto-generated` (RFC 3834): the mail is a machine's, so vacation
/// responders and ticket systems do not answer it.
#[derive(Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".into())
    }
}

fn opt_string(ctx: &mut Ctx, n: &Node, what: &str) -> Option<Option<String>> {
    yaml::string(ctx, n, what).map(|s| (!s.is_empty()).then_some(s))
}

fn env_name(ctx: &mut Ctx, n: &Node, what: &str) -> Option<Option<String>> {
    let v = opt_string(ctx, n, what)?;
    if let Some(name) = &v {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            ctx.error(
                n,
                format!(
                    "{what} names an environment variable (letters, digits, _), found `{name}`"
                ),
            );
            return None;
        }
    }
    Some(v)
}

fn mailbox(ctx: &mut Ctx, n: &Node, what: &str, v: &str) -> bool {
    match v.parse::<Mailbox>() {
        Ok(_) => true,
        Err(e) => {
            ctx.error(n, format!("{what}: `{v}` is not an email address ({e})"));
            false
        }
    }
}

/// `email:`.
pub fn apply(ctx: &mut Ctx, node: &Node, s: &mut Settings) {
    let Some(mut m) = MapReader::new(ctx, node, "email") else {
        return;
    };
    let at = m.node();
    let mut smtp_node = None;
    if let Some(n) = m.take("smtp") {
        smtp_node = Some(n);
        if let Some(u) = yaml::string(ctx, n, "email.smtp") {
            s.smtp = (!u.is_empty()).then_some(u);
        }
    }
    if let Some(n) = m.take("allow_plaintext") {
        s.allow_plaintext = yaml::boolean(ctx, n, "email.allow_plaintext").unwrap_or(false);
    }
    if let Some(n) = m.take("ca_file") {
        if let Some(v) = opt_string(ctx, n, "email.ca_file") {
            s.ca_file = v.map(PathBuf::from);
        }
    }
    if let Some(n) = m.take("username_env") {
        if let Some(v) = env_name(ctx, n, "email.username_env") {
            s.username_env = v;
        }
    }
    if let Some(n) = m.take("password_env") {
        if let Some(v) = env_name(ctx, n, "email.password_env") {
            s.password_env = v;
        }
    }
    if let Some(n) = m.take("from") {
        if let Some(v) = opt_string(ctx, n, "email.from") {
            if v.as_deref()
                .is_none_or(|f| mailbox(ctx, n, "email.from", f))
            {
                s.from = v;
            }
        }
    }
    if let Some(n) = m.take("recipients") {
        if let Some(mut r) = MapReader::new(ctx, n, "email.recipients") {
            for sev in Severity::ALL {
                let key = sev.as_str();
                if let Some(list) = r.take(key) {
                    let what = format!("email.recipients.{key}");
                    let items: Vec<&Node> = if yaml::is_null(list) {
                        Vec::new()
                    } else if yaml::scalar_str(list).is_some() {
                        vec![list]
                    } else {
                        yaml::list(ctx, list, &what).iter().collect()
                    };
                    let mut addrs = Vec::new();
                    let mut ok = true;
                    for item in items {
                        match yaml::string(ctx, item, &what) {
                            Some(a) if mailbox(ctx, item, &what, &a) => addrs.push(a),
                            _ => ok = false,
                        }
                    }
                    if ok {
                        s.recipients[sev as usize] = addrs;
                    }
                }
            }
            r.finish(ctx, "email.recipients");
        }
    }
    if let Some(n) = m.take("digest_minutes") {
        match yaml::number(ctx, n, "email.digest_minutes") {
            Some(v) if (0.0..=1440.0).contains(&v) => s.digest_ms = (v * 60_000.0).round() as u64,
            Some(_) => ctx.error(
                n,
                "email.digest_minutes must be between 0 (no digests) and 1440 (a day); fractions are allowed",
            ),
            None => {}
        }
    }
    if let Some(n) = m.take("immediate") {
        if let Some(v) = yaml::string(ctx, n, "email.immediate") {
            match Severity::parse(&v) {
                Some(sev) => s.immediate = sev,
                None => ctx.error(
                    n,
                    format!("email.immediate must be a severity (info, warning, high, critical), found `{v}`"),
                ),
            }
        }
    }
    if let Some(n) = m.take("dedup_window_secs") {
        if let Some(v) = yaml::uint_at_most(ctx, n, "email.dedup_window_secs", WEEK_SECS) {
            s.dedup_window_secs = v;
        }
    }
    if let Some(n) = m.take("suppress_window_secs") {
        if let Some(v) = yaml::uint_at_most(ctx, n, "email.suppress_window_secs", WEEK_SECS) {
            s.suppress_window_secs = v;
        }
    }
    if let Some(n) = m.take("max_per_hour") {
        if let Some(v) = yaml::positive_at_most(ctx, n, "email.max_per_hour", 100_000) {
            s.max_per_hour = v;
        }
    }
    if let Some(n) = m.take("outbox_dir") {
        if let Some(v) = opt_string(ctx, n, "email.outbox_dir") {
            s.outbox_dir = v.map(PathBuf::from);
        }
    }
    if let Some(n) = m.take("outbox_max_bytes") {
        match yaml::uint(ctx, n, "email.outbox_max_bytes") {
            Some(v) if v >= 1 << 16 => s.outbox_max_bytes = v,
            Some(_) => ctx.error(n, "email.outbox_max_bytes must be at least 65536"),
            None => {}
        }
    }
    if let Some(n) = m.take("immediate_categories") {
        let what = "email.immediate_categories";
        let cats = if yaml::is_null(n) {
            Vec::new()
        } else {
            yaml::string_list(ctx, n, what)
        };
        match cats.iter().find(|c| {
            c.is_empty()
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        }) {
            Some(bad) => ctx.error(
                n,
                format!("{what}: `{bad}` is not a category name (lower case letters, digits, _; e.g. root_token_use)"),
            ),
            None => s.immediate_categories = cats,
        }
    }
    if let Some(n) = m.take("subject_prefix") {
        if let Some(v) = yaml::string(ctx, n, "email.subject_prefix") {
            if v.chars().any(char::is_control) || v.chars().count() > 64 {
                ctx.error(
                    n,
                    "email.subject_prefix must be one line of at most 64 characters",
                );
            } else {
                s.subject_prefix = v;
            }
        }
    }
    m.finish(ctx, "email");

    // What only makes sense together, once the SMTP server is set.
    let Some(url) = s.smtp.clone() else { return };
    let here = smtp_node.unwrap_or(at);
    match Server::parse(&url) {
        Ok(srv) if srv.security == Security::Plain && !srv.is_loopback() && !s.allow_plaintext => {
            ctx.error(here, format!("email.smtp `{url}` sends mail and credentials unencrypted to a host that is not loopback; use smtp:// (STARTTLS) or smtps://, or set email.allow_plaintext: true"));
        }
        Ok(_) => {}
        Err(e) => ctx.error(here, e),
    }
    if s.from.is_none() {
        ctx.error(
            at,
            "email is missing required field `from` (the sender address)",
        );
    }
    if s.outbox_dir.is_none() {
        ctx.error(at, "email is missing required field `outbox_dir` (where alerts wait until mailed; it must survive restarts)");
    }
    if s.recipients.iter().all(|r| r.is_empty()) {
        ctx.error(
            at,
            "email.recipients names nobody: list addresses under critical, high, warning or info",
        );
    }
    if s.username_env.is_some() != s.password_env.is_some() {
        ctx.error(
            at,
            "email.username_env and email.password_env go together: set both or neither",
        );
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn env_value(var: &str, key: &str) -> Result<String, String> {
    std::env::var(var).map_err(|e| match e {
        std::env::VarError::NotPresent => {
            format!("environment variable `{var}` (named by email.{key}) is not set")
        }
        std::env::VarError::NotUnicode(_) => {
            format!("environment variable `{var}` (named by email.{key}) is not valid UTF-8")
        }
    })
}

fn transport(e: &Settings, srv: &Server) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let creds = match (&e.username_env, &e.password_env) {
        (Some(u), Some(p)) => Some(Credentials::new(
            env_value(u, "username_env")?,
            env_value(p, "password_env")?,
        )),
        (None, None) => None,
        _ => return Err("email.username_env and email.password_env go together".into()),
    };
    let tls = if srv.security == Security::Plain {
        Tls::None
    } else {
        let mut b = TlsParameters::builder(srv.host.clone());
        if let Some(ca) = &e.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|err| format!("cannot read email.ca_file {}: {err}", ca.display()))?;
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(format!(
                    "email.ca_file {} holds no PEM certificate",
                    ca.display()
                ));
            }
            let cert = Certificate::from_pem(&pem)
                .map_err(|err| format!("email.ca_file {} is not valid PEM: {err}", ca.display()))?;
            b = b.add_root_certificate(cert);
        }
        let params = b
            .build_rustls()
            .map_err(|err| format!("cannot set up TLS for {}: {err}", srv.host))?;
        match srv.security {
            Security::Tls => Tls::Wrapper(params),
            _ => Tls::Required(params),
        }
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(srv.host.clone())
        .port(srv.port)
        .tls(tls)
        .timeout(Some(SEND_TIMEOUT));
    if let Some(c) = creds {
        b = b.credentials(c);
    }
    Ok(b.build())
}

/// Check the settings against the environment (credentials, CA file, outbox), load the
/// outbox a previous run left, and run the sender thread.
pub fn start(
    s: &super::Settings,
    metrics: Arc<Metrics>,
    ledger: Option<super::ledger::Ledger>,
) -> Result<Running, SinkError> {
    let setup = |message: String| SinkError::Setup {
        sink: NAME,
        message,
    };
    let e = s.email.clone();
    let url = e
        .smtp
        .clone()
        .ok_or_else(|| setup("email.smtp is not set".into()))?;
    let srv = Server::parse(&url).map_err(setup)?;
    let transport = transport(&e, &srv).map_err(setup)?;
    let from: Mailbox = e
        .from
        .as_deref()
        .ok_or_else(|| setup("email.from is not set".into()))?
        .parse()
        .map_err(|err| setup(format!("email.from: {err}")))?;
    let dir = e
        .outbox_dir
        .clone()
        .ok_or_else(|| setup("email.outbox_dir is not set".into()))?;
    let loaded = Outbox::open(&dir, e.outbox_max_bytes)
        .map_err(|err| setup(format!("cannot use the outbox {}: {err}", dir.display())))?;
    for (p, why) in &loaded.bad {
        tracing::error!(path = %p.display(), error = %why, "unreadable email outbox entry set aside as .bad; its alert is not mailed");
        metrics
            .sink_dropped
            .with_label_values(&[NAME, SinkDrop::OutboxError.as_str()])
            .inc();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| setup(format!("cannot start the email runtime: {err}")))?;
    for r in [SinkSuppress::Duplicate, SinkSuppress::Suppressed] {
        metrics
            .sink_suppressed
            .with_label_values(&[NAME, r.as_str()]);
    }
    for r in [SinkDrop::OutboxFull, SinkDrop::OutboxError] {
        metrics.sink_dropped.with_label_values(&[NAME, r.as_str()]);
    }
    for k in Kind::ALL {
        metrics.emails_sent.with_label_values(&[k.as_str()]);
    }
    let mut filter = Filter::new(e.dedup_window_secs, e.suppress_window_secs);
    let outbox = loaded.outbox;
    let mut ledger = ledger;
    if let Some(l) = ledger.as_mut() {
        // What waits in the outbox was accepted: a crash between the outbox write and the
        // ledger's must not let the same alert in twice when its input is read again.
        for (_, entry) in outbox.entries() {
            if let Ok(token) = u64::from_str_radix(&entry.key, 16) {
                l.record(token);
            }
        }
    }
    // The windows go on where the previous run left them, for what is still waiting.
    for (_, entry) in outbox.entries() {
        filter.check(&entry.key, &entry.group, entry.accepted_ms);
    }
    tracing::info!(server = %format!("{}:{}", srv.host, srv.port), security = ?srv.security,
        outbox = %dir.display(), waiting = outbox.len(), "email sink started");
    let (tx, inbox) = super::queue(s.queue_alerts);
    let inbox = inbox.with_ledger(NAME, ledger, metrics.clone());
    // The detection config checked the zone's name; a name jiff cannot find (never, with
    // the bundled tzdata) falls back to UTC rather than failing the sink.
    let tz = jiff::tz::TimeZone::get(&e.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let worker = Worker {
        tz,
        cap: RateCap::new(e.max_per_hour),
        filter,
        outbox,
        transport,
        rt,
        from,
        metrics,
        global: Backoff::default(),
        groups: HashMap::new(),
        rng: Rng::from_clock(),
        logs: LogRates::new(LOG_EVERY),
        e,
    };
    let thread = std::thread::Builder::new()
        .name("auditwatch-email".into())
        .spawn(move || worker.run(inbox))
        .map_err(|err| setup(err.to_string()))?;
    Ok(Running {
        name: NAME,
        tx,
        thread,
    })
}

struct Worker {
    e: Settings,
    /// Mail times are shown here and in UTC.
    tz: jiff::tz::TimeZone,
    from: Mailbox,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    rt: tokio::runtime::Runtime,
    metrics: Arc<Metrics>,
    outbox: Outbox,
    filter: Filter,
    cap: RateCap,
    /// Connection-level trouble: every mail waits.
    global: Backoff,
    /// A server that refuses one mail (permanent errors): only that group waits.
    groups: HashMap<String, Backoff>,
    /// Jitter for the backoffs.
    rng: Rng,
    /// One line per kind of trouble per [`LOG_EVERY`].
    logs: LogRates<&'static str>,
}

impl Worker {
    fn run(mut self, inbox: Inbox) {
        let receipts = inbox.receipts();
        let accept = |w: &mut Worker, a: &Alert| {
            let ok = w.accept(a);
            receipts.done(super::id_token(a), ok);
        };
        loop {
            let wait = if self.outbox.is_empty() { 1000 } else { 200 };
            match inbox.recv_timeout(Duration::from_millis(wait)) {
                Ok(Msg::Alert(a)) => {
                    accept(&mut self, &a);
                    // Take a burst whole, so it goes out in as few mails as it can.
                    for _ in 0..1000 {
                        match inbox.try_recv() {
                            Ok(Msg::Alert(a)) => accept(&mut self, &a),
                            Ok(Msg::Reopen) => {}
                            Err(_) => break,
                        }
                    }
                }
                Ok(Msg::Reopen) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.send_due(Some(Instant::now() + SHUTDOWN_BUDGET));
                    self.gauge(0);
                    if !self.outbox.is_empty() {
                        tracing::info!(
                            waiting = self.outbox.len(),
                            "email: alerts not mailed yet stay in the outbox for the next start"
                        );
                    }
                    return;
                }
            }
            self.send_due(None);
            self.gauge(inbox.queued());
        }
    }

    fn gauge(&self, queued: u64) {
        self.metrics
            .sink_backlog
            .with_label_values(&[NAME])
            .set((self.outbox.len() as u64 + queued) as i64);
    }

    /// Whether a line about `what` may be logged now; the lines skipped since the last.
    fn may_log(&mut self, what: &'static str) -> Option<u64> {
        self.logs.allow(what, Instant::now())
    }

    /// Take an alert into the outbox (or leave it out by design); false when the outbox
    /// could not take it (dropped).
    fn accept(&mut self, a: &Alert) -> bool {
        let now = now_ms();
        let key = super::alert_key(a);
        let actor = a
            .actor
            .entity_id
            .as_deref()
            .or(a.actor.display_name.as_deref())
            .or(a.actor.remote_address.as_deref())
            .unwrap_or("");
        let group = format!(
            "{}\u{1f}{}\u{1f}{}",
            a.rule,
            a.tenant.as_deref().unwrap_or(""),
            actor
        );
        let reason = match self.filter.check(&key, &group, now) {
            Verdict::Pass => None,
            Verdict::Duplicate => Some(SinkSuppress::Duplicate),
            Verdict::Suppressed => Some(SinkSuppress::Suppressed),
        };
        if let Some(reason) = reason {
            self.metrics
                .sink_suppressed
                .with_label_values(&[NAME, reason.as_str()])
                .inc();
            tracing::debug!(rule = %a.rule, reason = reason.as_str(), "email: alert not mailed (window)");
            return true;
        }
        let to = self.e.recipients_for(a.severity).to_vec();
        if to.is_empty() {
            self.metrics
                .sink_suppressed
                .with_label_values(&[NAME, SinkSuppress::NoRecipients.as_str()])
                .inc();
            return true;
        }
        let entry = Entry {
            v: 1,
            key,
            group,
            accepted_ms: now,
            severity: a.severity.as_str().to_string(),
            immediate: self.e.is_immediate(a.severity, &a.category),
            pending: to,
            runbook: a.runbook_url.clone(),
            alert: serde_json::to_value(a).expect("alerts serialise"),
        };
        if let Err(err) = self.outbox.add(entry) {
            let reason = match err {
                AddError::Full { .. } => SinkDrop::OutboxFull,
                AddError::Io(_) => SinkDrop::OutboxError,
            }
            .as_str();
            self.metrics
                .sink_dropped
                .with_label_values(&[NAME, reason])
                .inc();
            if let Some(skipped) = self.may_log(reason) {
                tracing::error!(error = %err, rule = %a.rule, request_id = a.request_id.as_deref().unwrap_or("-"),
                    skipped, "email: alert dropped, the outbox cannot take it; see auditwatch_sink_dropped_total");
            }
            return false;
        }
        true
    }

    /// The hourly cap is reached: say so (rate-limited) and how long until a mail may go.
    fn log_rate_cap(&mut self, now: i64) {
        if let Some(skipped) = self.may_log("rate_cap") {
            let free_in_secs = (self.cap.next_free(now) - now) / 1000;
            tracing::warn!(
                max_per_hour = self.e.max_per_hour,
                free_in_secs,
                waiting = self.outbox.len(),
                skipped,
                "email: hourly mail cap reached; alerts wait in the outbox"
            );
        }
    }

    /// Send every mail due now, within the rate cap and the backoffs (until `deadline`).
    fn send_due(&mut self, deadline: Option<Instant>) {
        let now = now_ms();
        if self.outbox.is_empty() || !self.global.ready(now) {
            return;
        }
        if !self.cap.allows(now) {
            self.log_rate_cap(now);
            return;
        }
        let (mails, _) = plan::due(self.outbox.entries(), now, self.e.digest_ms as i64);
        let mails: Vec<(plan::Mail, Option<(usize, usize)>)> =
            mails.into_iter().flat_map(|m| self.split(m)).collect();
        for (mail, part) in mails {
            let left = match deadline {
                Some(d) if Instant::now() >= d => return,
                Some(d) => d - Instant::now(),
                None => SEND_TIMEOUT,
            };
            let group = mail.group();
            if self.groups.get(&group).is_some_and(|b| !b.ready(now)) {
                continue;
            }
            if !self.cap.allows(now) {
                self.log_rate_cap(now);
                return;
            }
            let msg = match self.build(&mail, part) {
                Ok(m) => m,
                Err(err) => {
                    // Only an address from an older config can fail here: nothing to retry.
                    tracing::error!(error = %err, recipients = %mail.to.join(","), alerts = mail.names.len(),
                        "email: cannot build a mail; its alerts are dropped for these recipients");
                    self.metrics
                        .sink_dropped
                        .with_label_values(&[NAME, SinkDrop::Rejected.as_str()])
                        .inc_by(mail.names.len() as u64);
                    self.finish(&mail);
                    continue;
                }
            };
            let sent = self
                .rt
                .block_on(async { tokio::time::timeout(left, self.transport.send(msg)).await });
            match sent {
                Ok(Ok(_)) => {
                    self.cap.record(now);
                    self.global.reset();
                    self.groups.remove(&group);
                    self.metrics
                        .emails_sent
                        .with_label_values(&[mail.kind.as_str()])
                        .inc();
                    tracing::info!(
                        kind = mail.kind.as_str(),
                        alerts = mail.names.len(),
                        recipients = mail.to.len(),
                        "email sent"
                    );
                    self.finish(&mail);
                }
                Ok(Err(err)) => {
                    self.metrics.sink_failures.with_label_values(&[NAME]).inc();
                    let permanent = err.is_permanent();
                    let r = self.rng.next_u64();
                    let retry_ms = if permanent {
                        self.groups.entry(group).or_default().fail(now, r)
                    } else {
                        self.global.fail(now, r)
                    };
                    if let Some(skipped) = self.may_log("send_failed") {
                        tracing::warn!(error = %err, permanent, retry_in_ms = retry_ms, waiting = self.outbox.len(), skipped,
                            "email: the SMTP server did not take a mail; its alerts stay in the outbox");
                    }
                    if !permanent {
                        return;
                    }
                }
                Err(_) => {
                    self.metrics.sink_failures.with_label_values(&[NAME]).inc();
                    let r = self.rng.next_u64();
                    let retry_ms = self.global.fail(now, r);
                    if let Some(skipped) = self.may_log("send_failed") {
                        tracing::warn!(
                            timeout_secs = left.as_secs(),
                            retry_in_ms = retry_ms,
                            skipped,
                            "email: sending a mail timed out; its alerts stay in the outbox"
                        );
                    }
                    return;
                }
            }
        }
    }

    /// The mail's recipients have its alerts: update the outbox.
    fn finish(&mut self, mail: &plan::Mail) {
        for name in &mail.names {
            match self.outbox.delivered(name, &mail.to) {
                Ok(true) => self.metrics.sink_delivered.with_label_values(&[NAME]).inc(),
                Ok(false) => {}
                Err(err) => {
                    if let Some(skipped) = self.may_log("outbox_update") {
                        tracing::error!(error = %err, skipped, "email: cannot update the outbox after a mail went; the alert may be mailed again after a restart");
                    }
                }
            }
        }
    }

    fn render(&self, mail: &plan::Mail, part: Option<(usize, usize)>) -> render::Body {
        let entries: Vec<&Entry> = mail
            .names
            .iter()
            .filter_map(|n| self.outbox.get(n))
            .collect();
        let frame = render::Frame {
            kind: mail.kind,
            prefix: &self.e.subject_prefix,
            part,
            tz: &self.tz,
        };
        render::render(&frame, &entries)
    }

    /// A mail whose HTML would pass the clipping size, cut in halves until each part
    /// fits (one alert is never cut): the parts in order, numbered when there are several.
    fn split(&self, mail: plan::Mail) -> Vec<(plan::Mail, Option<(usize, usize)>)> {
        let mut out = Vec::new();
        let mut todo = vec![mail];
        while let Some(m) = todo.pop() {
            if m.names.len() > 1 && self.render(&m, None).html.len() > render::HTML_MAX_BYTES {
                let (a, b) = m.names.split_at(m.names.len() / 2);
                let half = |names: &[String]| plan::Mail {
                    kind: m.kind,
                    to: m.to.clone(),
                    names: names.to_vec(),
                };
                todo.push(half(b));
                todo.push(half(a));
            } else {
                out.push(m);
            }
        }
        let k = out.len();
        out.into_iter()
            .enumerate()
            .map(|(i, m)| (m, (k > 1).then_some((i + 1, k))))
            .collect()
    }

    fn build(&self, mail: &plan::Mail, part: Option<(usize, usize)>) -> Result<Message, String> {
        let body = self.render(mail, part);
        let groups: Vec<&str> = mail
            .names
            .iter()
            .filter_map(|n| self.outbox.get(n))
            .map(|e| e.group.as_str())
            .collect();
        let mut b = Message::builder()
            .from(self.from.clone())
            .message_id(Some(message_id(&mail.names, &mail.to)))
            .header(AutoSubmitted)
            .subject(body.subject);
        if let Some(root) = thread_root(&groups) {
            b = b.in_reply_to(root.clone()).references(root);
        }
        for r in &mail.to {
            b = b.to(r.parse::<Mailbox>().map_err(|e| format!("`{r}`: {e}"))?);
        }
        b.multipart(MultiPart::alternative_plain_html(body.text, body.html))
            .map_err(|e| e.to_string())
    }
}

/// The thread of a mail whose alerts are all one incident (rule, tenant and actor): a
/// Message-ID that no mail has, named by every mail of the incident in `In-Reply-To` and
/// `References`, so clients thread them (JWZ threading keeps a missing parent as the root).
/// It is a function of the incident alone, so the thread survives restarts and the two
/// daemons of an HA pair join the same one. `None` for a mail of several incidents.
fn thread_root(groups: &[&str]) -> Option<String> {
    let first = *groups.first()?;
    if groups.iter().any(|g| *g != first) {
        return None;
    }
    let h = crate::util::stable_hash::stable_hash(["incident", first]);
    Some(format!("<incident.{h:016x}@auditwatch.invalid>"))
}

/// The mail's Message-ID, from what it carries (its outbox entries) and to whom: a mail
/// sent again (the process was killed after the server took it, before the outbox
/// recorded it) has the same one, so mail systems that de-duplicate by it show it once.
fn message_id(names: &[String], to: &[String]) -> String {
    let h = crate::util::stable_hash::stable_hash(
        names
            .iter()
            .map(String::as_str)
            .chain(std::iter::once("\u{1f}"))
            .chain(to.iter().map(String::as_str)),
    );
    format!("<{h:016x}.{}@auditwatch.invalid>", names.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mail_sent_again_has_the_same_message_id() {
        let names = vec![
            "1-000001-ab.json".to_string(),
            "1-000002-cd.json".to_string(),
        ];
        let to = vec!["soc@example.test".to_string()];
        assert_eq!(message_id(&names, &to), message_id(&names, &to));
        assert_ne!(message_id(&names, &to), message_id(&names[..1], &to));
        assert_ne!(
            message_id(&names, &to),
            message_id(&names, &["ops@example.test".to_string()])
        );
        let id = message_id(&names, &to);
        assert!(
            id.starts_with('<') && id.ends_with("@auditwatch.invalid>"),
            "{id}"
        );
    }

    #[test]
    fn mails_of_one_incident_share_a_thread_and_mixed_mails_have_none() {
        let a = thread_root(&["rule\u{1f}acme\u{1f}alice"]).unwrap();
        assert_eq!(
            thread_root(&["rule\u{1f}acme\u{1f}alice"; 3]),
            Some(a.clone())
        );
        assert!(
            a.starts_with("<incident.") && a.ends_with("@auditwatch.invalid>"),
            "{a}"
        );
        assert_ne!(thread_root(&["rule\u{1f}acme\u{1f}bob"]), Some(a));
        assert_eq!(thread_root(&["r\u{1f}a\u{1f}x", "r\u{1f}a\u{1f}y"]), None);
        assert_eq!(thread_root(&[]), None);
    }

    #[test]
    fn high_alerts_of_the_categories_that_cannot_wait_go_at_once() {
        let e = Settings::default();
        assert!(e.is_immediate(Severity::High, "root_token_use"));
        assert!(e.is_immediate(Severity::High, "audit_device_change"));
        assert!(!e.is_immediate(Severity::Warning, "root_token_use"));
        assert!(!e.is_immediate(Severity::High, "policy_drift"));
        assert!(e.is_immediate(Severity::Critical, "policy_drift"));
        let c = crate::sink::Settings::from_yaml_str(
            "u.yaml",
            "email: {immediate_categories: [policy_drift]}\n",
        )
        .unwrap();
        assert!(c.email.is_immediate(Severity::High, "policy_drift"));
        assert!(!c.email.is_immediate(Severity::High, "root_token_use"));
        let p = crate::sink::Settings::from_yaml_str(
            "u.yaml",
            "email: {immediate_categories: [Root Token]}\n",
        )
        .unwrap_err();
        assert!(
            p[0].to_string().starts_with(
                "u.yaml:1:31: email.immediate_categories: `Root Token` is not a category name"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn smtp_urls_choose_the_protection() {
        let s = Server::parse("smtp://mail.example.com").unwrap();
        assert_eq!((s.security, s.port), (Security::StartTls, 587));
        let s = Server::parse("smtps://mail.example.com:2465").unwrap();
        assert_eq!(
            (s.security, s.host.as_str(), s.port),
            (Security::Tls, "mail.example.com", 2465)
        );
        let s = Server::parse("smtp+plain://[::1]:2525").unwrap();
        assert_eq!(
            (s.security, s.host.as_str(), s.port),
            (Security::Plain, "::1", 2525)
        );
        assert!(s.is_loopback());
        assert!(Server::parse("smtp://u:p@h:25")
            .unwrap_err()
            .contains("credentials"));
        assert!(Server::parse("http://h").is_err());
        assert!(Server::parse("smtp://h:0").is_err());
        assert!(Server::parse("smtp://h:25/x").is_err());
    }

    #[test]
    fn a_complete_email_block_loads() {
        let c = crate::sink::Settings::from_yaml_str(
            "u.yaml",
            "email:\n  smtp: smtps://mail.example.com\n  from: auditwatch@example.com\n  outbox_dir: /var/lib/auditwatch/outbox\n  recipients: {critical: [sec@example.com, oncall@example.com], warning: ops@example.com}\n  digest_minutes: 0.5\n  immediate: high\n  username_env: SMTP_USER\n  password_env: SMTP_PASS\n",
        )
        .unwrap();
        let e = &c.email;
        assert!(e.enabled());
        assert_eq!(e.digest_ms, 30_000);
        assert_eq!(e.immediate, Severity::High);
        assert_eq!(e.recipients_for(Severity::Critical).len(), 2);
        assert_eq!(e.recipients_for(Severity::Warning), ["ops@example.com"]);
        assert!(e.recipients_for(Severity::Info).is_empty());
        assert_eq!(e.max_per_hour, 60);
        // The default config leaves email off.
        assert!(!crate::sink::Settings::from_yaml_str("u.yaml", "")
            .unwrap()
            .email
            .enabled());
    }

    #[test]
    fn every_bad_email_setting_is_reported_with_its_position() {
        let text = "email:\n  smtp: smtp+plain://mail.example.com:25\n  from: not an address\n  recipients: {critical: [ok@example.com, 'bad@'], urgent: [x@example.com]}\n  digest_minutes: -1\n  immediate: severe\n  max_per_hour: 0\n  username_env: SMTP_USER\n  password_env: 'has space'\n  bogus: 1\n";
        let problems: Vec<String> = crate::sink::Settings::from_yaml_str("u.yaml", text)
            .unwrap_err()
            .iter()
            .map(|p| p.to_string())
            .collect();
        let all = problems.join("\n");
        for want in [
            "u.yaml:2:9: email.smtp `smtp+plain://mail.example.com:25` sends mail and credentials unencrypted",
            "u.yaml:3:9: email.from: `not an address` is not an email address",
            "u.yaml:4:43: email.recipients.critical: `bad@` is not an email address",
            "u.yaml:4:52: unknown field `urgent` in email.recipients",
            "u.yaml:5:19: email.digest_minutes must be between 0",
            "u.yaml:6:14: email.immediate must be a severity",
            "u.yaml:7:17: email.max_per_hour must be greater than zero",
            "u.yaml:9:17: email.password_env names an environment variable",
            "u.yaml:10:3: unknown field `bogus` in email",
            "u.yaml:2:3: email is missing required field `outbox_dir`",
            "u.yaml:2:3: email.username_env and email.password_env go together",
        ] {
            assert!(all.contains(want), "missing `{want}` in:\n{all}");
        }
    }
}
