//! Where alerts go once the engine raised them (`auditwatch run`). Every sink receives the
//! same record (`shared/docs/detections.md`): JSON lines for SIEM shippers ([`jsonl`]),
//! Alertmanager's v2 API ([`alertmanager`]) and email ([`email`]).
//!
//! Sinks never hold detection up for long: the engine thread hands each alert to every
//! sink's own bounded queue; a full queue is waited on for at most `output.queue_wait_ms`
//! (a burst is absorbed: the input waits in the ingest spool meanwhile), then the alert is
//! dropped for that sink only, counted in `auditwatch_sink_dropped_total{reason=
//! "queue_full"}` and logged, and the sink counts as stuck (no more waiting) until it
//! drains. Each sink runs on
//! its own thread, retries on its own schedule and reports what it delivered, dropped and
//! failed as metrics (`auditwatch_sink_*`). At shutdown the queues are closed and each
//! sink gets the drain deadline to finish (email keeps what it could not send in its
//! durable outbox).

pub mod advice;
pub mod alertmanager;
pub mod email;
pub mod jsonl;
pub mod ledger;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::alert::Alert;
use crate::metrics::{Metrics, SinkDrop, SinkSuppress, TENANT_NONE, TENANT_OTHER};
use crate::util::lograte::LogRate;
use crate::util::stable_hash::stable_hash;
use crate::util::sync::lock;
use crate::util::thread::join_until;
use crate::yaml::{self, Ctx, MapReader, Node};

/// Settings shared by the sinks (`output:` besides `alerts`), plus each sink's own.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Alerts each sink may hold in its queue (per sink).
    pub queue_alerts: usize,
    /// How long detection waits on a full sink queue before that alert is dropped for
    /// that sink (0: never wait).
    pub queue_wait_ms: u64,
    /// A link to what to do, per alert: `{category}` and `{rule}` are replaced.
    pub runbook_url: String,
    /// The detector instance named in every record (`output.observer`; default: the host
    /// name).
    pub observer: String,
    /// Distinct tenants named in metric labels; the others count as `other`.
    pub tenant_label_cap: usize,
    pub jsonl: jsonl::Settings,
    pub alertmanager: alertmanager::Settings,
    pub email: email::Settings,
    /// Where each sink keeps its delivery ledger ([`ledger`]): the daemon's `state.dir`;
    /// `None`, no ledger (not read from the `output` section).
    pub ledger_dir: Option<std::path::PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            queue_alerts: 10_000,
            queue_wait_ms: 1_000,
            runbook_url: String::new(),
            observer: host_name(),
            tenant_label_cap: 50,
            jsonl: jsonl::Settings::default(),
            alertmanager: alertmanager::Settings::default(),
            email: email::Settings::default(),
            ledger_dir: None,
        }
    }
}

/// `output:` — the JSON lines target and what the sinks share.
impl yaml::Section for Settings {
    fn keys(&self) -> &'static [&'static str] {
        &["output", "alertmanager", "email"]
    }

    fn apply(&mut self, ctx: &mut Ctx, key: &str, node: &Node) {
        match key {
            "output" => apply_output(ctx, node, self),
            "alertmanager" => alertmanager::apply(ctx, node, &mut self.alertmanager),
            "email" => email::apply(ctx, node, &mut self.email),
            other => unreachable!("`{other}` is not a sink key"),
        }
    }
}

impl Settings {
    /// The sinks' settings of a config file's text on top of the built-in default; the
    /// file may hold only the sinks' keys.
    pub fn from_yaml_str(file: &str, text: &str) -> Result<Settings, Vec<yaml::Problem>> {
        let mut s = Settings::default();
        yaml::load_parts(crate::config::DEFAULT_YAML, file, text, &mut [&mut s])?;
        Ok(s)
    }
}

pub fn apply_output(ctx: &mut Ctx, node: &Node, s: &mut Settings) {
    let Some(mut m) = MapReader::new(ctx, node, "output") else {
        return;
    };
    jsonl::apply(ctx, &mut m, &mut s.jsonl);
    if let Some(n) = m.take("queue_alerts") {
        if let Some(v) = yaml::positive_at_most(ctx, n, "output.queue_alerts", 10_000_000) {
            s.queue_alerts = v as usize;
        }
    }
    if let Some(n) = m.take("queue_wait_ms") {
        if let Some(v) = yaml::uint_at_most(ctx, n, "output.queue_wait_ms", 60_000) {
            s.queue_wait_ms = v;
        }
    }
    if let Some(n) = m.take("runbook_url") {
        if let Some(u) = yaml::string(ctx, n, "output.runbook_url") {
            s.runbook_url = u;
        }
    }
    if let Some(n) = m.take("observer") {
        match yaml::string(ctx, n, "output.observer") {
            Some(o) if o.is_empty() => s.observer = host_name(),
            Some(o) if o.len() > 253 || o.chars().any(char::is_control) => ctx.error(
                n,
                "output.observer must be at most 253 bytes without control characters",
            ),
            Some(o) => s.observer = o,
            None => {}
        }
    }
    if let Some(n) = m.take("tenant_label_cap") {
        if let Some(v) = yaml::uint_at_most(ctx, n, "output.tenant_label_cap", 10_000) {
            s.tenant_label_cap = v as usize;
        }
    }
    m.finish(ctx, "output");
}

/// This host's name, the default `observer`; `auditwatch` when it has none or it is not
/// UTF-8.
pub fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "auditwatch".into())
}

/// What a sink thread receives.
pub enum Msg {
    Alert(Arc<Alert>),
    /// SIGHUP: reopen files (the JSON lines output after logrotate moved it).
    Reopen,
}

/// A sink's end of its queue: counts what it takes off the backlog gauge, and passes on
/// only alerts its delivery ledger does not hold.
pub struct Inbox {
    rx: Receiver<Msg>,
    queued: Arc<AtomicU64>,
    receipts: Receipts,
}

/// Where a sink says it is done with an alert: delivered (or, for email, safe in its
/// durable outbox) or dropped. The engine thread writes a state checkpoint only when
/// every sink is done with every alert handed to it ([`Sinks::settled`]), so a crash
/// never loses an alert raised before the checkpoint; the ledger keeps a restart from
/// delivering again what was delivered after it.
#[derive(Clone)]
pub struct Receipts {
    sink: &'static str,
    finished: Arc<AtomicU64>,
    ledger: Option<Arc<Mutex<ledger::Ledger>>>,
    metrics: Option<Arc<Metrics>>,
}

/// An alert a sink took off its queue, as its receipt needs it: the id token
/// ([`id_token`]) and what its delivery is timed from (the entry's event time, the moment
/// it was taken). A sink keeps it beside the alert in its own buffer, so what is timed
/// is bounded by that buffer and leaves with the alert.
#[derive(Clone, Copy, Debug)]
pub struct Taken {
    pub token: u64,
    /// The alert's event time (Unix ns).
    pub event_nanos: i64,
    /// When the sink took it.
    pub at: Instant,
}

impl Taken {
    /// `a`, taken now.
    pub fn now(a: &Alert) -> Taken {
        Taken {
            token: id_token(a),
            event_nanos: a.time_nanos,
            at: Instant::now(),
        }
    }
}

impl Receipts {
    /// The sink is done with the alert of this id token ([`id_token`]); `delivered`
    /// when it reached its destination (it is then recorded in the ledger). Untimed: the
    /// email sink is done with an alert once it is safe in its outbox, and mails go out by
    /// its digest policy.
    pub fn done(&self, token: u64, delivered: bool) {
        if delivered {
            if let Some(l) = &self.ledger {
                lock(l).record(token);
            }
        }
        self.finished.fetch_add(1, Ordering::Release);
    }

    /// As [`Receipts::done`], and a delivery is timed for
    /// `auditwatch_alert_latency_seconds` and `auditwatch_sink_delivery_seconds`.
    pub fn done_taken(&self, t: Taken, delivered: bool) {
        if let (true, Some(m)) = (delivered, &self.metrics) {
            m.observe_delivery(self.sink, t.event_nanos, t.at.elapsed());
        }
        self.done(t.token, delivered);
    }

    fn delivered_before(&self, token: u64) -> bool {
        self.ledger
            .as_ref()
            .is_some_and(|l| lock(l).contains(token))
    }
}

impl Inbox {
    /// Keep a delivery ledger: alerts it holds are not passed on (counted as
    /// `auditwatch_sink_suppressed_total{reason="already_delivered"}`).
    pub fn with_ledger(
        mut self,
        sink: &'static str,
        ledger: Option<ledger::Ledger>,
        metrics: Arc<Metrics>,
    ) -> Inbox {
        metrics
            .sink_suppressed
            .with_label_values(&[sink, SinkSuppress::AlreadyDelivered.as_str()]);
        self.receipts.sink = sink;
        self.receipts.ledger = ledger.map(|l| Arc::new(Mutex::new(l)));
        self.receipts.metrics = Some(metrics);
        self
    }

    /// Where the sink reports what it is done with.
    pub fn receipts(&self) -> Receipts {
        self.receipts.clone()
    }

    /// The next message, waiting up to `wait`; `Err(Disconnected)` once the daemon
    /// closed the queue and it is empty.
    pub fn recv_timeout(&self, wait: Duration) -> Result<Msg, RecvTimeoutError> {
        loop {
            let m = self.rx.recv_timeout(wait)?;
            if let Some(m) = self.taken(m) {
                return Ok(m);
            }
        }
    }

    /// The next message if one is waiting.
    pub fn try_recv(&self) -> Result<Msg, mpsc::TryRecvError> {
        loop {
            let m = self.rx.try_recv()?;
            if let Some(m) = self.taken(m) {
                return Ok(m);
            }
        }
    }

    /// Count a message taken; `None` for an alert this sink delivered before.
    fn taken(&self, m: Msg) -> Option<Msg> {
        let Msg::Alert(a) = &m else { return Some(m) };
        self.queued.fetch_sub(1, Ordering::Relaxed);
        let token = id_token(a);
        if !self.receipts.delivered_before(token) {
            return Some(m);
        }
        self.receipts.done(token, false);
        if let Some(metrics) = &self.receipts.metrics {
            metrics
                .sink_suppressed
                .with_label_values(&[self.receipts.sink, SinkSuppress::AlreadyDelivered.as_str()])
                .inc();
        }
        tracing::info!(sink = self.receipts.sink, rule = %a.rule, id = %a.id, "alert delivered by this sink before a restart: not delivered again");
        None
    }

    /// Alerts still waiting in the queue (for a sink's backlog gauge).
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }
}

/// A new sink queue of `cap` alerts: the sending half for [`Sinks`], the [`Inbox`] for the
/// sink's thread.
pub fn queue(cap: usize) -> (Sender, Inbox) {
    let (tx, rx) = mpsc::sync_channel(cap);
    let queued = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicU64::new(0));
    (
        Sender {
            tx,
            queued: queued.clone(),
            finished: finished.clone(),
            enqueued: 0,
        },
        Inbox {
            rx,
            queued,
            receipts: Receipts {
                sink: "",
                finished,
                ledger: None,
                metrics: None,
            },
        },
    )
}

pub struct Sender {
    tx: SyncSender<Msg>,
    queued: Arc<AtomicU64>,
    /// Alerts the sink is done with ([`Receipts::done`]).
    finished: Arc<AtomicU64>,
    /// Alerts handed to the sink.
    enqueued: u64,
}

/// A running sink: its queue and thread.
pub struct Running {
    pub name: &'static str,
    pub tx: Sender,
    pub thread: JoinHandle<()>,
}

/// Every running sink; the engine thread's handle on them.
pub struct Sinks {
    running: Vec<Running>,
    metrics: Arc<Metrics>,
    tenants: LabelCap,
    /// `evidence.kind` as a label: a rule's capture can put input text there.
    kinds: LabelCap,
    /// Per sink: the "alert dropped" error, at most once per 10 s (a stuck sink must not
    /// flood the log).
    drop_log: Vec<LogRate>,
    /// How long a full queue is waited on before its alert is dropped.
    queue_wait: Duration,
    /// Sinks whose queue stayed full for `queue_wait`: dropped at once until they drain.
    stuck: Vec<bool>,
    /// Stamped on every record: this detector's name and the runbook link template.
    observer: String,
    runbook_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot open the alert output {path}: {source}")]
    Output {
        path: String,
        source: std::io::Error,
    },
    #[error("{sink}: {message}")]
    Setup { sink: &'static str, message: String },
}

impl Sinks {
    /// Start every configured sink (JSON lines always; Alertmanager and email when set),
    /// each with its delivery ledger when `ledger_dir` is set.
    pub fn start(s: &Settings, metrics: Arc<Metrics>) -> Result<Sinks, SinkError> {
        let ledger = |sink: &'static str| -> Result<Option<ledger::Ledger>, SinkError> {
            let Some(dir) = &s.ledger_dir else {
                return Ok(None);
            };
            ledger::Ledger::open(dir, sink)
                .map(Some)
                .map_err(|e| SinkError::Setup {
                    sink,
                    message: format!("cannot use its delivery ledger in {}: {e}", dir.display()),
                })
        };
        let mut running = vec![jsonl::start(
            &s.jsonl,
            s.queue_alerts,
            metrics.clone(),
            ledger(jsonl::NAME)?,
        )?];
        if s.alertmanager.enabled() {
            running.push(alertmanager::start(
                s,
                metrics.clone(),
                ledger(alertmanager::NAME)?,
            )?);
        }
        if s.email.enabled() {
            running.push(email::start(s, metrics.clone(), ledger(email::NAME)?)?);
        }
        for r in &running {
            // Every sink's series exist from the start, at zero.
            metrics.init_sink(r.name);
        }
        let n = running.len();
        Ok(Sinks {
            running,
            tenants: LabelCap::new(s.tenant_label_cap),
            kinds: LabelCap::new(KIND_LABEL_CAP),
            metrics,
            drop_log: vec![LogRate::new(Duration::from_secs(10)); n],
            queue_wait: Duration::from_millis(s.queue_wait_ms),
            stuck: vec![false; n],
            observer: s.observer.clone(),
            runbook_url: s.runbook_url.clone(),
        })
    }

    /// Every sink is done with every alert handed to it (delivered, safe in a durable
    /// outbox, or dropped): a state checkpoint taken now loses no alert if the process
    /// dies after it.
    pub fn settled(&self) -> bool {
        self.running
            .iter()
            .all(|r| r.tx.finished.load(Ordering::Acquire) >= r.tx.enqueued)
    }

    /// Per sink, the alerts handed to it so far: a mark for [`Sinks::settled_through`]
    /// (the Kafka source commits a partition's offset once the alerts of the records
    /// before it are settled, while other partitions keep handing alerts over).
    pub fn handed(&self) -> Vec<u64> {
        self.running.iter().map(|r| r.tx.enqueued).collect()
    }

    /// Every sink is done with as many alerts as `mark` ([`Sinks::handed`]) counted: a
    /// sink finishes alerts in the order they were handed to it, so those are done.
    pub fn settled_through(&self, mark: &[u64]) -> bool {
        self.running
            .iter()
            .zip(mark)
            .all(|(r, m)| r.tx.finished.load(Ordering::Acquire) >= *m)
    }

    /// Names of the running sinks.
    pub fn names(&self) -> Vec<&'static str> {
        self.running.iter().map(|r| r.name).collect()
    }

    /// Count the alert and hand it to every sink without waiting.
    pub fn dispatch(&mut self, mut a: Alert) {
        a.stamp(&self.observer, &self.runbook_url);
        let tenant = self.tenants.label(a.tenant.as_deref());
        let kind = match a.evidence.get("kind").and_then(|k| k.as_str()) {
            Some(k) => self.kinds.label(Some(k)),
            None => crate::metrics::KIND_NONE,
        };
        self.metrics
            .alerts
            .with_label_values(&[&a.category, a.severity.as_str()])
            .inc();
        self.metrics
            .tenant_alerts
            .with_label_values(&[tenant, &a.category, a.severity.as_str(), kind])
            .inc();
        let a = Arc::new(a);
        for (i, r) in self.running.iter_mut().enumerate() {
            r.tx.queued.fetch_add(1, Ordering::Relaxed);
            let mut msg = Msg::Alert(a.clone());
            // A full queue is waited on for up to `queue_wait` (input meanwhile waits in the
            // ingest spool): a burst is absorbed without loss. A sink that stays full that
            // long is marked stuck, and its alerts are dropped at once until it drains.
            let deadline = Instant::now() + self.queue_wait;
            let why = loop {
                match r.tx.tx.try_send(msg) {
                    Ok(()) => {
                        self.stuck[i] = false;
                        r.tx.enqueued += 1;
                        break None;
                    }
                    Err(TrySendError::Full(m)) => {
                        if self.stuck[i] || Instant::now() >= deadline {
                            self.stuck[i] = true;
                            break Some(SinkDrop::QueueFull);
                        }
                        msg = m;
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Err(TrySendError::Disconnected(_)) => break Some(SinkDrop::SinkDown),
                }
            };
            let Some(why) = why else { continue };
            r.tx.queued.fetch_sub(1, Ordering::Relaxed);
            self.metrics
                .sink_dropped
                .with_label_values(&[r.name, why.as_str()])
                .inc();
            if let Some(more) = self.drop_log[i].allow(Instant::now()) {
                tracing::error!(sink = r.name, reason = why.as_str(), rule = %a.rule, request_id = a.request_id.as_deref().unwrap_or("-"),
                    similar_lines_suppressed = more,
                    "alert dropped for this sink (its queue stayed full or it stopped); see auditwatch_sink_dropped_total");
            }
        }
    }

    /// SIGHUP: files are reopened.
    pub fn reopen(&self) {
        for r in &self.running {
            let _ = r.tx.tx.try_send(Msg::Reopen);
        }
    }

    /// Close every queue and wait for the sinks to finish, up to `deadline`.
    pub fn close(self, deadline: Instant) {
        let Sinks { running, .. } = self;
        let mut threads = Vec::new();
        for r in running {
            drop(r.tx);
            threads.push((r.name, r.thread));
        }
        for (name, t) in threads {
            if join_until(t, deadline).is_none() {
                tracing::error!(
                    sink = name,
                    "sink did not finish before the drain deadline; what it still held is lost (email keeps its outbox)"
                );
            }
        }
    }
}

/// Distinct `evidence.kind` label values: the shipped rules use about a dozen; a custom
/// rule whose regex captures `kind` from input cannot add more than this.
const KIND_LABEL_CAP: usize = 32;

/// Longest label value taken from an alert; a longer one counts as `other`.
const LABEL_VALUE_MAX: usize = 128;

/// Metric label values from input (tenants, evidence kinds) from a bounded set: the first
/// `cap` values seen keep their name, later ones and any longer than [`LABEL_VALUE_MAX`]
/// count as `other`; alerts without a value as `none`. So series stay bounded whatever
/// the input.
pub struct LabelCap {
    cap: usize,
    seen: std::collections::HashSet<String>,
}

impl LabelCap {
    pub fn new(cap: usize) -> LabelCap {
        LabelCap {
            cap,
            seen: Default::default(),
        }
    }

    pub fn label<'a>(&'a mut self, tenant: Option<&'a str>) -> &'a str {
        let Some(t) = tenant else { return TENANT_NONE };
        if self.seen.contains(t) {
            return t;
        }
        if self.seen.len() < self.cap
            && t.len() <= LABEL_VALUE_MAX
            && t != TENANT_OTHER
            && t != TENANT_NONE
        {
            self.seen.insert(t.to_string());
            return t;
        }
        TENANT_OTHER
    }
}

/// The alert's `id` as a short fixed-width key (a stable hash of it) for places that need
/// a bounded, file-name-safe token: the Alertmanager `alert_key` label and the email
/// outbox. The id is the same from every copy of the stream (both devices, both detectors
/// of an HA pair, input read again), so the key is too, which lets Alertmanager and the
/// outbox de-duplicate.
pub fn alert_key(a: &Alert) -> String {
    format!("{:016x}", id_token(a))
}

/// The alert's `id` as a 64-bit stable hash: the [`alert_key`] as a number, what the
/// delivery ledgers keep.
pub fn id_token(a: &Alert) -> u64 {
    stable_hash([a.id.as_str()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_settings_are_read_and_bad_ones_reported_with_their_position() {
        let c = crate::sink::Settings::from_yaml_str(
            "o.yaml",
            "output: {alerts: /var/log/a.jsonl, rotate_bytes: 8192, keep_files: 3, queue_alerts: 7, queue_wait_ms: 0, runbook_url: 'https://w/{category}', tenant_label_cap: 2}\n",
        )
        .unwrap();
        let o = &c;
        assert_eq!(
            o.jsonl.target,
            crate::sink::jsonl::AlertOutput::File("/var/log/a.jsonl".into())
        );
        assert_eq!((o.jsonl.rotate_bytes, o.jsonl.keep_files), (8192, 3));
        assert_eq!(
            (o.queue_alerts, o.queue_wait_ms, o.tenant_label_cap),
            (7, 0, 2)
        );
        assert_eq!(o.runbook_url, "https://w/{category}");
        let text = "output:\n  rotate_bytes: 100\n  keep_files: 0\n  queue_alerts: 0\n  queue_wait_ms: 70000\n  tenant_label_cap: 20000\n  colour: red\n";
        let all: Vec<String> = crate::sink::Settings::from_yaml_str("o.yaml", text)
            .unwrap_err()
            .iter()
            .map(|p| p.to_string())
            .collect();
        let all = all.join("\n");
        for want in [
            "o.yaml:2:17: output.rotate_bytes must be 0 (never) or at least 4096",
            "o.yaml:3:15:",
            "o.yaml:4:17:",
            "o.yaml:5:18: output.queue_wait_ms must be at most 60000",
            "o.yaml:6:21: output.tenant_label_cap must be at most 10000",
            "o.yaml:7:3: unknown field `colour` in output",
        ] {
            assert!(all.contains(want), "missing `{want}` in:\n{all}");
        }
    }

    #[test]
    fn tenant_labels_stay_within_the_cap() {
        let mut c = LabelCap::new(2);
        assert_eq!(c.label(Some("a")), "a");
        assert_eq!(c.label(None), "none");
        assert_eq!(c.label(Some("b")), "b");
        assert_eq!(c.label(Some("c")), "other");
        assert_eq!(c.label(Some("a")), "a");
        assert_eq!(c.label(Some("other")), "other");
    }

    fn alert(n: u32) -> Alert {
        Alert {
            id: format!("r:{n}"),
            time: "2026-03-02T14:07:00Z".into(),
            rule: "r".into(),
            category: "cross_tenant_read".into(),
            severity: crate::alert::Severity::High,
            summary: "s".into(),
            tenant: Some(format!("t{n}")),
            target_tenant: None,
            request_id: Some(n.to_string()),
            path: None,
            operation: None,
            outcome: None,
            actor: Default::default(),
            evidence: Default::default(),
            observer: None,
            description: String::new(),
            runbook_url: None,
            time_nanos: 0,
        }
    }

    /// A sink that never reads its queue: the others still get every alert, the stuck one
    /// loses what its queue cannot hold, counted, and dispatch never waits.
    #[test]
    fn a_stuck_sink_drops_and_counts_without_holding_up_the_others() {
        let metrics = Arc::new(Metrics::new());
        let (stuck_tx, stuck_inbox) = queue(2);
        let (live_tx, live_inbox) = queue(100);
        let idle = || std::thread::spawn(|| {});
        let mut sinks = Sinks {
            running: vec![
                Running {
                    name: "email",
                    tx: stuck_tx,
                    thread: idle(),
                },
                Running {
                    name: "jsonl",
                    tx: live_tx,
                    thread: idle(),
                },
            ],
            metrics: metrics.clone(),
            tenants: LabelCap::new(3),
            kinds: LabelCap::new(KIND_LABEL_CAP),
            drop_log: vec![LogRate::new(Duration::from_secs(10)); 2],
            queue_wait: Duration::from_millis(20),
            stuck: vec![false; 2],
            observer: "detector-a".into(),
            runbook_url: "https://wiki.example/{category}/{rule}".into(),
        };
        for n in 0..10 {
            sinks.dispatch(alert(n));
        }
        let dropped = |sink: &str| {
            metrics
                .sink_dropped
                .with_label_values(&[sink, "queue_full"])
                .get()
        };
        assert_eq!(dropped("email"), 8);
        assert_eq!(dropped("jsonl"), 0);
        assert_eq!(stuck_inbox.queued(), 2);
        let mut got = Vec::new();
        while let Ok(Msg::Alert(a)) = live_inbox.try_recv() {
            got.push(a.request_id.clone().unwrap());
            // Every record names the detector and links its runbook; the id is untouched.
            assert_eq!(a.observer.as_deref(), Some("detector-a"));
            assert_eq!(
                a.runbook_url.as_deref(),
                Some(format!("https://wiki.example/{}/{}", a.category, a.rule).as_str())
            );
            assert_eq!(a.id, alert(got.len() as u32 - 1).id);
        }
        assert_eq!(got, (0..10).map(|n| n.to_string()).collect::<Vec<_>>());
        assert_eq!(live_inbox.queued(), 0);
        // Tenants past the cap of 3 count as `other`.
        let by_tenant = |t: &str| {
            metrics
                .tenant_alerts
                .with_label_values(&[t, "cross_tenant_read", "high", crate::metrics::KIND_NONE])
                .get()
        };
        assert_eq!(by_tenant("t0"), 1);
        assert_eq!(by_tenant("other"), 7);
        assert_eq!(
            metrics
                .alerts
                .with_label_values(&["cross_tenant_read", "high"])
                .get(),
            10
        );
        drop(stuck_inbox);
        sinks.dispatch(alert(10));
        assert_eq!(
            metrics
                .sink_dropped
                .with_label_values(&["email", "sink_down"])
                .get(),
            1
        );
    }

    /// One `jsonl` sink on `tx`, with a tenant label cap of 3.
    fn one_jsonl_sink(tx: Sender, metrics: &Arc<Metrics>, queue_wait: Duration) -> Sinks {
        Sinks {
            running: vec![Running {
                name: "jsonl",
                tx,
                thread: std::thread::spawn(|| {}),
            }],
            metrics: metrics.clone(),
            tenants: LabelCap::new(3),
            kinds: LabelCap::new(KIND_LABEL_CAP),
            drop_log: vec![LogRate::new(Duration::from_secs(10))],
            queue_wait,
            stuck: vec![false],
            observer: "detector-a".into(),
            runbook_url: String::new(),
        }
    }

    /// Regression: a custom rule whose regex captures `kind` from 2,000 paths made 2,001
    /// series. Label values from alerts are bounded in number and length.
    #[test]
    fn labels_filled_from_input_stay_bounded() {
        let metrics = Arc::new(Metrics::new());
        let (tx, _inbox) = queue(10_000);
        let mut sinks = one_jsonl_sink(tx, &metrics, Duration::from_millis(20));
        for n in 0..2_000u32 {
            let mut a = alert(n);
            a.tenant = Some("t".repeat(1 + n as usize % 300));
            a.evidence.insert(
                "kind".into(),
                serde_json::json!(format!("secret/data/p{n}")),
            );
            sinks.dispatch(a);
        }
        let text = String::from_utf8(metrics.render()).unwrap();
        let series = text
            .lines()
            .filter(|l| l.starts_with("auditwatch_tenant_alerts_total{"))
            .count();
        // At most 3 tenants + `other`, times at most 32 kinds + `other`.
        assert!(series <= 4 * (KIND_LABEL_CAP + 1), "{series} series");
        assert!(series > 1, "the metric is there");
        let long = metrics
            .tenant_alerts
            .with_label_values(&["t", "cross_tenant_read", "high", "other"])
            .get();
        assert!(long > 0, "kinds past the cap count as other");
    }

    /// Regression (issue 17): an alert whose evidence names no kind made a `kind=""`
    /// series (Prometheus reads an empty value as no label at all).
    #[test]
    fn an_alert_without_a_kind_counts_as_kind_none() {
        let metrics = Arc::new(Metrics::new());
        let (tx, _inbox) = queue(10);
        let mut sinks = one_jsonl_sink(tx, &metrics, Duration::from_millis(20));
        sinks.dispatch(alert(1));
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(!text.contains("=\"\""), "{text}");
        let n = metrics
            .tenant_alerts
            .with_label_values(&["t1", "cross_tenant_read", "high", crate::metrics::KIND_NONE])
            .get();
        assert_eq!(n, 1, "{text}");
    }

    /// A delivered alert is timed from its entry and from its sink's queue; one dropped is
    /// not; the email sink, done with an alert once it is in the outbox, is not timed.
    /// (The time travels with the alert ([`Taken`]): nothing is left behind to leak.)
    #[test]
    fn deliveries_are_timed_per_sink() {
        let metrics = Arc::new(Metrics::new());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        for sink in ["jsonl", "email"] {
            let (tx, inbox) = queue(10);
            let inbox = inbox.with_ledger(sink, None, metrics.clone());
            let receipts = inbox.receipts();
            for n in 0..2 {
                let mut a = alert(n);
                a.time_nanos = (now - Duration::from_secs(30)).as_nanos() as i64;
                tx.tx.send(Msg::Alert(Arc::new(a))).unwrap();
                let Ok(Msg::Alert(a)) = inbox.recv_timeout(Duration::from_secs(1)) else {
                    panic!("no alert")
                };
                // What each sink does: jsonl times what it took, email does not.
                if sink == "jsonl" {
                    receipts.done_taken(Taken::now(&a), n == 0);
                } else {
                    receipts.done(id_token(&a), n == 0);
                }
            }
            assert_eq!(receipts.finished.load(Ordering::Acquire), 2, "{sink}");
        }
        let lat = metrics.alert_latency.with_label_values(&["jsonl"]);
        assert_eq!(lat.get_sample_count(), 1);
        assert!(lat.get_sample_sum() >= 30.0, "{}", lat.get_sample_sum());
        let del = metrics.sink_delivery.with_label_values(&["jsonl"]);
        assert_eq!(del.get_sample_count(), 1);
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(!text.contains(r#"auditwatch_alert_latency_seconds_count{sink="email"}"#));
    }

    /// A sink that is only slow: detection waits for room instead of dropping.
    #[test]
    fn a_slow_sink_gets_every_alert_of_a_burst() {
        let metrics = Arc::new(Metrics::new());
        let (tx, inbox) = queue(2);
        let reader = std::thread::spawn(move || {
            let mut n = 0;
            while let Ok(Msg::Alert(_)) = inbox.recv_timeout(Duration::from_secs(5)) {
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        });
        let mut sinks = one_jsonl_sink(tx, &metrics, Duration::from_secs(1));
        for n in 0..50 {
            sinks.dispatch(alert(n));
        }
        drop(sinks);
        assert_eq!(reader.join().unwrap(), 50);
        assert_eq!(
            metrics
                .sink_dropped
                .with_label_values(&["jsonl", "queue_full"])
                .get(),
            0
        );
    }

    #[test]
    fn the_alert_key_is_stable_and_tells_alerts_apart() {
        let a = crate::alert::Alert {
            id: "cross-tenant-kv-read:c915b587".into(),
            time: "2026-03-02T14:07:00.123456Z".into(),
            rule: "cross-tenant-kv-read".into(),
            category: "cross_tenant_read".into(),
            severity: crate::alert::Severity::Critical,
            summary: "s".into(),
            tenant: Some("acme-books".into()),
            target_tenant: Some("lumen".into()),
            request_id: Some("c915b587".into()),
            path: Some("secret/data/x".into()),
            operation: Some("read".into()),
            outcome: Some("allowed".into()),
            actor: Default::default(),
            evidence: Default::default(),
            observer: None,
            description: String::new(),
            runbook_url: None,
            time_nanos: 0,
        };
        // Pinned: a change here breaks de-duplication between mixed versions of an HA pair.
        assert_eq!(alert_key(&a), "83c5a86933b17cd6");
        // Another device's copy: its own timestamp and HMAC'd accessor, the same key.
        let mut b = a.clone();
        b.summary = "another wording".into();
        b.time = "2026-03-02T14:07:00.123611Z".into();
        b.actor.accessor = Some("hmac-sha256:other-salt".into());
        assert_eq!(alert_key(&a), alert_key(&b));
        b.id = "cross-tenant-kv-read:other".into();
        assert_ne!(alert_key(&a), alert_key(&b));
    }
}
