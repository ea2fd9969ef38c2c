//! The daemon (`auditwatch run`): sources → ingest queue → engine thread → alerts.
//!
//! Shape: a small tokio runtime does the I/O (socket sources, the HTTP endpoint, signals);
//! file sources read on their own threads; the engine is synchronous and runs on its own
//! thread fed by the bounded [`crate::ingest::queue::Queue`] (which spills to disk instead of ever
//! making a socket peer wait), through a parse thread that reads each batch ahead. Config
//! and rules are validated before this module is entered, so nothing is bound with a bad
//! config. [`config`] holds the daemon's whole configuration: the detection config the
//! engine sees, plus the server, the sources, the sinks and the spool.
//!
//! Signals: SIGHUP reloads config and rules atomically (a bad set is rejected and logged,
//! the running one keeps going, detection state survives) and reopens the alert file;
//! SIGINT/SIGTERM drain: stop accepting, read what connections and files already hold,
//! let the engine process everything queued (spool included), flush alerts, write the
//! file checkpoints, and exit within `server.drain_timeout_secs`.

pub mod auth;
pub mod config;
pub mod engine_thread;
pub mod http;
pub mod kafka;
pub mod state;
pub mod web;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

use crate::ingest::batch::SourceId;
use crate::ingest::SpoolSettings;
use crate::metrics::{EntryType, Metrics, ReloadOutcome};
use crate::pipeline::Pipeline;
use crate::rules::RuleSet;
use crate::sink::Sinks;
use crate::source::cloudwatch::{CloudWatch, CwError, SdkLogs};
use crate::source::settings::SourceKind;
use crate::source::socket::{Bound, SourceCtx};
use crate::source::tail::{Tail, TailError};
use crate::yaml::Problem;

use crate::ingest::queue::{Queue, QueueSettings};
use config::DaemonConfig;
use engine_thread::{Committer, Control, EngineThread, SourceInfo};

/// What `auditwatch run` hands the daemon: validated settings and where they came from
/// (for reloads).
pub struct Options {
    pub config_path: Option<PathBuf>,
    pub rules_path: Option<PathBuf>,
    pub cfg: Arc<DaemonConfig>,
    pub rules: Arc<RuleSet>,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("no sources are configured")]
    NoSources,
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot bind {what} on {address}: {source}")]
    Bind {
        what: String,
        address: String,
        source: std::io::Error,
    },
    #[error("file source `{name}`: {source}")]
    Tail { name: String, source: TailError },
    #[error("cannot set up the spool in {dir}: {source}")]
    Spool {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
    #[error("cloudwatch source `{name}`: {source}")]
    CloudWatch { name: String, source: CwError },
    #[error("kafka source `{name}`: {message}")]
    Kafka { name: String, message: String },
    #[error("drain did not finish within {0}s: lines still queued were not processed")]
    DrainTimeout(u64),
}

/// Load and validate config and rules (the same checks as start-up); every problem.
pub fn load(
    config_path: Option<&PathBuf>,
    rules_path: Option<&PathBuf>,
) -> Result<(Arc<DaemonConfig>, Arc<RuleSet>), Vec<Problem>> {
    let cfg = match config_path {
        None => Ok(DaemonConfig::default()),
        Some(p) => DaemonConfig::load(p),
    };
    let rules = match rules_path {
        None => Ok(RuleSet::embedded()),
        Some(p) => RuleSet::load(p),
    };
    match (cfg, rules) {
        (Ok(c), Ok(r)) => {
            let problems = r.problems_with(&c.detection);
            if problems.is_empty() {
                Ok((Arc::new(c), Arc::new(r)))
            } else {
                Err(problems)
            }
        }
        (Err(mut a), Err(mut b)) => {
            a.append(&mut b);
            Err(a)
        }
        (Err(a), _) | (_, Err(a)) => Err(a),
    }
}

fn private_spool_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "auditwatch-spool-{}-{nanos:08x}",
        std::process::id()
    ))
}

/// The sinks of the config, their delivery ledgers in `state.dir`, and the alert series of
/// every rule's category at every severity (a rule's severity_when and allow-lists raise or
/// lower it) at 0. Mail shows times in the business-hours zone (and UTC).
fn start_sinks(opts: &Options, metrics: &Arc<Metrics>) -> Result<Sinks, DaemonError> {
    let cfg = &opts.cfg;
    let mut settings = cfg.sinks.clone();
    settings.ledger_dir = cfg.state.dir.clone();
    settings.email.time_zone = cfg.detection.business_hours.time_zone_name.clone();
    let sinks = Sinks::start(&settings, metrics.clone())?;
    metrics.init_alerts(opts.rules.rules.iter().flat_map(|r| {
        crate::alert::Severity::ALL
            .iter()
            .map(move |s| (r.category.as_str(), s.as_str()))
    }));
    Ok(sinks)
}

/// Serve the HTTP endpoint (metrics, health) on `l` until `shutdown`.
fn serve_http(
    rt: &tokio::runtime::Runtime,
    l: tokio::net::TcpListener,
    health: http::Health,
    cfg: &config::DaemonConfig,
    shutdown: watch::Receiver<bool>,
) {
    let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(address = %addr, "http endpoint listening");
    rt.spawn(http::serve(
        l,
        health,
        cfg.server.web_config.clone(),
        shutdown,
    ));
}

/// SIGHUP, SIGINT and SIGTERM, installed before anything starts: a SIGTERM the moment the
/// daemon says it is running (or while it starts) drains it instead of killing it by the
/// default action.
struct Signals(std::io::Result<(Signal, Signal, Signal)>);

impl Signals {
    /// Install the handlers (inside the runtime `rt` is entered in).
    fn install() -> Signals {
        Signals((|| {
            Ok((
                signal(SignalKind::hangup())?,
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            ))
        })())
    }

    /// Block until SIGINT or SIGTERM (logged as the start of the drain), calling `on_hup`
    /// at each SIGHUP. Without handlers, say so and return at once: the daemon drains.
    fn until_stopped(self, rt: &tokio::runtime::Runtime, mut on_hup: impl FnMut()) {
        let r = rt.block_on(async {
            let (mut hup, mut int, mut term) = self.0?;
            loop {
                tokio::select! {
                    _ = hup.recv() => on_hup(),
                    _ = int.recv() => { tracing::info!(signal = "SIGINT", "draining"); break; }
                    _ = term.recv() => { tracing::info!(signal = "SIGTERM", "draining"); break; }
                }
            }
            Ok::<_, std::io::Error>(())
        });
        if let Err(e) = r {
            tracing::error!(error = %e, "cannot install signal handlers: shutting down");
        }
    }
}

/// Run until SIGINT/SIGTERM. Returns after the drain.
pub fn run(opts: Options) -> Result<(), DaemonError> {
    let cfg = opts.cfg.clone();
    if cfg.sources.is_empty() {
        return Err(DaemonError::NoSources);
    }
    for w in cfg.exposure_warnings() {
        tracing::warn!("{w}");
    }
    let metrics = Arc::new(Metrics::new());
    let names: Vec<String> = cfg.sources.iter().map(|s| s.name.clone()).collect();
    for s in &cfg.sources {
        let series = match s.kind {
            SourceKind::Socket(_) => crate::metrics::SourceSeries::Socket,
            SourceKind::File(_) => crate::metrics::SourceSeries::File,
            SourceKind::CloudWatch(_) => crate::metrics::SourceSeries::Api,
            SourceKind::Kafka(_) => crate::metrics::SourceSeries::Kafka,
        };
        metrics.init_source(&s.name, series);
    }
    // A kafka source runs alone (config validation says so), with an engine per partition.
    if let Some((name, k)) = cfg.sources.iter().find_map(|s| match &s.kind {
        SourceKind::Kafka(k) => Some((s.name.as_str(), k)),
        _ => None,
    }) {
        return kafka::run(&opts, metrics, name, k);
    }
    let (spool_dir, private_spool) = match &cfg.spool.dir {
        Some(d) => (d.clone(), false),
        None => (private_spool_dir(), true),
    };
    let SpoolSettings {
        memory_bytes,
        max_disk_bytes,
        segment_bytes,
        ..
    } = cfg.spool.clone();
    let queue = Arc::new(
        Queue::new(
            &QueueSettings {
                memory_bytes,
                spool_dir: spool_dir.clone(),
                max_disk_bytes,
                segment_bytes,
            },
            &names,
            metrics.clone(),
        )
        .map_err(|e| DaemonError::Spool {
            dir: spool_dir.clone(),
            source: e,
        })?,
    );
    let result = run_with_queue(&opts, metrics, queue, &names);
    if private_spool {
        let _ = std::fs::remove_dir_all(&spool_dir);
    }
    result
}

fn run_with_queue(
    opts: &Options,
    metrics: Arc<Metrics>,
    queue: Arc<Queue>,
    names: &[String],
) -> Result<(), DaemonError> {
    let cfg = opts.cfg.clone();
    // The saved state first: its source checkpoints replace the sources' own before they
    // are opened.
    let saved = restore_sources(&cfg, &metrics);
    let sinks = start_sinks(opts, &metrics)?;
    let max_line = cfg.detection.parse.max_line_bytes as usize;
    let checkpoint_every = Duration::from_secs(cfg.server.checkpoint_interval_secs);

    // File sources first: a bad checkpoint is reported before anything is bound.
    let mut tails: Vec<(usize, Tail)> = Vec::new();
    let mut sources_info: Vec<SourceInfo> = names
        .iter()
        .map(|n| SourceInfo {
            name: n.clone(),
            committer: None,
        })
        .collect();
    for (i, s) in cfg.sources.iter().enumerate() {
        if let SourceKind::File(f) = &s.kind {
            let tail = Tail::new(
                f.clone(),
                &s.name,
                i as SourceId,
                queue.clone(),
                metrics.clone(),
                max_line,
                checkpoint_every,
            )
            .map_err(|e| DaemonError::Tail {
                name: s.name.clone(),
                source: e,
            })?;
            sources_info[i].committer = Some(Committer::Tail(tail.shared()));
            tails.push((i, tail));
        }
    }
    let mut clouds: Vec<(usize, CloudWatch)> = Vec::new();
    for (i, s) in cfg.sources.iter().enumerate() {
        if let SourceKind::CloudWatch(c) = &s.kind {
            let cw = CloudWatch::new(
                c.clone(),
                &s.name,
                i as SourceId,
                queue.clone(),
                metrics.clone(),
            )
            .map_err(|e| DaemonError::CloudWatch {
                name: s.name.clone(),
                source: e,
            })?;
            sources_info[i].committer = Some(Committer::CloudWatch(cw.shared()));
            clouds.push((i, cw));
        }
    }
    let committers: Vec<Committer> = sources_info
        .iter()
        .filter_map(|s| s.committer.clone())
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("auditwatch-io")
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let ready = Arc::new(AtomicBool::new(false));
    let heartbeat = Arc::new(AtomicU64::new(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    ));

    // Bind everything before starting anything.
    let bound =
        rt.block_on(async {
            let http =
                match cfg.server.listen {
                    Some(a) => Some(tokio::net::TcpListener::bind(a).await.map_err(|e| {
                        DaemonError::Bind {
                            what: "the http endpoint".into(),
                            address: a.to_string(),
                            source: e,
                        }
                    })?),
                    None => None,
                };
            let mut sockets = Vec::new();
            for (i, s) in cfg.sources.iter().enumerate() {
                if let SourceKind::Socket(sc) = &s.kind {
                    let b = Bound::bind(sc).await.map_err(|e| DaemonError::Bind {
                        what: format!("source `{}`", s.name),
                        address: format!("{:?}", sc.listen),
                        source: e,
                    })?;
                    sockets.push((i, sc.clone(), b));
                }
            }
            Ok::<_, DaemonError>((http, sockets))
        });
    let (http, sockets) = bound?;

    // The engine thread.
    let (control_tx, control_rx) = mpsc::channel::<Control>();
    let mut pipeline = Pipeline::new(cfg.detection.clone(), opts.rules.clone());
    pipeline.set_time_range(None, None);
    if let Some(s) = saved {
        let started = Instant::now();
        let r = pipeline.restore_state(s);
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            rules_kept = r.rules_kept,
            rules_new = ?r.rules_new,
            rules_dropped = ?r.rules_dropped,
            "detection state restored"
        );
    }
    let state = cfg.state.dir.as_ref().map(|d| {
        engine_thread::StateKeeper::new(
            state::path_in(d),
            Duration::from_secs(cfg.state.interval_secs),
        )
    });
    let tick = (cfg.server.tick_secs > 0).then(|| Duration::from_secs(cfg.server.tick_secs));
    let engine = EngineThread {
        pipeline,
        queue: queue.clone(),
        control: control_rx,
        sinks,
        metrics: metrics.clone(),
        sources: sources_info,
        tick,
        heartbeat: heartbeat.clone(),
        state,
    };
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("auditwatch-engine".into())
        .spawn(move || {
            let report = engine.run();
            let _ = done_tx.send(report);
        })
        .map_err(DaemonError::Runtime)?;

    // Sources.
    let mut socket_tasks = Vec::new();
    let _guard = rt.enter();
    // Signal handlers before anything starts: a SIGTERM the moment the daemon says it is
    // running (or while it starts) drains it instead of killing it by the default action.
    let handlers = Signals::install();
    if let Some(l) = http {
        let h = http::Health {
            metrics: metrics.clone(),
            ready: ready.clone(),
            heartbeat: heartbeat.clone(),
        };
        serve_http(&rt, l, h, &cfg, shutdown_rx.clone());
    }
    for (i, sc, b) in sockets {
        let name = names[i].clone();
        tracing::info!(source = %name, address = %b.describe(), "source listening");
        let ctx = SourceCtx {
            id: i as SourceId,
            name: Arc::from(name.as_str()),
            queue: queue.clone(),
            metrics: metrics.clone(),
            max_line,
        };
        socket_tasks.push(rt.spawn(b.run(sc, ctx, shutdown_rx.clone())));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let hard_stop = Arc::new(AtomicBool::new(false));
    let mut tail_threads = Vec::new();
    for (i, t) in tails {
        let (stop, hard) = (stop.clone(), hard_stop.clone());
        tracing::info!(source = %names[i], "file source started");
        let h = std::thread::Builder::new()
            .name(format!("auditwatch-tail-{i}"))
            .spawn(move || t.run(stop, hard))
            .map_err(DaemonError::Runtime)?;
        tail_threads.push(h);
    }
    for (i, cw) in clouds {
        tracing::info!(source = %names[i], "cloudwatch source started");
        let c = match &cfg.sources[i].kind {
            SourceKind::CloudWatch(c) => c.clone(),
            _ => unreachable!("collected from cloudwatch sources"),
        };
        let stop_rx = shutdown_rx.clone();
        socket_tasks.push(rt.spawn(async move {
            let api = Arc::new(SdkLogs::new(&c).await);
            cw.run(api, stop_rx).await;
        }));
    }
    ready.store(true, Ordering::Relaxed);
    metrics.ready.set(1);
    tracing::info!(
        sources = names.len(),
        rules = opts.rules.rules.len(),
        "auditwatch running"
    );

    // Signals.
    handlers.until_stopped(&rt, || reload(opts, &metrics, &control_tx));

    // Drain.
    ready.store(false, Ordering::Relaxed);
    metrics.ready.set(0);
    let drain_secs = cfg.server.drain_timeout_secs;
    let deadline = Instant::now() + Duration::from_secs(drain_secs);
    let _ = shutdown_tx.send(true);
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in socket_tasks {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = tokio::time::timeout(left, t).await;
        }
    });
    for h in tail_threads {
        // A tail thread still reading at the deadline is left: the queue closes anyway.
        let _ = crate::util::thread::join_until(h, deadline);
    }
    queue.close();
    let left = deadline.saturating_duration_since(Instant::now());
    let outcome = match done_rx.recv_timeout(left) {
        Ok(report) => {
            tracing::info!(
                lines = report.lines,
                alerts = report.alerts,
                "engine drained"
            );
            if let Some(s) = report.sinks {
                // The sinks finish what they hold within the drain deadline (at least 1 s).
                s.close(deadline.max(Instant::now() + Duration::from_secs(1)));
            }
            // The last state checkpoint, once the sinks are done with what they held.
            if let Some((pipeline, sources, path)) = &report.last_state {
                match engine_thread::source_images(sources) {
                    Some(images) => {
                        engine_thread::write_state(path, pipeline, &images, &metrics);
                    }
                    None => tracing::warn!(
                        "a source is not at rest: the last state checkpoint stays the one written before"
                    ),
                }
            }
            for n in names {
                let entries: u64 = EntryType::ALL
                    .iter()
                    .map(|t| {
                        metrics
                            .events
                            .with_label_values(&[n.as_str(), t.as_str()])
                            .get()
                    })
                    .sum();
                tracing::info!(source = %n, entries, "source totals");
            }
            Ok(())
        }
        Err(_) => {
            let (mem, disk) = queue.backlog();
            tracing::error!(
                memory_bytes = mem,
                spool_bytes = disk,
                "drain timed out: exiting with lines unprocessed"
            );
            hard_stop.store(true, Ordering::Relaxed);
            queue.abandon();
            Err(DaemonError::DrainTimeout(drain_secs))
        }
    };
    // Checkpoints name only what the engine processed, so they are right either way.
    for c in &committers {
        c.write_checkpoint();
    }
    drop(_guard);
    rt.shutdown_timeout(Duration::from_secs(1));
    outcome
}

/// Read the saved state (`state.dir`), if any: each source checkpoint it holds replaces
/// that source's own checkpoint file, so the source resumes where the saved engine state
/// stops; the engines' part is returned to be restored. A state that cannot be taken is
/// set aside with the reason logged and counted, and the start goes on afresh.
fn restore_sources(
    cfg: &DaemonConfig,
    metrics: &Metrics,
) -> Option<crate::pipeline::PipelineStateIn> {
    use crate::metrics::RestoreOutcome;
    let dir = cfg.state.dir.as_ref()?;
    let path = state::path_in(dir);
    let outcome = |o: RestoreOutcome| {
        metrics
            .state_restores
            .with_label_values(&[o.as_str()])
            .inc()
    };
    let started = Instant::now();
    let saved = match state::read(&path) {
        Ok(Some(s)) => s,
        Ok(None) => {
            tracing::info!(path = %path.display(), "no saved state: detection starts afresh");
            outcome(RestoreOutcome::None);
            return None;
        }
        Err(why) => {
            let aside = state::set_aside(&path)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| format!("(cannot set it aside: {e})"));
            tracing::error!(path = %path.display(), reason = %why, set_aside_as = %aside,
                "the saved state cannot be taken: detection starts afresh, sources resume from their own checkpoints");
            outcome(RestoreOutcome::Discarded);
            return None;
        }
    };
    for img in &saved.sources {
        let known = cfg.sources.iter().any(|s| s.name == img.name);
        let expected = cfg.sources.iter().find_map(|s| match &s.kind {
            SourceKind::File(f) if s.name == img.name => {
                Some(crate::source::tail::checkpoint_path(f, &s.name))
            }
            SourceKind::CloudWatch(c) if s.name == img.name => {
                Some(c.checkpoint_dir.join(format!("{}.checkpoint.json", s.name)))
            }
            _ => None,
        });
        match expected {
            Some(p) if p == img.path => {
                if let Err(e) = crate::fsutil::write_durably(&p, &img.bytes) {
                    tracing::error!(source = %img.name, path = %p.display(), error = %e,
                        "cannot put back the source checkpoint of the saved state; the source resumes from its own");
                }
            }
            _ => tracing::warn!(source = %img.name, known,
                "the saved state names a source position this config no longer has (renamed, moved or removed): not used"),
        }
    }
    tracing::info!(path = %path.display(), written_by = %saved.build,
        age_secs = (now_ms() - saved.written_unix_ms).max(0) / 1000, sources = saved.sources.len(),
        read_ms = started.elapsed().as_millis() as u64, "saved state found");
    outcome(RestoreOutcome::Restored);
    Some(saved.pipeline)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// SIGHUP: load and validate config and rules; swap them in only when all is well.
fn reload(opts: &Options, metrics: &Metrics, control: &mpsc::Sender<Control>) {
    let _ = control.send(Control::ReopenOutput);
    match load(opts.config_path.as_ref(), opts.rules_path.as_ref()) {
        Ok((cfg, rules)) => {
            let old = &opts.cfg;
            if cfg.server != old.server
                || cfg.sources != old.sources
                || cfg.sinks != old.sinks
                || cfg.spool != old.spool
                || cfg.state != old.state
            {
                tracing::warn!("server, sources, output, alertmanager, email, spool and state changes take effect at the next restart; the running ones are kept");
            }
            if cfg.detection.parse.prefix != old.detection.parse.prefix {
                tracing::warn!("a parse.prefix change takes effect at the next restart");
            }
            let n = rules.rules.len();
            if control
                .send(Control::Reload(cfg.detection.clone(), rules))
                .is_ok()
            {
                metrics
                    .reloads
                    .with_label_values(&[ReloadOutcome::Ok.as_str()])
                    .inc();
                tracing::info!(rules = n, "reload accepted");
            }
        }
        Err(problems) => {
            metrics
                .reloads
                .with_label_values(&[ReloadOutcome::Rejected.as_str()])
                .inc();
            for p in &problems {
                tracing::error!(problem = %p, "reload rejected");
            }
            tracing::error!(
                problems = problems.len(),
                "reload rejected: the running config and rules are kept"
            );
        }
    }
}
