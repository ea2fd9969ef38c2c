//! The process's log: stderr, one line an event, as text (for people and journald) or
//! JSON (`--log-format json`, one object a line for Loki, Elastic or a SIEM).
//!
//! The filter is `AUDITWATCH_LOG` when set (auditwatch's own override, which wins), else
//! `RUST_LOG` (the Rust convention), else [`DEFAULT_FILTER`]: auditwatch's start,
//! listening, ready, reload and shutdown lines at `info`, other crates' warnings only. A
//! filter that does not parse is said once and the default used: a typo must not silence
//! the daemon. Colour only when stderr is a terminal and `NO_COLOR` is not set
//! (no-color.org: any non-empty value); JSON never has any.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// What is logged when neither `AUDITWATCH_LOG` nor `RUST_LOG` is set.
pub const DEFAULT_FILTER: &str = "warn,auditwatch=info";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event
    Text,
    /// One JSON object per event: timestamp, level, message and the event's fields
    Json,
}

/// Which filter to use and where it came from (for the warning about a bad one).
fn chosen_filter(
    auditwatch_log: Option<String>,
    rust_log: Option<String>,
) -> (String, &'static str) {
    let set = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    match (set(auditwatch_log), set(rust_log)) {
        (Some(f), _) => (f, "AUDITWATCH_LOG"),
        (None, Some(f)) => (f, "RUST_LOG"),
        (None, None) => (DEFAULT_FILTER.to_string(), "the default"),
    }
}

/// Colour on a terminal unless `NO_COLOR` says otherwise.
fn use_colour(format: LogFormat, terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    format == LogFormat::Text && terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Install the subscriber for the whole process.
pub fn init(format: LogFormat) {
    let (spec, from) = chosen_filter(
        std::env::var("AUDITWATCH_LOG").ok(),
        std::env::var("RUST_LOG").ok(),
    );
    let (filter, bad) = match EnvFilter::try_new(&spec) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some(e)),
    };
    let ansi = use_colour(
        format,
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Text => builder.with_ansi(ansi).compact().init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    if let Some(e) = bad {
        tracing::warn!(filter = %spec, from, error = %e, default = DEFAULT_FILTER,
            "the log filter does not parse; using the default");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auditwatch_log_wins_over_rust_log_and_both_over_the_default() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            chosen_filter(s("debug"), s("trace")),
            ("debug".into(), "AUDITWATCH_LOG")
        );
        assert_eq!(
            chosen_filter(None, s("trace")),
            ("trace".into(), "RUST_LOG")
        );
        // An empty variable counts as unset (`RUST_LOG= auditwatch run`).
        assert_eq!(
            chosen_filter(s(" "), s("trace")),
            ("trace".into(), "RUST_LOG")
        );
        assert_eq!(
            chosen_filter(None, None),
            (DEFAULT_FILTER.into(), "the default")
        );
        assert!(EnvFilter::try_new(DEFAULT_FILTER).is_ok());
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color_and_never_in_json() {
        let set = |v: &str| Some(std::ffi::OsString::from(v));
        assert!(use_colour(LogFormat::Text, true, None));
        assert!(!use_colour(LogFormat::Text, false, None));
        assert!(!use_colour(LogFormat::Text, true, set("1")));
        // no-color.org: an empty NO_COLOR does not disable colour.
        assert!(use_colour(LogFormat::Text, true, set("")));
        assert!(!use_colour(LogFormat::Json, true, None));
    }
}
