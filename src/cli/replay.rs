//! `auditwatch replay`: alerts to stdout (or --output), a summary to stderr.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use auditwatch::alert::{Alert, Severity};
use auditwatch::parse::time::{format_rfc3339, parse_time_bound};
use auditwatch::parse::ParseError;
use auditwatch::pipeline::Pipeline;
use auditwatch::report::{self, Recorder};
use auditwatch::source::input::{self, Progress, ReplayOptions};
use auditwatch::source::replay;

use super::{load_checked, EXIT_FAIL_ON, EXIT_RUNTIME, EXIT_USAGE};
use crate::Format;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Config file (default: the built-in default)
    #[arg(long)]
    config: Option<PathBuf>,
    /// Rules directory or file (default: the embedded rules)
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Only entries at or after this time (RFC 3339 or YYYY-MM-DD)
    #[arg(long)]
    since: Option<String>,
    /// Only entries before this time (RFC 3339 or YYYY-MM-DD)
    #[arg(long)]
    until: Option<String>,
    /// The input ended and no entry came until this time (RFC 3339, YYYY-MM-DD, or `now`:
    /// when replay starts): judged as a daemon left idle until then would (a silence of
    /// the stream is named, held requests time out; no per-key timer moves)
    #[arg(long, value_name = "T")]
    idle_until: Option<String>,
    /// Alert output format
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// Write alerts to this file instead of stdout
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Exit 3 when an alert at or above this severity was raised
    #[arg(long, value_name = "SEVERITY")]
    fail_on: Option<String>,
    /// No summary and no progress line on stderr
    #[arg(long, short)]
    quiet: bool,
    /// Parser threads (default: one per core; 1 = single-threaded). Alerts are the same
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
    /// Also write the summary as JSON to this file
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
    /// Write a forensics report: FILE.html (one self-contained page) or FILE.json (the same as data)
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Files, .gz files, directories (rotated sets), or - for stdin
    #[arg(value_name = "PATH")]
    paths: Vec<String>,
}

struct TerminalProgress {
    enabled: bool,
    shown: bool,
}

impl Progress for TerminalProgress {
    fn update(&mut self, done: u64, total: Option<u64>, entries: u64, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        let secs = elapsed.as_secs_f64().max(1e-6);
        let rate = done as f64 / secs;
        let eta = match total {
            Some(t) if t > done && rate > 0.0 => format!(", ETA {:.0}s", (t - done) as f64 / rate),
            _ => String::new(),
        };
        let pct = total
            .filter(|t| *t > 0)
            .map(|t| format!(" ({:.0}%)", done as f64 * 100.0 / t as f64))
            .unwrap_or_default();
        eprint!(
            "\r\x1b[2K{:.1} MB{pct}, {:.0} entries/s, {:.0} MB/s{eta}",
            done as f64 / 1e6,
            entries as f64 / secs,
            rate / 1e6
        );
        self.shown = true;
    }

    fn done(&mut self) {
        if self.shown {
            eprint!("\r\x1b[2K");
        }
    }
}

pub fn run(args: ReplayArgs) -> u8 {
    let fail_on = match args.fail_on.as_deref().map(|s| (s, Severity::parse(s))) {
        None => None,
        Some((_, Some(s))) => Some(s),
        Some((s, None)) => {
            eprintln!("error: --fail-on: unknown severity `{s}` (info, warning, high, critical)");
            return EXIT_USAGE;
        }
    };
    let report_to = match report_target(args.report.as_deref()) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let bound = |name: &str, v: &Option<String>| -> Result<Option<i64>, u8> {
        match v {
            None => Ok(None),
            Some(s) => parse_time_bound(s).map(Some).ok_or_else(|| {
                eprintln!("error: --{name}: `{s}` is not an RFC 3339 time or YYYY-MM-DD date");
                EXIT_USAGE
            }),
        }
    };
    let (since, until) = match (bound("since", &args.since), bound("until", &args.until)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(c), _) | (_, Err(c)) => return c,
    };
    let idle_until = match args.idle_until.as_deref() {
        Some("now") => Some(now_unix_nanos()),
        Some(s) => {
            match parse_time_bound(s) {
                Some(t) => Some(t),
                None => {
                    eprintln!("error: --idle-until: `{s}` is not an RFC 3339 time, YYYY-MM-DD date or `now`");
                    return EXIT_USAGE;
                }
            }
        }
        None => None,
    };
    let (cfg, rules) = match load_checked(args.config.as_deref(), args.rules.as_ref()) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut paths = args.paths.clone();
    if paths.is_empty() {
        if io::stdin().is_terminal() {
            eprintln!("error: no input: give files, directories, or - for stdin (see auditwatch replay --help)");
            return EXIT_USAGE;
        }
        paths.push("-".into());
    }
    let (inputs, skipped) = match input::expand(&paths) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let out: Box<dyn Write> = match &args.output {
        Some(p) => match File::create(p) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("error: cannot create {}: {e}", p.display());
                return EXIT_RUNTIME;
            }
        },
        None => Box::new(super::out::stdout()),
    };
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let live = inputs.iter().any(|i| matches!(i, input::Input::Stdin));

    let mut pipeline = Pipeline::new(cfg.detection.clone(), rules.clone());
    pipeline.set_time_range(since, until);
    pipeline.set_idle_until(idle_until);
    let recorder = report_to
        .as_ref()
        .map(|_| Recorder::new(report::Caps::default()));
    if let Some(r) = &recorder {
        pipeline.set_observer(Some(r.observer()));
    }
    let opts = ReplayOptions {
        max_line_bytes: cfg.detection.parse.max_line_bytes as usize,
        threads: args.threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        ),
        log_errors_per_input: 10,
    };
    let mut progress = TerminalProgress {
        enabled: !args.quiet && io::stderr().is_terminal(),
        shown: false,
    };
    let mut by_class: BTreeMap<(String, Severity), u64> = BTreeMap::new();
    let mut worst: Option<Severity> = None;
    let format = args.format;
    let sinks = &cfg.sinks;
    let start = Instant::now();
    let result = replay::replay(
        &mut pipeline,
        &inputs,
        &opts,
        &mut progress,
        &mut |a: &Alert| {
            *by_class
                .entry((a.category.clone(), a.severity))
                .or_default() += 1;
            worst = worst.max(Some(a.severity));
            // What the detector instance adds to the record, as the daemon's sinks do.
            let mut a = a.clone();
            a.stamp(&sinks.observer, &sinks.runbook_url);
            let line = match format {
                Format::Jsonl => a.to_json_line(),
                Format::Text => a.to_text_line(),
                Format::Ecs => a.to_ecs_line(),
            };
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
            // Stdin may be a live stream (`tail -f | auditwatch replay -`): each alert goes
            // out at once rather than when the buffer fills.
            if live {
                out.flush()?;
            }
            Ok(())
        },
    );
    let elapsed = start.elapsed();
    let flushed = out.flush();
    let reports = match result.and_then(|r| flushed.map(|_| r)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot write alerts: {e}");
            return EXIT_RUNTIME;
        }
    };
    // Inputs that could not be read (named, or found in a directory) fail the run; files
    // a directory holds that are not audit logs are only listed.
    let failed_inputs: Vec<_> = reports
        .iter()
        .chain(skipped.iter().filter(|r| !r.skipped))
        .filter(|r| r.problem.is_some())
        .collect();
    let outcome = Outcome {
        pipeline: &pipeline,
        reports: &reports,
        skipped: &skipped,
        by_class: &by_class,
        elapsed,
        rules_origin: &rules.origin,
    };
    if let Some(path) = &args.stats_json {
        let doc = stats_json(&outcome);
        if let Err(e) = std::fs::write(path, serde_json::to_vec_pretty(&doc).expect("json")) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return EXIT_RUNTIME;
        }
    }
    if let (Some(rec), Some((path, format))) = (&recorder, &report_to) {
        let doc = rec.finish(&report::Replayed {
            inputs: &reports,
            skipped: &skipped,
            stats: pipeline.stats(),
            rules: &rules,
            since,
            until,
        });
        if let Err(e) = report::write_file(&doc, *format, path) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return EXIT_RUNTIME;
        }
    }
    if !args.quiet {
        summary(&outcome);
    }
    if let (Some(idle), Some(last)) = (idle_until, pipeline.engine().max_time()) {
        if idle < last {
            eprintln!(
                "warning: --idle-until {} is before the input's last entry ({}): no silence after it was judged",
                format_rfc3339(idle),
                format_rfc3339(last)
            );
        }
    }
    if !failed_inputs.is_empty() {
        for r in &failed_inputs {
            eprintln!("error: {}: {}", r.name, r.problem.as_deref().unwrap_or(""));
        }
        return EXIT_RUNTIME;
    }
    match (fail_on, worst) {
        (Some(t), Some(w)) if w >= t => EXIT_FAIL_ON,
        _ => 0,
    }
}

/// `--report FILE`: its form from the extension (checked before anything is read).
fn report_target(path: Option<&std::path::Path>) -> Result<Option<(PathBuf, report::Format)>, u8> {
    let Some(p) = path else { return Ok(None) };
    match report::Format::from_path(p) {
        Some(f) => Ok(Some((p.to_path_buf(), f))),
        None => {
            eprintln!(
                "error: --report: `{}` must end in .html (a page) or .json (data)",
                p.display()
            );
            Err(EXIT_USAGE)
        }
    }
}

/// What a replay did, for the summary and `--stats-json`.
struct Outcome<'a> {
    pipeline: &'a Pipeline,
    reports: &'a [input::InputReport],
    skipped: &'a [input::InputReport],
    by_class: &'a BTreeMap<(String, Severity), u64>,
    elapsed: Duration,
    rules_origin: &'a str,
}

fn stats_json(o: &Outcome<'_>) -> serde_json::Value {
    let Outcome {
        pipeline: p,
        reports,
        skipped,
        by_class,
        elapsed,
        rules_origin,
    } = *o;
    use serde_json::json;
    let s = p.stats();
    let e = p.engine_stats();
    let t = p.table_sizes();
    let errors: serde_json::Map<String, serde_json::Value> = ParseError::ALL
        .iter()
        .map(|r| (r.as_str().to_string(), json!(s.parse_errors[r.index()])))
        .collect();
    let mut alerts_by_category: BTreeMap<&str, u64> = BTreeMap::new();
    let mut alerts_by_severity: BTreeMap<&str, u64> = BTreeMap::new();
    for ((c, sev), n) in by_class {
        *alerts_by_category.entry(c).or_default() += n;
        *alerts_by_severity.entry(sev.as_str()).or_default() += n;
    }
    let input = |r: &input::InputReport| {
        json!({"name": r.name, "bytes": r.bytes, "lines": r.lines, "entries": r.entries,
               "parse_errors": r.parse_errors, "skipped": r.skipped, "problem": r.problem})
    };
    json!({
        "rules": rules_origin,
        "elapsed_secs": elapsed.as_secs_f64(),
        "bytes": s.bytes,
        "lines": s.lines,
        "entries": s.entries,
        "entries_by_type": {"request": s.requests, "response": s.responses, "other": s.other_types},
        "parse_errors": errors,
        "parse_errors_total": s.parse_errors_total(),
        "blank_lines": s.blank_lines,
        "nul_prefixed_lines": s.nul_prefixed_lines,
        "prefixed_lines": s.prefixed_lines,
        "filtered_by_time": s.filtered_by_time,
        "untimed_entries": e.untimed,
        "timed_out_requests": e.timed_out_requests,
        "duplicate_responses": e.duplicate_responses,
        "duplicate_alerts": e.duplicate_alerts,
        "suppressed_alerts": e.suppressed_alerts,
        "allow_listed": e.allow_listed,
        "evicted_keys": e.evicted_keys,
        "skewed_entries": e.skewed_entries,
        "evicted_requests": e.evicted_requests,
        "tables": {"pending_requests": t.pending_requests, "cadence_keys": t.cadence_keys,
                   "count_keys": t.count_keys, "distinct_keys": t.distinct_keys},
        "alerts_total": by_class.values().sum::<u64>(),
        "alerts_by_category": alerts_by_category,
        "alerts_by_severity": alerts_by_severity,
        "inputs": reports.iter().map(input).collect::<Vec<_>>(),
        "skipped_inputs": skipped.iter().map(input).collect::<Vec<_>>(),
    })
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn summary(o: &Outcome<'_>) {
    let Outcome {
        pipeline: p,
        reports,
        skipped,
        by_class,
        elapsed,
        rules_origin,
    } = *o;
    let s = p.stats();
    let e = p.engine_stats();
    let secs = elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "replayed {} entries ({} lines, {:.1} MB) from {} input(s) in {:.2}s: {:.0} MB/s, {} entries/s",
        thousands(s.entries),
        thousands(s.lines),
        s.bytes as f64 / 1e6,
        reports.len(),
        secs,
        s.bytes as f64 / 1e6 / secs,
        thousands((s.entries as f64 / secs) as u64),
    );
    eprintln!(
        "  entries by type: request {}, response {}, other {}",
        thousands(s.requests),
        thousands(s.responses),
        thousands(s.other_types)
    );
    let errs: Vec<String> = ParseError::ALL
        .iter()
        .filter(|r| s.parse_errors[r.index()] > 0)
        .map(|r| format!("{} {}", r, thousands(s.parse_errors[r.index()])))
        .collect();
    if errs.is_empty() {
        eprintln!("  parse errors: 0");
    } else {
        eprintln!(
            "  parse errors: {} ({})",
            thousands(s.parse_errors_total()),
            errs.join(", ")
        );
    }
    let mut notes = Vec::new();
    if s.blank_lines > 0 {
        notes.push(format!("{} blank lines skipped", thousands(s.blank_lines)));
    }
    if s.nul_prefixed_lines > 0 {
        notes.push(format!(
            "{} lines had leading NUL bytes (a truncated file?) and were read",
            s.nul_prefixed_lines
        ));
    }
    if s.prefixed_lines > 0 {
        notes.push(format!(
            "{} lines had a prefix before the JSON",
            thousands(s.prefixed_lines)
        ));
    }
    if s.filtered_by_time > 0 {
        notes.push(format!(
            "{} entries outside --since/--until",
            thousands(s.filtered_by_time)
        ));
    }
    if e.untimed > 0 {
        notes.push(format!(
            "{} entries without a valid time",
            thousands(e.untimed)
        ));
    }
    if e.timed_out_requests > 0 {
        notes.push(format!(
            "{} requests without a response, judged alone",
            thousands(e.timed_out_requests)
        ));
    }
    if e.duplicate_responses > 0 {
        notes.push(format!(
            "{} duplicate responses ignored",
            thousands(e.duplicate_responses)
        ));
    }
    if e.duplicate_alerts > 0 {
        notes.push(format!(
            "{} alerts raised again from another copy of their entry, dropped",
            thousands(e.duplicate_alerts)
        ));
    }
    if e.suppressed_alerts > 0 {
        notes.push(format!(
            "{} alerts suppressed by rule suppress windows",
            thousands(e.suppressed_alerts)
        ));
    }
    if e.evicted_keys > 0 {
        notes.push(format!(
            "{} state keys evicted at table caps",
            thousands(e.evicted_keys)
        ));
    }
    if e.evicted_requests > 0 {
        notes.push(format!(
            "{} requests judged alone early: the pending table was full",
            thousands(e.evicted_requests)
        ));
    }
    if e.skewed_entries > 0 {
        notes.push(format!(
            "{} entries dated far ahead of the stream (clock skew), their time not trusted",
            thousands(e.skewed_entries)
        ));
    }
    for n in notes {
        eprintln!("  {n}");
    }
    for r in skipped {
        eprintln!(
            "  {}: {}",
            r.name,
            r.problem.as_deref().unwrap_or("skipped")
        );
    }
    let total: u64 = by_class.values().sum();
    let mut by_sev: BTreeMap<Severity, u64> = BTreeMap::new();
    let mut by_cat: BTreeMap<&str, u64> = BTreeMap::new();
    for ((c, sev), n) in by_class {
        *by_sev.entry(*sev).or_default() += n;
        *by_cat.entry(c).or_default() += n;
    }
    let sev: Vec<String> = by_sev
        .iter()
        .rev()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let cat: Vec<String> = by_cat.iter().map(|(k, v)| format!("{k} {v}")).collect();
    eprintln!(
        "  alerts: {}{}{} (rules: {})",
        thousands(total),
        if sev.is_empty() {
            String::new()
        } else {
            format!(" by severity: {}", sev.join(", "))
        },
        if cat.is_empty() {
            String::new()
        } else {
            format!("; by category: {}", cat.join(", "))
        },
        rules_origin
    );
}

/// The wall clock, in ns since the epoch.
fn now_unix_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
