//! Alertmanager: every alert pushed to Alertmanager's v2 API (`POST /api/v2/alerts`), to
//! every configured Alertmanager (a cluster gets each alert on each peer, as Prometheus
//! does).
//!
//! The parts, bottom-up: [`config`] (the `alertmanager:` block), [`url`] (base URLs),
//! [`payload`] (an alert as Alertmanager takes it), [`retry`] (what waits for delivery,
//! and the backoff), [`http`] (auth, TLS, headers and proxy as Prometheus configures
//! them), [`client`] (one HTTP/TLS POST), and here the sink thread tying them together.
//!
//! Invariants:
//! - The labels are a pure function of the alert and the config, so an HA pair's copies
//!   of one alert merge in Alertmanager ([`payload`]).
//! - Detection is never held up: the framework's bounded queue is drained continuously,
//!   alerts waiting for a retry sit in a bounded pending list (`max_pending`), and every
//!   alert ends delivered or dropped with a reason (`rejected`, `expired`, `retry_full`,
//!   `shutdown`), counted in the `auditwatch_sink_*` metrics and logged (rate-limited).
//! - 2xx: delivered; 429, 408, 5xx, connection errors and timeouts: retried with
//!   exponential backoff and jitter per Alertmanager until `retry_for_secs`; other answers:
//!   rejected (a rejected batch is retried one alert per POST first, so one bad alert
//!   cannot take its neighbours with it).

mod client;
mod config;
mod http;
mod payload;
mod retry;
mod url;

pub use config::{apply, Settings};
pub use payload::{alertname, labels, payload};

use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use jiff::Timestamp;

use crate::metrics::{Metrics, SinkDrop, SinkName};
use crate::util::backoff::{Backoff, Rng};
use crate::util::lograte::LogRates;

use super::{Inbox, Msg, Running, SinkError};
use client::Client;
use config::MAX_URLS;
use retry::{Entry, Fate, Outcome, Pending, BACKOFF};
use url::Endpoint;

pub const NAME: &str = SinkName::Alertmanager.as_str();

/// One log line per kind of trouble and Alertmanager per this long at most.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// At shutdown, what is pending gets one last attempt within this long.
const FINAL_ATTEMPT: Duration = Duration::from_secs(2);

/// Parse the URLs, set up TLS (a bad `ca_file` fails the start) and run the sink thread.
pub fn start(
    all: &super::Settings,
    metrics: Arc<Metrics>,
    ledger: Option<super::ledger::Ledger>,
) -> Result<Running, SinkError> {
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
    let client = Client::new(&s).map_err(|e| setup(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| setup(format!("cannot start its runtime: {e}")))?;
    for reason in [
        SinkDrop::Rejected,
        SinkDrop::Expired,
        SinkDrop::RetryFull,
        SinkDrop::Shutdown,
    ] {
        metrics
            .sink_dropped
            .with_label_values(&[NAME, reason.as_str()]);
    }
    let (tx, inbox) = super::queue(all.queue_alerts);
    let inbox = inbox.with_ledger(NAME, ledger, metrics.clone());
    let thread = std::thread::Builder::new()
        .name("auditwatch-alertmanager".into())
        .spawn(move || {
            let receipts = inbox.receipts();
            let mut sink = Sink::new(s, endpoints, client, metrics, receipts);
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
    /// Failures in a row and the wait they set.
    backoff: Backoff,
}

struct Sink {
    s: Settings,
    targets: Vec<Target>,
    client: Client,
    pending: Pending,
    metrics: Arc<Metrics>,
    /// Log lines by (Alertmanager, kind of trouble); `usize::MAX` for the fates.
    log: LogRates<(usize, &'static str)>,
    /// Jitter for the backoffs.
    rng: Rng,
    /// Where each alert's fate is reported (delivered or dropped).
    receipts: super::Receipts,
}

impl Sink {
    fn new(
        s: Settings,
        endpoints: Vec<Endpoint>,
        client: Client,
        metrics: Arc<Metrics>,
        receipts: super::Receipts,
    ) -> Sink {
        let now = Instant::now();
        let pending = Pending::new(
            endpoints.len(),
            s.max_pending,
            s.batch_max,
            Duration::from_secs(s.retry_for_secs),
        );
        Sink {
            s,
            targets: endpoints
                .into_iter()
                .map(|ep| Target {
                    ep: Arc::new(ep),
                    next_try: now,
                    backoff: BACKOFF,
                })
                .collect(),
            client,
            pending,
            metrics,
            log: LogRates::new(LOG_EVERY),
            rng: Rng::from_clock(),
            receipts,
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
        let body = payload(&a, &self.s, Timestamp::now()).to_string();
        if let Some(old) = self.pending.push(body, &a.rule, super::Taken::now(&a)) {
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
                if t.backoff.failures() > 0 {
                    tracing::info!(url = %url, failed_attempts = t.backoff.failures(), "alertmanager accepts alerts again");
                }
                t.backoff.reset();
                t.next_try = now;
            }
            Outcome::Rejected(why) => {
                self.metrics.sink_failures.with_label_values(&[NAME]).inc();
                if let Some(more) = self.log.allow((i, "rejected"), now) {
                    tracing::error!(url = %url, answer = %why, alerts = n, similar_lines_suppressed = more,
                        "alertmanager rejected alerts; a rejected batch is retried alert by alert, a rejected single alert is dropped");
                }
            }
            Outcome::Retry(why) => {
                self.metrics.sink_failures.with_label_values(&[NAME]).inc();
                let t = &mut self.targets[i];
                let wait = t.backoff.fail(self.rng.next_u64());
                t.next_try = now + wait;
                let failures = t.backoff.failures();
                if let Some(more) = self.log.allow((i, "retry"), now) {
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
        self.receipts
            .done_taken(e.taken, matches!(fate, Fate::Delivered | Fate::Partly));
        let m = &self.metrics;
        let dropped = match fate {
            Fate::Delivered => {
                m.sink_delivered.with_label_values(&[NAME]).inc();
                return;
            }
            Fate::Partly => {
                m.sink_delivered.with_label_values(&[NAME]).inc();
                None
            }
            Fate::Rejected => Some(SinkDrop::Rejected),
            Fate::Expired => Some(SinkDrop::Expired),
            Fate::Shutdown => Some(SinkDrop::Shutdown),
            Fate::RetryFull => Some(SinkDrop::RetryFull),
        };
        if let Some(d) = dropped {
            m.sink_dropped.with_label_values(&[NAME, d.as_str()]).inc();
        }
        // The log line's kind: a drop reason, or `partly` (delivered, only not everywhere).
        let reason = dropped.map_or("partly", SinkDrop::as_str);
        let level_error = dropped.is_some();
        let Some(more) = self.log.allow((usize::MAX, reason), Instant::now()) else {
            return;
        };
        let waited_secs = e.taken.at.elapsed().as_secs();
        let key = format!("{:016x}", e.taken.token);
        if level_error {
            tracing::error!(reason, rule = %e.rule, alert_key = %key, waited_secs, similar_lines_suppressed = more,
                "alert dropped for alertmanager; see auditwatch_sink_dropped_total");
        } else {
            tracing::warn!(rule = %e.rule, alert_key = %key, waited_secs, similar_lines_suppressed = more,
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
