//! The CloudWatch Logs source: polls `FilterLogEvents` on a log group (the CloudWatch
//! agent, Fluent Bit or HCP Vault ship the audit file there: one event per audit entry).
//!
//! Invariants: every poll asks for events from `position - overlap_secs` on (CloudWatch
//! is eventually consistent: events can become visible after later ones), follows every
//! page, and drops events whose id was already seen (the seen set keeps the ids inside
//! the overlap window, bounded); throttling and errors back off exponentially (1 s to
//! 60 s) and are counted; a Fluent Bit envelope `{"log": "<entry>", ...}` is unwrapped.
//! The checkpoint (position + seen ids, versioned, temp file + rename) is written only
//! when the engine has processed every batch this source handed over, so a crash repeats
//! at most one overlap window's dedup, never loses an event the engine did not see. The
//! API sits behind [`LogsApi`] so the loop is tested without AWS, and against moto.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::ingest::batch::{Batch, Commit, FileKey, SourceId};
use crate::ingest::queue::Queue;
use crate::metrics::{ApiOutcome, Metrics, WriteOutcome};
use crate::source::settings::CloudWatchSource;
use crate::util::backoff::Backoff;
use crate::util::sync::lock;

pub const CHECKPOINT_VERSION: u32 = 1;
/// Most event ids kept for de-duplication.
const MAX_SEEN: usize = 200_000;
/// After a failed call: 1 s doubling to 60 s, no jitter (one poller per log group, nothing
/// to spread out).
const BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 0);

/// One log event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEvent {
    pub id: String,
    pub timestamp_ms: i64,
    pub message: String,
}

/// One `FilterLogEvents` call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterRequest {
    pub start_ms: i64,
    pub next_token: Option<String>,
    pub limit: Option<i32>,
}

#[derive(Clone, Debug, Default)]
pub struct FilterPage {
    pub events: Vec<LogEvent>,
    pub next_token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("throttled: {0}")]
    Throttled(String),
    #[error("{0}")]
    Other(String),
}

pub type ApiFuture<'a> = Pin<Box<dyn Future<Output = Result<FilterPage, ApiError>> + Send + 'a>>;

/// The part of CloudWatch Logs this source uses.
pub trait LogsApi: Send + Sync {
    fn filter(&self, req: FilterRequest) -> ApiFuture<'_>;
}

/// [`LogsApi`] over the AWS SDK.
pub struct SdkLogs {
    client: aws_sdk_cloudwatchlogs::Client,
    log_group: String,
    stream_prefix: Option<String>,
    filter_pattern: Option<String>,
}

impl SdkLogs {
    /// A client from the default credential chain, with the configured region and
    /// endpoint (moto, LocalStack, a VPC endpoint). SDK retries are off: this source backs
    /// off itself and counts what happened.
    pub async fn new(cfg: &CloudWatchSource) -> SdkLogs {
        // rustls with ring, as everywhere else in the binary: the SDK's default client
        // would compile aws-lc for this source alone.
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .retry_config(aws_config::retry::RetryConfig::disabled());
        if let Some(r) = &cfg.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(e) = &cfg.endpoint {
            loader = loader.endpoint_url(e.clone());
        }
        let conf = loader.load().await;
        SdkLogs {
            client: aws_sdk_cloudwatchlogs::Client::new(&conf),
            log_group: cfg.log_group.clone(),
            stream_prefix: cfg.log_stream_prefix.clone(),
            filter_pattern: cfg.filter_pattern.clone(),
        }
    }
}

impl LogsApi for SdkLogs {
    fn filter(&self, req: FilterRequest) -> ApiFuture<'_> {
        Box::pin(async move {
            use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
            let mut call = self
                .client
                .filter_log_events()
                .log_group_name(&self.log_group)
                .start_time(req.start_ms);
            if let Some(p) = &self.stream_prefix {
                call = call.log_stream_name_prefix(p);
            }
            if let Some(f) = &self.filter_pattern {
                call = call.filter_pattern(f);
            }
            if let Some(t) = req.next_token {
                call = call.next_token(t);
            }
            if let Some(l) = req.limit {
                call = call.limit(l);
            }
            match call.send().await {
                Ok(out) => Ok(FilterPage {
                    events: out
                        .events()
                        .iter()
                        .filter_map(|e| {
                            Some(LogEvent {
                                id: e.event_id()?.to_string(),
                                timestamp_ms: e.timestamp().unwrap_or(0),
                                message: e.message().unwrap_or_default().to_string(),
                            })
                        })
                        .collect(),
                    next_token: out.next_token().map(str::to_string),
                }),
                Err(e) => {
                    let code = e.code().unwrap_or("").to_string();
                    let msg = aws_sdk_cloudwatchlogs::error::DisplayErrorContext(&e).to_string();
                    if matches!(
                        code.as_str(),
                        "ThrottlingException"
                            | "LimitExceededException"
                            | "ServiceUnavailableException"
                    ) {
                        Err(ApiError::Throttled(code))
                    } else {
                        Err(ApiError::Other(msg))
                    }
                }
            }
        })
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CwCheckpoint {
    pub version: u32,
    pub source: String,
    pub log_group: String,
    /// Newest event timestamp handed to the engine (Unix ms).
    pub position_ms: i64,
    /// Ids of events inside the overlap window, with their timestamps.
    pub seen: Vec<(String, i64)>,
}

/// Shared by the poller, the engine thread (commits) and the daemon (checkpoints).
pub struct CwShared {
    name: String,
    log_group: String,
    path: PathBuf,
    metrics: Arc<Metrics>,
    /// Sequence number of the last batch handed over, and of the last one processed.
    pushed: AtomicU64,
    committed: AtomicU64,
    state: Mutex<(i64, HashMap<String, i64>)>,
    last_written: Mutex<Option<CwCheckpoint>>,
}

impl CwShared {
    pub fn commit(&self, c: Commit) {
        self.committed.fetch_max(c.offset, Ordering::Relaxed);
    }

    /// The checkpoint as its file would hold it, and that file's path, when the engine has
    /// processed everything handed over (`None`: batches still queued, the position is
    /// not the engine's yet).
    pub fn checkpoint_image(&self) -> io::Result<Option<(PathBuf, Vec<u8>)>> {
        match self.current() {
            Some(cp) => Ok(Some((
                self.path.clone(),
                serde_json::to_vec(&cp).map_err(io::Error::other)?,
            ))),
            None => Ok(None),
        }
    }

    fn current(&self) -> Option<CwCheckpoint> {
        if self.committed.load(Ordering::Relaxed) < self.pushed.load(Ordering::Relaxed) {
            return None;
        }
        let st = lock(&self.state);
        let mut seen: Vec<(String, i64)> = st.1.iter().map(|(k, v)| (k.clone(), *v)).collect();
        seen.sort();
        Some(CwCheckpoint {
            version: CHECKPOINT_VERSION,
            source: self.name.clone(),
            log_group: self.log_group.clone(),
            position_ms: st.0,
            seen,
        })
    }

    /// Write the checkpoint if the engine has processed everything handed over and it
    /// changed. `Ok(false)`: not now (batches still queued).
    pub fn write_checkpoint(&self) -> io::Result<bool> {
        let Some(cp) = self.current() else {
            return Ok(false);
        };
        let mut last = lock(&self.last_written);
        if last.as_ref() == Some(&cp) {
            return Ok(true);
        }
        let r = write_atomic(&self.path, &cp);
        self.metrics
            .checkpoint_writes
            .with_label_values(&[self.name.as_str(), WriteOutcome::of(&r).as_str()])
            .inc();
        match r {
            Ok(()) => {
                *last = Some(cp);
                Ok(true)
            }
            Err(e) => {
                tracing::error!(source = %self.name, error = %e, "cannot write checkpoint");
                Err(e)
            }
        }
    }
}

fn write_atomic(path: &Path, cp: &CwCheckpoint) -> io::Result<()> {
    crate::fsutil::write_durably(path, &serde_json::to_vec(cp).map_err(io::Error::other)?)
}

#[derive(Debug, thiserror::Error)]
pub enum CwError {
    #[error("cannot create checkpoint directory {dir}: {source}")]
    CheckpointDir { dir: PathBuf, source: io::Error },
    #[error("checkpoint {path} is unreadable: {reason}")]
    BadCheckpoint { path: PathBuf, reason: String },
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The message as an audit line: line ends trimmed, a Fluent Bit envelope
/// (`{"log": "<entry>", "stream": ...}`) unwrapped. Only envelopes pay for a parse.
fn unwrap_envelope(message: &str) -> String {
    let m = message.trim_end_matches(['\n', '\r']);
    if m.starts_with('{') && m.contains("\"log\"") && !m.contains("\"type\"") {
        if let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(m) {
            if let Some(serde_json::Value::String(inner)) = o.get("log") {
                return inner.trim_end_matches(['\n', '\r']).to_string();
            }
        }
    }
    m.to_string()
}

/// A CloudWatch source, set up and ready to run.
pub struct CloudWatch {
    cfg: CloudWatchSource,
    id: SourceId,
    shared: Arc<CwShared>,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
}

impl CloudWatch {
    pub fn new(
        cfg: CloudWatchSource,
        name: &str,
        id: SourceId,
        queue: Arc<Queue>,
        metrics: Arc<Metrics>,
    ) -> Result<CloudWatch, CwError> {
        std::fs::create_dir_all(&cfg.checkpoint_dir).map_err(|e| CwError::CheckpointDir {
            dir: cfg.checkpoint_dir.clone(),
            source: e,
        })?;
        let path = cfg.checkpoint_dir.join(format!("{name}.checkpoint.json"));
        let (position, seen) = match std::fs::read(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let start = cfg
                    .start_time_ms
                    .unwrap_or_else(|| now_ms() - cfg.overlap_secs as i64 * 1000);
                (start, HashMap::new())
            }
            Err(e) => {
                return Err(CwError::BadCheckpoint {
                    path,
                    reason: e.to_string(),
                })
            }
            Ok(bytes) => {
                let cp: CwCheckpoint =
                    serde_json::from_slice(&bytes).map_err(|e| CwError::BadCheckpoint {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                if cp.version != CHECKPOINT_VERSION {
                    return Err(CwError::BadCheckpoint {
                        path,
                        reason: format!(
                            "version {} (this build reads {CHECKPOINT_VERSION})",
                            cp.version
                        ),
                    });
                }
                (cp.position_ms, cp.seen.into_iter().collect())
            }
        };
        let shared = Arc::new(CwShared {
            name: name.to_string(),
            log_group: cfg.log_group.clone(),
            path,
            metrics: metrics.clone(),
            pushed: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            state: Mutex::new((position, seen)),
            last_written: Mutex::new(None),
        });
        Ok(CloudWatch {
            cfg,
            id,
            shared,
            queue,
            metrics,
        })
    }

    pub fn shared(&self) -> Arc<CwShared> {
        self.shared.clone()
    }

    /// Poll until `stop`; the final checkpoint is the daemon's to write after the drain.
    pub async fn run(self, api: Arc<dyn LogsApi>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let name = self.shared.name.clone();
        let mut backoff = BACKOFF;
        let mut seq: u64 = 0;
        let hard = AtomicBool::new(false);
        loop {
            // Cancelling a poll is safe: the checkpoint is only written once the engine
            // has processed every batch handed over.
            let polled = tokio::select! {
                r = self.poll(api.as_ref(), &mut seq, &hard) => r,
                _ = stop.changed() => return,
            };
            let wait = match polled {
                Ok(n) => {
                    backoff.reset();
                    if n > 0 {
                        tracing::debug!(source = %name, events = n, "fetched events");
                    }
                    Duration::from_secs(self.cfg.poll_secs)
                }
                Err(e) => {
                    let wait = backoff.fail(0);
                    tracing::warn!(source = %name, error = %e, backoff_secs = wait.as_secs(), "cloudwatch call failed: backing off");
                    wait
                }
            };
            let _ = self.shared.write_checkpoint();
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// One poll: every page from `position - overlap`; returns the new events handed over.
    pub async fn poll(
        &self,
        api: &dyn LogsApi,
        seq: &mut u64,
        hard: &AtomicBool,
    ) -> Result<usize, ApiError> {
        let name = self.shared.name.as_str();
        let overlap_ms = self.cfg.overlap_secs as i64 * 1000;
        let start = {
            let st = lock(&self.shared.state);
            (st.0 - overlap_ms).max(0)
        };
        let mut token: Option<String> = None;
        let mut fresh = 0usize;
        loop {
            let page = match api
                .filter(FilterRequest {
                    start_ms: start,
                    next_token: token.clone(),
                    limit: self.cfg.page_size,
                })
                .await
            {
                Ok(p) => {
                    self.metrics
                        .api_calls
                        .with_label_values(&[name, ApiOutcome::Ok.as_str()])
                        .inc();
                    p
                }
                Err(e) => {
                    let outcome = match e {
                        ApiError::Throttled(_) => ApiOutcome::Throttled,
                        ApiError::Other(_) => ApiOutcome::Error,
                    };
                    self.metrics
                        .api_calls
                        .with_label_values(&[name, outcome.as_str()])
                        .inc();
                    return Err(e);
                }
            };
            let mut data = Vec::new();
            let mut max_ts = i64::MIN;
            {
                let mut st = lock(&self.shared.state);
                for ev in &page.events {
                    if st.1.contains_key(&ev.id) {
                        continue;
                    }
                    st.1.insert(ev.id.clone(), ev.timestamp_ms);
                    max_ts = max_ts.max(ev.timestamp_ms);
                    let line = unwrap_envelope(&ev.message);
                    self.metrics
                        .bytes
                        .with_label_values(&[name])
                        .inc_by(line.len() as u64 + 1);
                    data.extend_from_slice(line.as_bytes());
                    data.push(b'\n');
                    fresh += 1;
                }
            }
            if !data.is_empty() {
                *seq += 1;
                self.shared.pushed.store(*seq, Ordering::Relaxed);
                let batch = Batch {
                    source: self.id,
                    data,
                    commit: Some(Commit {
                        file: FileKey { dev: 0, ino: 0 },
                        offset: *seq,
                    }),
                };
                // CloudWatch keeps the events: wait for room rather than spill.
                let queue = self.queue.clone();
                let pushed = tokio::task::spawn_blocking(move || queue.push_wait(batch, &|| false))
                    .await
                    .unwrap_or(false);
                if !pushed || hard.load(Ordering::Relaxed) {
                    return Ok(fresh);
                }
                let mut st = lock(&self.shared.state);
                st.0 = st.0.max(max_ts);
            }
            match page.next_token {
                Some(t) if token.as_deref() != Some(t.as_str()) => token = Some(t),
                _ => break,
            }
        }
        // Forget ids that fell out of the overlap window (and bound the set).
        let mut st = lock(&self.shared.state);
        let floor = st.0 - overlap_ms;
        st.1.retain(|_, ts| *ts >= floor);
        if st.1.len() > MAX_SEEN {
            let mut v: Vec<(String, i64)> = st.1.drain().collect();
            v.sort_by_key(|(_, ts)| std::cmp::Reverse(*ts));
            v.truncate(MAX_SEEN);
            st.1 = v.into_iter().collect();
            tracing::warn!(source = %name, kept = MAX_SEEN, "too many events in the overlap window: kept the newest ids");
        }
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::queue::{Pop, QueueSettings};

    /// A fake API: a fixed list of events served in pages, after some throttled calls.
    struct Fake {
        events: Mutex<Vec<LogEvent>>,
        throttle: AtomicU64,
        calls: Mutex<Vec<FilterRequest>>,
    }

    impl LogsApi for Fake {
        fn filter(&self, req: FilterRequest) -> ApiFuture<'_> {
            Box::pin(async move {
                lock(&self.calls).push(req.clone());
                if self.throttle.load(Ordering::Relaxed) > 0 {
                    self.throttle.fetch_sub(1, Ordering::Relaxed);
                    return Err(ApiError::Throttled("ThrottlingException".into()));
                }
                let all: Vec<LogEvent> = lock(&self.events)
                    .iter()
                    .filter(|e| e.timestamp_ms >= req.start_ms)
                    .cloned()
                    .collect();
                let from: usize = req.next_token.as_deref().map_or(0, |t| t.parse().unwrap());
                let to = (from + 2).min(all.len());
                Ok(FilterPage {
                    events: all[from..to].to_vec(),
                    next_token: (to < all.len()).then(|| to.to_string()),
                })
            })
        }
    }

    fn ev(i: i64) -> LogEvent {
        LogEvent {
            id: format!("e{i}"),
            timestamp_ms: 1_000_000 + i * 1000,
            message: format!("{{\"type\":\"response\",\"n\":{i}}}\n"),
        }
    }

    fn lines(q: &Queue) -> Vec<String> {
        let mut out = Vec::new();
        while let Pop::Batch(b) = q.pop(Duration::from_millis(1)) {
            out.extend(
                String::from_utf8(b.data)
                    .unwrap()
                    .lines()
                    .map(str::to_string),
            );
        }
        out
    }

    #[tokio::test]
    async fn pages_dedups_across_polls_and_counts_throttling() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::new());
        let q = Arc::new(
            Queue::new(
                &QueueSettings {
                    memory_bytes: 1 << 20,
                    spool_dir: dir.path().join("spool"),
                    max_disk_bytes: 1 << 20,
                    segment_bytes: 1 << 20,
                },
                &["cw".into()],
                m.clone(),
            )
            .unwrap(),
        );
        let cfg = CloudWatchSource {
            log_group: "/vault/audit".into(),
            log_stream_prefix: None,
            filter_pattern: None,
            region: None,
            endpoint: None,
            checkpoint_dir: dir.path().join("state"),
            poll_secs: 1,
            start_time_ms: Some(0),
            overlap_secs: 10,
            page_size: None,
        };
        let cw = CloudWatch::new(cfg.clone(), "cw", 0, q.clone(), m.clone()).unwrap();
        let fake = Fake {
            events: Mutex::new((0..5).map(ev).collect()),
            throttle: AtomicU64::new(2),
            calls: Mutex::new(Vec::new()),
        };
        let hard = AtomicBool::new(false);
        let mut seq = 0;
        assert!(matches!(
            cw.poll(&fake, &mut seq, &hard).await,
            Err(ApiError::Throttled(_))
        ));
        assert!(cw.poll(&fake, &mut seq, &hard).await.is_err());
        assert_eq!(cw.poll(&fake, &mut seq, &hard).await.unwrap(), 5);
        assert_eq!(m.api_calls.with_label_values(&["cw", "throttled"]).get(), 2);
        assert_eq!(
            m.api_calls.with_label_values(&["cw", "ok"]).get(),
            3,
            "three pages"
        );
        // A late event inside the overlap window and the old ones again: only the new one.
        lock(&fake.events).push(ev(5));
        lock(&fake.events).push(LogEvent {
            id: "late".into(),
            timestamp_ms: 1_000_000 + 3500,
            message: "{\"log\":\"{\\\"type\\\":\\\"response\\\",\\\"n\\\":\\\"late\\\"}\\n\",\"stream\":\"stdout\"}".into(),
        });
        assert_eq!(cw.poll(&fake, &mut seq, &hard).await.unwrap(), 2);
        let got = lines(&q);
        assert_eq!(got.len(), 7, "{got:?}");
        assert_eq!(
            got[6], "{\"type\":\"response\",\"n\":\"late\"}",
            "envelope unwrapped"
        );
        let last = lock(&fake.calls).last().cloned().unwrap();
        assert_eq!(
            last.start_ms,
            1_000_000 + 4000 - 10_000,
            "position - overlap"
        );
        // The checkpoint waits for the engine, then round-trips.
        assert!(!cw.shared.write_checkpoint().unwrap(), "not processed yet");
        cw.shared.commit(Commit {
            file: FileKey { dev: 0, ino: 0 },
            offset: seq,
        });
        assert!(cw.shared.write_checkpoint().unwrap());
        let again = CloudWatch::new(cfg, "cw", 0, q.clone(), m).unwrap();
        assert_eq!(
            again.poll(&fake, &mut 0, &hard).await.unwrap(),
            0,
            "nothing twice after a restart"
        );
    }
}
