//! Every metric the daemon exports, declared once here with its help text.
//!
//! Names follow `auditwatch_<noun>_<unit>` / `_total`. Labels come only from bounded sets:
//! `source` is a configured source name (never a peer address), `category` a rule
//! category, `severity`, `type`, `reason` and `table` fixed vocabularies. Paths, tokens,
//! accessors, addresses and users belong in alerts, never in labels. A [`Metrics`] owns
//! its own registry, so several daemons (tests) can live in one process.
//!
//! Every counter exists at zero from the start for each of its bounded label values
//! ([`Metrics::new`] for the fixed sets, [`Metrics::init_source`] and
//! [`Metrics::init_sink`] for configured sources and sinks): an alert rule on
//! `increase(...)` sees the first event, which it cannot when the series is born with it.
//! No label value is ever empty (Prometheus reads an empty value as a missing label).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};

/// The crate's version, the `version` of `auditwatch_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binary was built from (`build.rs` sets `AUDITWATCH_GIT_REVISION`;
/// a build outside a git checkout can set it in the environment), else `unknown`.
pub const REVISION: &str = match option_env!("AUDITWATCH_GIT_REVISION") {
    Some(r) if !r.is_empty() => r,
    _ => "unknown",
};

/// Buckets of `auditwatch_alert_latency_seconds`: from the triggering entry's event time to
/// the sink's delivery, which includes the audit device's transport, the engine, holding a
/// request for its response and the sink's queue and retries.
const LATENCY_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0,
];
/// Buckets of `auditwatch_sink_delivery_seconds`: from the sink taking the alert off its
/// queue to its delivery (retries included).
const DELIVERY_BUCKETS: [f64; 13] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0, 3600.0,
];

pub struct Metrics {
    registry: Registry,
    /// Audit entries read, by source and entry type ([`EntryType`]).
    pub events: IntCounterVec,
    /// Lines that could not be read, by source and reason.
    pub parse_errors: IntCounterVec,
    /// Alerts raised, by category and severity.
    pub alerts: IntCounterVec,
    /// Event time of the newest entry seen per source (Unix seconds).
    pub last_event_timestamp: prometheus::GaugeVec,
    /// Bytes received per source.
    pub bytes: IntCounterVec,
    /// Open connections per socket source.
    pub connections: IntGaugeVec,
    /// Connections by outcome ([`ConnectionEvent`]).
    pub connection_events: IntCounterVec,
    /// Bytes waiting for the engine, by source and where ([`BacklogPlace`]).
    pub backlog_bytes: IntGaugeVec,
    /// Bytes written to the disk spool because the engine was behind.
    pub spilled_bytes: IntCounterVec,
    /// Lines dropped, by source and reason ([`LineDrop`]).
    pub dropped_lines: IntCounterVec,
    /// Bytes of input known lost before they were read, by source and reason
    /// ([`LineDrop`]: `rotated_away`, `file_gone`); a lower bound.
    pub lost_bytes: IntCounterVec,
    /// Size of the on-disk spool.
    pub spool_bytes: IntGauge,
    /// Entries of each bounded engine state table.
    pub state_table_size: IntGaugeVec,
    /// Engine decisions that are not alerts, by kind ([`EngineEvent`]).
    pub engine_events: IntCounterVec,
    /// Config and rule reloads by outcome ([`ReloadOutcome`]).
    pub reloads: IntCounterVec,
    /// File sources: rotations seen, by kind ([`RotationKind`]).
    pub rotations: IntCounterVec,
    /// Checkpoint writes by source and outcome ([`WriteOutcome`]).
    pub checkpoint_writes: IntCounterVec,
    /// Writes of the daemon's state checkpoint (`state.dir`) by outcome ([`WriteOutcome`]).
    pub state_writes: IntCounterVec,
    /// Size of the last state checkpoint written, in bytes.
    pub state_bytes: IntGauge,
    /// How long the last state checkpoint took to take and write, in seconds.
    pub state_write_seconds: Gauge,
    /// When the last state checkpoint was written (Unix seconds).
    pub state_written_timestamp: IntGauge,
    /// What the start made of the saved state ([`RestoreOutcome`]).
    pub state_restores: IntCounterVec,
    /// CloudWatch API calls by source and outcome ([`ApiOutcome`]).
    pub api_calls: IntCounterVec,
    /// Alerts by tenant (capped: `other` beyond `output.tenant_label_cap`, `none` for
    /// platform-wide findings), category, severity and `evidence.kind`.
    pub tenant_alerts: IntCounterVec,
    /// Alerts a sink delivered ([`SinkName`]: `jsonl` written, `alertmanager` accepted,
    /// `email` accepted by the SMTP server).
    pub sink_delivered: IntCounterVec,
    /// Alerts a sink gave up on, by reason ([`SinkDrop`]).
    pub sink_dropped: IntCounterVec,
    /// Failed delivery attempts (each is retried unless counted as dropped).
    pub sink_failures: IntCounterVec,
    /// Alerts waiting in a sink (its queue, retries, the email outbox and digests).
    pub sink_backlog: IntGaugeVec,
    /// Alerts a sink did not pass on by design, by reason ([`SinkSuppress`]).
    pub sink_suppressed: IntCounterVec,
    /// Emails accepted by the SMTP server, by kind ([`MailKind`]).
    pub emails_sent: IntCounterVec,
    /// Alerts that could not be written to the output.
    pub alert_write_errors: IntCounter,
    /// 1 while the daemon is ready (sources bound, engine running, not draining).
    pub ready: IntGauge,
    /// Connections and requests the HTTP endpoint refused, by reason ([`HttpRefusal`]).
    pub http_refused: IntCounterVec,
    /// Reads of a changed web config file by outcome ([`ReloadOutcome`]).
    pub http_web_config_reloads: IntCounterVec,
    /// The Kafka consumer-group source's metrics ([`KafkaMetrics`]).
    pub kafka: KafkaMetrics,
    /// From an alert's triggering entry (its event time) to its delivery, by sink.
    pub alert_latency: HistogramVec,
    /// From a sink taking an alert off its queue to delivering it, by sink.
    pub sink_delivery: HistogramVec,
    /// Constant 1, labelled with the version and git revision of the binary.
    pub build_info: IntGaugeVec,
}

// ---- label values ----
//
// Every fixed label value is written here, next to the metrics that carry it, and only
// here: dashboards and alert rules (`dashboards/`) match these exact strings, so a rename
// must be a visible, deliberate change (the test at the end lists them all).

/// A closed set of label values: the enum, its exact strings, and all of them in order.
macro_rules! label_values {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $value:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The label value, exactly as exported.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value,)+
                }
            }
        }
    };
}

label_values! {
    /// `sink` of the `auditwatch_sink_*` metrics.
    SinkName {
        Jsonl => "jsonl",
        Alertmanager => "alertmanager",
        Email => "email",
    }
}

label_values! {
    /// `reason` of `auditwatch_sink_dropped_total`: why a sink gave up on an alert.
    SinkDrop {
        /// The sink's queue stayed full for `output.queue_wait_ms`.
        QueueFull => "queue_full",
        /// The sink's thread is gone.
        SinkDown => "sink_down",
        /// The JSON lines output could not be written.
        WriteError => "write_error",
        /// Alertmanager or the SMTP server said no for good.
        Rejected => "rejected",
        /// Not delivered within `retry_for_secs`.
        Expired => "expired",
        /// Pushed out of a full retry list (`max_pending`).
        RetryFull => "retry_full",
        /// Still waiting when the drain ended.
        Shutdown => "shutdown",
        /// The email outbox could not store or read it.
        OutboxError => "outbox_error",
        /// The email outbox was at `outbox_max_bytes`.
        OutboxFull => "outbox_full",
    }
}

label_values! {
    /// `reason` of `auditwatch_sink_suppressed_total`: alerts not passed on by design.
    SinkSuppress {
        Duplicate => "duplicate",
        Suppressed => "suppressed",
        NoRecipients => "no_recipients",
        /// Delivered by this sink before a restart (its delivery ledger in `state.dir`):
        /// input processed again raised it again.
        AlreadyDelivered => "already_delivered",
    }
}

label_values! {
    /// `kind` of `auditwatch_emails_sent_total`.
    MailKind {
        Immediate => "immediate",
        Digest => "digest",
    }
}

label_values! {
    /// `type` of `auditwatch_events_total`: the audit entry's type.
    EntryType {
        Request => "request",
        Response => "response",
        Other => "other",
    }
}

label_values! {
    /// `outcome` of `auditwatch_source_connection_events_total`.
    ConnectionEvent {
        Accepted => "accepted",
        /// A peer outside the source's `allow` list: a tcp connection reset at once, or a
        /// udp datagram dropped.
        Refused => "refused",
        /// Closed to make room at `max_connections` (the connection that delivered no
        /// entry for the longest time), or over `max_partial_bytes` (the oldest partial line).
        Evicted => "evicted",
        /// Closed to make room at `max_connections_per_peer`: that peer's connection that
        /// delivered no entry for the longest time.
        EvictedPeer => "evicted_peer",
        Closed => "closed",
    }
}

label_values! {
    /// `where` of `auditwatch_backlog_bytes`.
    BacklogPlace {
        Memory => "memory",
        Spool => "spool",
    }
}

label_values! {
    /// `reason` of `auditwatch_dropped_lines_total`.
    LineDrop {
        /// An unterminated line cut by a closed connection, a truncation or a rotation.
        Fragment => "fragment",
        SpoolFull => "spool_full",
        SpoolError => "spool_error",
        SpoolCorrupt => "spool_corrupt",
        /// A checkpointed file that is gone at start, with no copy of it found: one per
        /// file (how many lines it held past the checkpoint is not known).
        FileGone => "file_gone",
        /// A file truncated (copytruncate, or by hand) before it was read to its end, with
        /// no rotated copy holding the rest: one per truncation.
        RotatedAway => "rotated_away",
    }
}

label_values! {
    /// `kind` of `auditwatch_engine_events_total`: engine decisions that are not alerts.
    EngineEvent {
        DuplicateResponse => "duplicate_response",
        TimedOutRequest => "timed_out_request",
        SuppressedAlert => "suppressed_alert",
        AllowListed => "allow_listed",
        EvictedKey => "evicted_key",
        UntimedEntry => "untimed_entry",
        DuplicateAlert => "duplicate_alert",
        SkewedEntry => "skewed_entry",
        EvictedRequest => "evicted_request",
    }
}

label_values! {
    /// `outcome` of `auditwatch_state_restores_total`.
    RestoreOutcome {
        /// The saved state was taken.
        Restored => "restored",
        /// There was none: detection starts afresh.
        None => "none",
        /// There was one, but of another format version or damaged: set aside, detection
        /// starts afresh (logged with the reason).
        Discarded => "discarded",
    }
}

label_values! {
    /// `outcome` of `auditwatch_reloads_total`.
    ReloadOutcome {
        Ok => "ok",
        Rejected => "rejected",
    }
}

label_values! {
    /// `reason` of `auditwatch_http_refused_total`.
    HttpRefusal {
        /// No `Authorization` header where basic auth is on (401).
        NoCredentials => "no_credentials",
        /// A wrong user or password, or a malformed header (401).
        BadCredentials => "bad_credentials",
        /// Too many password checks waiting for bcrypt (503).
        AuthBusy => "auth_busy",
        /// Plain HTTP sent to the TLS endpoint (400).
        NotTls => "not_tls",
        /// The TLS handshake failed (a client certificate missing or not trusted, no
        /// common version).
        TlsHandshake => "tls_handshake",
        /// The handshake and request head were not done by their deadline.
        Timeout => "timeout",
        /// Over the endpoint's connection cap: closed at once.
        ConnectionCap => "connection_cap",
        /// A request head over 16 KiB (431).
        HeadTooLarge => "head_too_large",
    }
}

label_values! {
    /// `kind` of `auditwatch_file_rotations_total`.
    RotationKind {
        Rename => "rename",
        Truncate => "truncate",
        Delete => "delete",
    }
}

label_values! {
    /// `outcome` of `auditwatch_checkpoint_writes_total`.
    WriteOutcome {
        Ok => "ok",
        Error => "error",
    }
}

impl WriteOutcome {
    pub fn of<T, E>(r: &Result<T, E>) -> WriteOutcome {
        if r.is_ok() {
            WriteOutcome::Ok
        } else {
            WriteOutcome::Error
        }
    }
}

label_values! {
    /// `outcome` of `auditwatch_source_api_calls_total`.
    ApiOutcome {
        Ok => "ok",
        Throttled => "throttled",
        Error => "error",
    }
}

impl LineDrop {
    /// Whether a source of this kind can drop lines for this reason: its series then
    /// exists from the start. Exhaustive, so a new reason must say where it happens.
    pub const fn happens_at(self, kind: SourceSeries) -> bool {
        match self {
            // The lines of every source but Kafka's wait in the queue and its spool.
            LineDrop::SpoolFull | LineDrop::SpoolError | LineDrop::SpoolCorrupt => {
                !matches!(kind, SourceSeries::Kafka)
            }
            // A line cut by a closed connection, a truncation or a rotation.
            LineDrop::Fragment => matches!(kind, SourceSeries::Socket | SourceSeries::File),
            LineDrop::FileGone | LineDrop::RotatedAway => matches!(kind, SourceSeries::File),
        }
    }

    /// Whether the input lost is measured in bytes too (`auditwatch_lost_bytes_total`).
    pub const fn loses_input(self) -> bool {
        match self {
            LineDrop::FileGone | LineDrop::RotatedAway => true,
            LineDrop::Fragment
            | LineDrop::SpoolFull
            | LineDrop::SpoolError
            | LineDrop::SpoolCorrupt => false,
        }
    }
}

/// What kind of source a configured source is: which per-source series it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceSeries {
    /// Vault's socket device: connections, fragments of closed connections.
    Socket,
    /// Vault's file device: rotations, checkpoints, input lost to truncation or deletion.
    File,
    /// A remote log API (CloudWatch): calls, checkpoints.
    Api,
    /// A Kafka consumer group: records go from the partition to its engine, no spool
    /// (the broker keeps them); its own series are [`KafkaMetrics`]'.
    Kafka,
}

/// `source` of the spooled lines of a source that is no longer configured (only ever seen
/// when an earlier run left such lines in the spool).
pub const SOURCE_RESTORED: &str = "restored";
/// `tenant` of `auditwatch_tenant_alerts_total` for a platform-wide alert (no tenant).
pub const TENANT_NONE: &str = "none";
/// `tenant` of `auditwatch_tenant_alerts_total` past `output.tenant_label_cap`.
pub const TENANT_OTHER: &str = "other";
/// `kind` of `auditwatch_tenant_alerts_total` for an alert whose evidence names no kind.
pub const KIND_NONE: &str = "none";

/// Names of the state tables in `auditwatch_state_table_size`.
pub const TABLES: [&str; 8] = [
    "pending_requests",
    "decided_requests",
    "count_keys",
    "distinct_keys",
    "cadence_keys",
    "cadence_timers",
    "suppression_keys",
    "token_keys",
];

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
            r.register(Box::new(c.clone()))
                .expect("metric names are unique");
            c
        }
        let counter = |name: &str, help: &str, labels: &[&str]| {
            reg(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            reg(
                &registry,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let m = Metrics {
            events: counter(
                "auditwatch_events_total",
                "Audit entries read, by source and entry type.",
                &["source", "type"],
            ),
            parse_errors: counter(
                "auditwatch_parse_errors_total",
                "Lines that could not be read as audit entries, by source and reason.",
                &["source", "reason"],
            ),
            alerts: counter(
                "auditwatch_alerts_total",
                "Alerts raised, by category and severity.",
                &["category", "severity"],
            ),
            last_event_timestamp: reg(
                &registry,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "auditwatch_last_event_timestamp_seconds",
                        "Event time of the newest audit entry read per source (Unix seconds).",
                    ),
                    &["source"],
                )
                .expect("valid metric"),
            ),
            bytes: counter(
                "auditwatch_source_bytes_total",
                "Bytes received per source.",
                &["source"],
            ),
            connections: gauge(
                "auditwatch_source_connections",
                "Open connections per socket source.",
                &["source"],
            ),
            connection_events: counter(
                "auditwatch_source_connection_events_total",
                "Socket connections by outcome (accepted; refused: outside allow; evicted: at max_connections or over max_partial_bytes; evicted_peer: at max_connections_per_peer; closed).",
                &["source", "outcome"],
            ),
            backlog_bytes: gauge(
                "auditwatch_backlog_bytes",
                "Bytes read but not yet processed by the engine, by source and where they wait.",
                &["source", "where"],
            ),
            spilled_bytes: counter(
                "auditwatch_spilled_bytes_total",
                "Bytes written to the disk spool because the engine was behind.",
                &["source"],
            ),
            dropped_lines: counter(
                "auditwatch_dropped_lines_total",
                "Lines dropped, by source and reason.",
                &["source", "reason"],
            ),
            lost_bytes: counter(
                "auditwatch_lost_bytes_total",
                "Bytes of input known lost before they were read (a file truncated or gone with no copy), by source and reason; a lower bound.",
                &["source", "reason"],
            ),
            spool_bytes: reg(
                &registry,
                IntGauge::new("auditwatch_spool_bytes", "Size of the on-disk spool.")
                    .expect("valid metric"),
            ),
            state_table_size: gauge(
                "auditwatch_state_table_size",
                "Entries in each bounded engine state table.",
                &["table"],
            ),
            engine_events: counter(
                "auditwatch_engine_events_total",
                "Engine decisions other than alerts (duplicates, timeouts, suppressions, evictions).",
                &["kind"],
            ),
            reloads: counter(
                "auditwatch_reloads_total",
                "Config and rule reloads (SIGHUP), by outcome.",
                &["outcome"],
            ),
            rotations: counter(
                "auditwatch_file_rotations_total",
                "File source rotations seen, by kind (rename, truncate, delete).",
                &["source", "kind"],
            ),
            checkpoint_writes: counter(
                "auditwatch_checkpoint_writes_total",
                "Checkpoint writes by source and outcome.",
                &["source", "outcome"],
            ),
            state_writes: counter(
                "auditwatch_state_writes_total",
                "Writes of the state checkpoint (engine state with source positions) by outcome.",
                &["outcome"],
            ),
            state_bytes: reg(
                &registry,
                IntGauge::new(
                    "auditwatch_state_bytes",
                    "Size of the last state checkpoint written, in bytes.",
                )
                .expect("valid metric"),
            ),
            state_write_seconds: reg(
                &registry,
                Gauge::new(
                    "auditwatch_state_write_seconds",
                    "How long the last state checkpoint took to take and write, in seconds.",
                )
                .expect("valid metric"),
            ),
            state_written_timestamp: reg(
                &registry,
                IntGauge::new(
                    "auditwatch_state_written_timestamp_seconds",
                    "When the last state checkpoint was written (Unix seconds).",
                )
                .expect("valid metric"),
            ),
            state_restores: counter(
                "auditwatch_state_restores_total",
                "What the start made of the saved state: restored, none, discarded.",
                &["outcome"],
            ),
            api_calls: counter(
                "auditwatch_source_api_calls_total",
                "Calls to a remote log API by source and outcome (ok, throttled, error).",
                &["source", "outcome"],
            ),
            tenant_alerts: counter(
                "auditwatch_tenant_alerts_total",
                "Alerts by tenant (bounded: `other` past the cap, `none` for platform-wide), category, severity and kind.",
                &["tenant", "category", "severity", "kind"],
            ),
            sink_delivered: counter(
                "auditwatch_sink_delivered_total",
                "Alerts a sink delivered (written, accepted by Alertmanager, accepted by the SMTP server).",
                &["sink"],
            ),
            sink_dropped: counter(
                "auditwatch_sink_dropped_total",
                "Alerts a sink gave up on, by reason.",
                &["sink", "reason"],
            ),
            sink_failures: counter(
                "auditwatch_sink_failures_total",
                "Failed delivery attempts of a sink (retried unless also counted as dropped).",
                &["sink"],
            ),
            sink_backlog: gauge(
                "auditwatch_sink_backlog",
                "Alerts waiting in a sink: its queue, retries, the email outbox and open digests.",
                &["sink"],
            ),
            sink_suppressed: counter(
                "auditwatch_sink_suppressed_total",
                "Alerts a sink did not pass on by design (duplicates, suppression windows), by reason.",
                &["sink", "reason"],
            ),
            emails_sent: counter(
                "auditwatch_emails_sent_total",
                "Emails accepted by the SMTP server, by kind (immediate, digest).",
                &["kind"],
            ),
            alert_write_errors: reg(
                &registry,
                IntCounter::new(
                    "auditwatch_alert_write_errors_total",
                    "Alerts that could not be written to the output.",
                )
                .expect("valid metric"),
            ),
            ready: reg(
                &registry,
                IntGauge::new(
                    "auditwatch_ready",
                    "1 while the daemon is ready: sources bound, engine running, not draining.",
                )
                .expect("valid metric"),
            ),
            http_refused: counter(
                "auditwatch_http_refused_total",
                "Connections and requests the HTTP endpoint refused, by reason.",
                &["reason"],
            ),
            http_web_config_reloads: counter(
                "auditwatch_http_web_config_reloads_total",
                "Reads of the HTTP endpoint's changed web config file, by outcome (a rejected one leaves the running one in use).",
                &["outcome"],
            ),
            kafka: KafkaMetrics::new(&registry),
            alert_latency: reg(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "auditwatch_alert_latency_seconds",
                        "From the event time of an alert's triggering entry to its delivery by a sink (jsonl: written; alertmanager: accepted).",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["sink"],
                )
                .expect("valid metric"),
            ),
            sink_delivery: reg(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "auditwatch_sink_delivery_seconds",
                        "From a sink taking an alert off its queue to delivering it, retries included.",
                    )
                    .buckets(DELIVERY_BUCKETS.to_vec()),
                    &["sink"],
                )
                .expect("valid metric"),
            ),
            build_info: gauge(
                "auditwatch_build_info",
                "Constant 1, labelled with the version and git revision auditwatch was built from.",
                &["version", "revision"],
            ),
            registry,
        };
        m.build_info.with_label_values(&[VERSION, REVISION]).set(1);
        // The fixed label sets that do not depend on the config, at zero from the start.
        for k in EngineEvent::ALL {
            m.engine_events.with_label_values(&[k.as_str()]);
        }
        for o in ReloadOutcome::ALL {
            m.reloads.with_label_values(&[o.as_str()]);
        }
        for o in WriteOutcome::ALL {
            m.state_writes.with_label_values(&[o.as_str()]);
        }
        for o in RestoreOutcome::ALL {
            m.state_restores.with_label_values(&[o.as_str()]);
        }
        for r in HttpRefusal::ALL {
            m.http_refused.with_label_values(&[r.as_str()]);
        }
        for o in ReloadOutcome::ALL {
            m.http_web_config_reloads.with_label_values(&[o.as_str()]);
        }
        // The process's CPU, memory, open files and start time (`process_*`), as every
        // Prometheus client library exports them. Only Linux has the collector.
        #[cfg(target_os = "linux")]
        m.registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metric names are unique");
        m
    }

    /// Create the series of a source up front, so dashboards see zeros, not gaps, and alert
    /// rules see the first event: the ones every source has, and those of its kind.
    pub fn init_source(&self, source: &str, kind: SourceSeries) {
        for t in EntryType::ALL {
            self.events.with_label_values(&[source, t.as_str()]);
        }
        for r in crate::parse::ParseError::ALL {
            self.parse_errors.with_label_values(&[source, r.as_str()]);
        }
        self.bytes.with_label_values(&[source]);
        if kind != SourceSeries::Kafka {
            for w in BacklogPlace::ALL {
                self.backlog_bytes.with_label_values(&[source, w.as_str()]);
            }
            self.spilled_bytes.with_label_values(&[source]);
        }
        for r in LineDrop::ALL.iter().filter(|r| r.happens_at(kind)) {
            self.dropped_lines.with_label_values(&[source, r.as_str()]);
            if r.loses_input() {
                self.lost_bytes.with_label_values(&[source, r.as_str()]);
            }
        }
        match kind {
            SourceSeries::Socket => {
                self.connections.with_label_values(&[source]);
                for o in ConnectionEvent::ALL {
                    self.connection_events
                        .with_label_values(&[source, o.as_str()]);
                }
            }
            SourceSeries::File => {
                for k in RotationKind::ALL {
                    self.rotations.with_label_values(&[source, k.as_str()]);
                }
                for o in WriteOutcome::ALL {
                    self.checkpoint_writes
                        .with_label_values(&[source, o.as_str()]);
                }
            }
            SourceSeries::Api => {
                for o in ApiOutcome::ALL {
                    self.api_calls.with_label_values(&[source, o.as_str()]);
                }
                for o in WriteOutcome::ALL {
                    self.checkpoint_writes
                        .with_label_values(&[source, o.as_str()]);
                }
            }
            SourceSeries::Kafka => {
                for k in RebalanceKind::ALL {
                    self.kafka.rebalances.with_label_values(&[k.as_str()]);
                }
                for o in WriteOutcome::ALL {
                    self.kafka.snapshots.with_label_values(&[o.as_str()]);
                    self.kafka.commits.with_label_values(&[o.as_str()]);
                }
            }
        }
    }

    /// Create the series of a running sink up front, at zero.
    pub fn init_sink(&self, sink: &str) {
        self.sink_backlog.with_label_values(&[sink]).set(0);
        self.sink_delivered.with_label_values(&[sink]);
        self.sink_failures.with_label_values(&[sink]);
        for r in SinkDrop::ALL {
            self.sink_dropped.with_label_values(&[sink, r.as_str()]);
        }
        for r in SinkSuppress::ALL {
            self.sink_suppressed.with_label_values(&[sink, r.as_str()]);
        }
        if sink != SinkName::Email.as_str() {
            self.alert_latency.with_label_values(&[sink]);
            self.sink_delivery.with_label_values(&[sink]);
        }
    }

    /// A sink delivered an alert whose triggering entry has event time `event_nanos` (Unix
    /// ns; 0 when unknown) and that it took off its queue `taken_for` ago.
    pub fn observe_delivery(&self, sink: &str, event_nanos: i64, taken_for: Duration) {
        self.sink_delivery
            .with_label_values(&[sink])
            .observe(taken_for.as_secs_f64());
        if event_nanos > 0 {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64);
            // An entry dated ahead of this host's clock counts as no latency.
            let secs = now.saturating_sub(event_nanos).max(0) as f64 / 1e9;
            self.alert_latency.with_label_values(&[sink]).observe(secs);
        }
    }

    /// Create the alert series of every category the rules can raise, at zero, so
    /// `increase()` sees the first alert.
    pub fn init_alerts<'a>(&self, rules: impl IntoIterator<Item = (&'a str, &'a str)>) {
        for (category, severity) in rules {
            self.alerts.with_label_values(&[category, severity]);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        let families = self.registry.gather();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = prometheus::TextEncoder::new().encode(&families, &mut buf);
        buf
    }
}

/// The Kafka consumer-group source (`kind: kafka`). `partition` is a partition number of
/// this member's assignment, the first `max_partitions` of them (the rest count as
/// `other`): bounded by the assignment, not by input.
pub struct KafkaMetrics {
    /// Records between this member's position and the partition's end, per partition.
    pub lag: IntGaugeVec,
    /// Partitions assigned to this member now.
    pub assigned: IntGauge,
    /// Rebalances this member took part in, by kind ([`RebalanceKind`]).
    pub rebalances: IntCounterVec,
    /// Partition state snapshots written to the state topic, by outcome ([`WriteOutcome`]).
    pub snapshots: IntCounterVec,
    /// Size of the last partition state snapshot written, in bytes.
    pub snapshot_bytes: IntGauge,
    /// When the last partition state snapshot was written (Unix seconds).
    pub snapshot_timestamp: IntGauge,
    /// How long the last offset commit took, in seconds.
    pub commit_seconds: Gauge,
    /// Offset commits by outcome ([`WriteOutcome`]).
    pub commits: IntCounterVec,
    /// Alerts raised again while a partition's engine caught up from its snapshot to the
    /// committed offset: delivered before the commit, not sent again.
    pub caught_up_alerts: IntCounter,
    /// Records of a keyed stream run on the partition's keyless engine: a key over 256
    /// bytes, or a partition with 64 keyed streams already.
    pub keyless_fallback: IntCounter,
}

label_values! {
    /// `kind` of `auditwatch_kafka_rebalances_total`.
    RebalanceKind {
        Assign => "assign",
        Revoke => "revoke",
    }
}

impl KafkaMetrics {
    fn new(r: &Registry) -> KafkaMetrics {
        fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
            r.register(Box::new(c.clone()))
                .expect("metric names are unique");
            c
        }
        let gauge =
            |name: &str, help: &str| reg(r, IntGauge::new(name, help).expect("valid metric"));
        KafkaMetrics {
            lag: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "auditwatch_kafka_consumer_lag",
                        "Records between this member's position and the end of each assigned partition.",
                    ),
                    &["partition"],
                )
                .expect("valid metric"),
            ),
            assigned: gauge(
                "auditwatch_kafka_assigned_partitions",
                "Partitions assigned to this member of the consumer group.",
            ),
            rebalances: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "auditwatch_kafka_rebalances_total",
                        "Rebalances of the consumer group this member took part in, by kind (assign, revoke).",
                    ),
                    &["kind"],
                )
                .expect("valid metric"),
            ),
            snapshots: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "auditwatch_kafka_snapshots_total",
                        "Partition engine state snapshots written to the state topic, by outcome.",
                    ),
                    &["outcome"],
                )
                .expect("valid metric"),
            ),
            snapshot_bytes: gauge(
                "auditwatch_kafka_snapshot_bytes",
                "Size of the last partition state snapshot written, in bytes.",
            ),
            snapshot_timestamp: gauge(
                "auditwatch_kafka_snapshot_timestamp_seconds",
                "When the last partition state snapshot was written (Unix seconds).",
            ),
            commit_seconds: reg(
                r,
                Gauge::new(
                    "auditwatch_kafka_commit_seconds",
                    "How long the last offset commit took, in seconds.",
                )
                .expect("valid metric"),
            ),
            commits: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "auditwatch_kafka_commits_total",
                        "Offset commits by outcome.",
                    ),
                    &["outcome"],
                )
                .expect("valid metric"),
            ),
            caught_up_alerts: reg(
                r,
                IntCounter::new(
                    "auditwatch_kafka_caught_up_alerts_total",
                    "Alerts raised again while a partition caught up from its state snapshot to the committed offset; delivered before, not sent again.",
                )
                .expect("valid metric"),
            ),
            keyless_fallback: reg(
                r,
                IntCounter::new(
                    "auditwatch_kafka_keyless_fallback_records_total",
                    "Records of a keyed stream run on the partition's keyless engine: a key over 256 bytes, or a partition with 64 keyed streams already.",
                )
                .expect("valid metric"),
            ),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_and_labels() {
        let m = Metrics::new();
        m.init_source("socket", SourceSeries::Socket);
        m.alerts
            .with_label_values(&["cross_tenant_read", "critical"])
            .inc();
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains("# HELP auditwatch_events_total Audit entries read"));
        assert!(text.contains(
            "auditwatch_alerts_total{category=\"cross_tenant_read\",severity=\"critical\"} 1"
        ));
        assert!(text.contains("auditwatch_events_total{source=\"socket\",type=\"request\"} 0"));
    }

    /// The values of one sample line's labels (`name{a="x",b="y"} 0` → `[x, y]`).
    fn label_values(line: &str) -> Vec<&str> {
        let Some((_, rest)) = line.split_once('{') else {
            return Vec::new();
        };
        let labels = rest.rsplit_once('}').map_or("", |x| x.0);
        labels
            .split("\",")
            .filter_map(|kv| kv.split_once("=\"").map(|x| x.1.trim_end_matches('"')))
            .collect()
    }

    /// Regression (issue 17): `auditwatch_reloads_total`, `dropped_lines_total`,
    /// `checkpoint_writes_total`, `file_rotations_total` and `source_api_calls_total` had no
    /// series until their first event, so `increase()` in an alert rule missed it.
    #[test]
    fn every_counter_exists_at_zero_from_the_start() {
        let m = Metrics::new();
        m.init_source("sock", SourceSeries::Socket);
        m.init_source("file", SourceSeries::File);
        m.init_source("cw", SourceSeries::Api);
        m.init_source("k", SourceSeries::Kafka);
        m.init_sink("jsonl");
        m.init_alerts([("cross_tenant_read", "critical")]);
        let text = String::from_utf8(m.render()).unwrap();
        // A Kafka source has no spool (the broker keeps its records): none of its series.
        for absent in [
            r#"reason="spool_full",source="k""#,
            r#"auditwatch_spilled_bytes{source="k"}"#,
        ] {
            assert!(
                !text.contains(absent),
                "a kafka source has {absent}:\n{text}"
            );
        }
        assert!(text.contains(r#"auditwatch_events_total{source="k",type="request"} 0"#));
        let has = |series: &str| {
            text.lines()
                .any(|l| l.strip_suffix(" 0").is_some_and(|s| s == series))
        };
        for series in [
            r#"auditwatch_reloads_total{outcome="rejected"}"#,
            r#"auditwatch_reloads_total{outcome="ok"}"#,
            r#"auditwatch_dropped_lines_total{reason="spool_full",source="sock"}"#,
            r#"auditwatch_dropped_lines_total{reason="fragment",source="sock"}"#,
            r#"auditwatch_dropped_lines_total{reason="rotated_away",source="file"}"#,
            r#"auditwatch_lost_bytes_total{reason="file_gone",source="file"}"#,
            r#"auditwatch_checkpoint_writes_total{outcome="error",source="file"}"#,
            r#"auditwatch_checkpoint_writes_total{outcome="error",source="cw"}"#,
            r#"auditwatch_file_rotations_total{kind="truncate",source="file"}"#,
            r#"auditwatch_source_api_calls_total{outcome="throttled",source="cw"}"#,
            r#"auditwatch_source_connection_events_total{outcome="refused",source="sock"}"#,
            r#"auditwatch_engine_events_total{kind="evicted_key"}"#,
            r#"auditwatch_state_writes_total{outcome="error"}"#,
            r#"auditwatch_state_restores_total{outcome="discarded"}"#,
            r#"auditwatch_http_refused_total{reason="bad_credentials"}"#,
            r#"auditwatch_sink_dropped_total{reason="expired",sink="jsonl"}"#,
            r#"auditwatch_sink_suppressed_total{reason="duplicate",sink="jsonl"}"#,
            r#"auditwatch_sink_failures_total{sink="jsonl"}"#,
            r#"auditwatch_alert_latency_seconds_count{sink="jsonl"}"#,
            r#"auditwatch_sink_delivery_seconds_count{sink="jsonl"}"#,
            r#"auditwatch_alert_write_errors_total"#,
            r#"auditwatch_kafka_rebalances_total{kind="revoke"}"#,
            r#"auditwatch_kafka_snapshots_total{outcome="error"}"#,
            r#"auditwatch_kafka_commits_total{outcome="error"}"#,
            r#"auditwatch_kafka_caught_up_alerts_total"#,
            r#"auditwatch_kafka_keyless_fallback_records_total"#,
        ] {
            assert!(has(series), "{series} is not at 0 from the start:\n{text}");
        }
        // Every counter declared in this file has a series before anything happened, except
        // those whose label values are only known from an alert or a mail (tenants, kinds).
        let declared: Vec<&str> = include_str!("metrics.rs")
            .split('"')
            .filter(|w| w.starts_with("auditwatch_") && w.ends_with("_total"))
            .collect();
        assert!(declared.len() >= 25, "{declared:?}");
        for f in declared {
            let present = text
                .lines()
                .any(|l| l.starts_with(&format!("{f}{{")) || l.starts_with(&format!("{f} ")));
            assert!(
                present
                    || f == "auditwatch_tenant_alerts_total"
                    || f == "auditwatch_emails_sent_total",
                "{f} has no series at the start"
            );
        }
        // No label is ever empty; a source's kind decides which series it has.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(!label_values(l).contains(&""), "empty label value: {l}");
        }
        assert!(!text.contains(r#"source="restored""#), "{text}");
        assert!(!text.contains(r#"auditwatch_file_rotations_total{kind="rename",source="sock"}"#));
        // The build and the process.
        assert!(text.contains(&format!(
            "auditwatch_build_info{{revision=\"{REVISION}\",version=\"{VERSION}\"}} 1"
        )));
        #[cfg(target_os = "linux")]
        for p in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("\n{p} ")), "{p}:\n{text}");
        }
    }

    #[test]
    fn deliveries_are_timed_from_the_entry_and_from_the_queue() {
        let m = Metrics::new();
        m.init_sink("alertmanager");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let ten_secs_ago = (now - Duration::from_secs(10)).as_nanos() as i64;
        m.observe_delivery("alertmanager", ten_secs_ago, Duration::from_millis(20));
        // No event time: only the sink's own time is known.
        m.observe_delivery("alertmanager", 0, Duration::from_millis(2));
        let lat = m.alert_latency.with_label_values(&["alertmanager"]);
        assert_eq!(lat.get_sample_count(), 1);
        assert!(
            (10.0..60.0).contains(&lat.get_sample_sum()),
            "{}",
            lat.get_sample_sum()
        );
        let del = m.sink_delivery.with_label_values(&["alertmanager"]);
        assert_eq!(del.get_sample_count(), 2);
        assert!(
            (0.021..0.03).contains(&del.get_sample_sum()),
            "{}",
            del.get_sample_sum()
        );
        // An entry dated ahead of this host's clock is no negative latency.
        let ahead = (now + Duration::from_secs(60)).as_nanos() as i64;
        m.observe_delivery("alertmanager", ahead, Duration::ZERO);
        assert!(lat.get_sample_sum() < 60.0);
        assert_eq!(lat.get_sample_count(), 2);
    }

    /// Every fixed label value, enum by enum. Dashboards and alert rules match these
    /// strings: a change here is a breaking change for them (update `dashboards/` too).
    #[test]
    fn label_values_are_exactly_these() {
        fn all<T: Copy>(values: &[T], as_str: fn(T) -> &'static str) -> Vec<&'static str> {
            values.iter().map(|&v| as_str(v)).collect()
        }
        let got: Vec<(&str, Vec<&str>)> = vec![
            ("SinkName", all(SinkName::ALL, SinkName::as_str)),
            ("SinkDrop", all(SinkDrop::ALL, SinkDrop::as_str)),
            ("SinkSuppress", all(SinkSuppress::ALL, SinkSuppress::as_str)),
            ("MailKind", all(MailKind::ALL, MailKind::as_str)),
            ("EntryType", all(EntryType::ALL, EntryType::as_str)),
            (
                "ConnectionEvent",
                all(ConnectionEvent::ALL, ConnectionEvent::as_str),
            ),
            ("BacklogPlace", all(BacklogPlace::ALL, BacklogPlace::as_str)),
            ("LineDrop", all(LineDrop::ALL, LineDrop::as_str)),
            ("EngineEvent", all(EngineEvent::ALL, EngineEvent::as_str)),
            (
                "ReloadOutcome",
                all(ReloadOutcome::ALL, ReloadOutcome::as_str),
            ),
            ("RotationKind", all(RotationKind::ALL, RotationKind::as_str)),
            ("WriteOutcome", all(WriteOutcome::ALL, WriteOutcome::as_str)),
            (
                "RestoreOutcome",
                all(RestoreOutcome::ALL, RestoreOutcome::as_str),
            ),
            ("ApiOutcome", all(ApiOutcome::ALL, ApiOutcome::as_str)),
            ("HttpRefusal", all(HttpRefusal::ALL, HttpRefusal::as_str)),
            (
                "RebalanceKind",
                all(RebalanceKind::ALL, RebalanceKind::as_str),
            ),
            ("TABLES", TABLES.to_vec()),
            (
                "tenant, source, kind",
                vec![TENANT_NONE, TENANT_OTHER, SOURCE_RESTORED, KIND_NONE],
            ),
        ];
        let want: Vec<(&str, Vec<&str>)> = vec![
            ("SinkName", vec!["jsonl", "alertmanager", "email"]),
            (
                "SinkDrop",
                vec![
                    "queue_full",
                    "sink_down",
                    "write_error",
                    "rejected",
                    "expired",
                    "retry_full",
                    "shutdown",
                    "outbox_error",
                    "outbox_full",
                ],
            ),
            (
                "SinkSuppress",
                vec![
                    "duplicate",
                    "suppressed",
                    "no_recipients",
                    "already_delivered",
                ],
            ),
            ("MailKind", vec!["immediate", "digest"]),
            ("EntryType", vec!["request", "response", "other"]),
            (
                "ConnectionEvent",
                vec!["accepted", "refused", "evicted", "evicted_peer", "closed"],
            ),
            ("BacklogPlace", vec!["memory", "spool"]),
            (
                "LineDrop",
                vec![
                    "fragment",
                    "spool_full",
                    "spool_error",
                    "spool_corrupt",
                    "file_gone",
                    "rotated_away",
                ],
            ),
            (
                "EngineEvent",
                vec![
                    "duplicate_response",
                    "timed_out_request",
                    "suppressed_alert",
                    "allow_listed",
                    "evicted_key",
                    "untimed_entry",
                    "duplicate_alert",
                    "skewed_entry",
                    "evicted_request",
                ],
            ),
            ("ReloadOutcome", vec!["ok", "rejected"]),
            ("RotationKind", vec!["rename", "truncate", "delete"]),
            ("WriteOutcome", vec!["ok", "error"]),
            ("RestoreOutcome", vec!["restored", "none", "discarded"]),
            ("ApiOutcome", vec!["ok", "throttled", "error"]),
            (
                "HttpRefusal",
                vec![
                    "no_credentials",
                    "bad_credentials",
                    "auth_busy",
                    "not_tls",
                    "tls_handshake",
                    "timeout",
                    "connection_cap",
                    "head_too_large",
                ],
            ),
            ("RebalanceKind", vec!["assign", "revoke"]),
            (
                "TABLES",
                vec![
                    "pending_requests",
                    "decided_requests",
                    "count_keys",
                    "distinct_keys",
                    "cadence_keys",
                    "cadence_timers",
                    "suppression_keys",
                    "token_keys",
                ],
            ),
            (
                "tenant, source, kind",
                vec!["none", "other", "restored", "none"],
            ),
        ];
        assert_eq!(got, want);
    }
}
