//! Every metric the daemon exports, declared once here with its help text.
//!
//! Names follow `auditwatch_<noun>_<unit>` / `_total`. Labels come only from bounded sets:
//! `source` is a configured source name (never a peer address), `category` a rule
//! category, `severity`, `type`, `reason` and `table` fixed vocabularies. Paths, tokens,
//! accessors, addresses and users belong in alerts, never in labels. A [`Metrics`] owns
//! its own registry, so several daemons (tests) can live in one process.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

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
    /// How long the last state checkpoint took to take and write, in milliseconds.
    pub state_write_millis: IntGauge,
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

/// `source` of the spooled lines of a source that is no longer configured.
pub const SOURCE_RESTORED: &str = "restored";
/// `tenant` of `auditwatch_tenant_alerts_total` for a platform-wide alert (no tenant).
pub const TENANT_NONE: &str = "none";
/// `tenant` of `auditwatch_tenant_alerts_total` past `output.tenant_label_cap`.
pub const TENANT_OTHER: &str = "other";

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
        Metrics {
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
            state_write_millis: reg(
                &registry,
                IntGauge::new(
                    "auditwatch_state_write_milliseconds",
                    "How long the last state checkpoint took to take and write.",
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
            registry,
        }
    }

    /// Create the series of a source up front, so dashboards see zeros, not gaps.
    pub fn init_source(&self, source: &str) {
        for t in EntryType::ALL {
            self.events.with_label_values(&[source, t.as_str()]);
        }
        for r in crate::parse::ParseError::ALL {
            self.parse_errors.with_label_values(&[source, r.as_str()]);
        }
        self.bytes.with_label_values(&[source]);
        for w in BacklogPlace::ALL {
            self.backlog_bytes.with_label_values(&[source, w.as_str()]);
        }
        self.spilled_bytes.with_label_values(&[source]);
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
        m.init_source("socket");
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
            ("TABLES", TABLES.to_vec()),
            (
                "tenant, source",
                vec![TENANT_NONE, TENANT_OTHER, SOURCE_RESTORED],
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
            ("tenant, source", vec!["none", "other", "restored"]),
        ];
        assert_eq!(got, want);
    }
}
