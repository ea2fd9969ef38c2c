//! Serial replay in the library: lines fed one by one into a [`Pipeline`], as the
//! one-thread `replay` does. The reference the other paths are compared with.

use std::sync::Arc;

use auditwatch::alert::Alert;
use auditwatch::config::Config;
use auditwatch::pipeline::Pipeline;
use auditwatch::rules::RuleSet;
use serde_json::Value;

/// A pipeline with the default config and the shipped rules: what `replay` and `run` use
/// without `--config` or `--rules`.
pub fn default_pipeline() -> Pipeline {
    Pipeline::new(Arc::new(Config::default()), Arc::new(RuleSet::embedded()))
}

/// The lines of `bytes` as replay frames them: split at `\n`, with no empty line after a
/// final `\n`.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .strip_suffix(b"\n")
        .unwrap_or(bytes)
        .split(|&b| b == b'\n')
        .filter(move |_| !bytes.is_empty())
}

/// Feed every line (without its `\n`) to `p` in order, then end the input. Returns every
/// alert raised. An unreadable line is counted in `p.stats()`, where tests check them.
pub fn feed<L: AsRef<[u8]>>(p: &mut Pipeline, lines: impl IntoIterator<Item = L>) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for line in lines {
        // The error is counted by the pipeline.
        let _ = p.feed_line(line.as_ref(), &mut alerts);
    }
    p.finish(&mut alerts);
    alerts
}

/// [`feed`], but the input ends as it does when a daemon stops (`auditwatch run`, SIGTERM):
/// timers fire up to the newest event time, as at replay's end, but requests still waiting
/// for their response are not judged (after a restart that response, which repeats the
/// request, decides). Replay's alerts are these, then those of the waiting requests.
pub fn feed_until_stop<L: AsRef<[u8]>>(
    p: &mut Pipeline,
    lines: impl IntoIterator<Item = L>,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for line in lines {
        let _ = p.feed_line(line.as_ref(), &mut alerts);
    }
    // As the daemon's engine thread at its end of input: a held candidate jump of the
    // clock is accepted first (nothing after it contradicts it), then the watermark moves
    // to the newest event time.
    p.engine_mut().settle_clock(&mut alerts);
    alerts
}

/// [`feed`] into a [`default_pipeline`]: the alerts and the number of unreadable lines.
pub fn replay_lines<L: AsRef<[u8]>>(lines: impl IntoIterator<Item = L>) -> (Vec<Alert>, u64) {
    let mut p = default_pipeline();
    let alerts = feed(&mut p, lines);
    (alerts, p.stats().parse_errors_total())
}

/// Alerts as the JSON records every output writes.
pub fn records(alerts: &[Alert]) -> Vec<Value> {
    alerts
        .iter()
        .map(|a| serde_json::from_str(&a.to_json_line()).expect("an alert is JSON"))
        .collect()
}
