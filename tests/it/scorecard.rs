//! The scorecard: `simulate --inject all` on five platforms (seed, tenants), each replayed
//! in-process through the pipeline with the default config and the embedded rules.
//!
//! Required: every item of the answer key is found (same category, severity at least the
//! item's, and its request id or time window: `AnswerItem::found_by`), every alert is
//! explained by some item (precision), and the clean stream of the same platform (no
//! injection) raises nothing. The table of recall and precision per category is printed
//! before any assertion, so a failing run shows it (`cargo test --test it scorecard:: --
//! --nocapture` shows it on success too).
//!
//! The platforms run on their own threads (the simulator and the pipeline are
//! deterministic and share nothing), and each stream goes line by line from the simulator
//! into the pipeline: nothing holds a whole run in memory.

use std::collections::BTreeMap;
use std::time::Instant;

use auditwatch::alert::Alert;
use auditwatch::simulate::{AnswerItem, AnswerKey, Injection, SimConfig, Simulation};

use crate::util::replay_lines;

/// (seed, tenants). Ten hours from Monday 00:00: the night for `after_hours_admin`, the
/// 7.5 hours `eso_stale` needs, and 08:00-10:00 for the human admins' sessions.
const PLATFORMS: [(u64, usize); 5] = [(1, 4), (2, 8), (3, 12), (4, 16), (5, 24)];
const HOURS: i64 = 10;

struct Run {
    seed: u64,
    tenants: usize,
    lines: usize,
    items: Vec<AnswerItem>,
    found: Vec<bool>,
    alerts: Vec<Alert>,
    /// Per alert: explained by some item.
    explained: Vec<bool>,
    clean_alerts: Vec<Alert>,
    parse_errors: u64,
    secs: f64,
}

/// Simulate and replay one stream: its answer key, alerts, parse errors and line count.
fn simulate_and_replay(cfg: &SimConfig) -> (AnswerKey, Vec<Alert>, u64, usize) {
    let mut sim = Simulation::new(cfg).expect("every injection fits the platform");
    let key = sim.answer_key().clone();
    let mut lines = 0;
    let simulated =
        std::iter::from_fn(|| sim.next_line().map(|(_, line)| line)).inspect(|_| lines += 1);
    let (alerts, parse_errors) = replay_lines(simulated);
    (key, alerts, parse_errors, lines)
}

fn run(seed: u64, tenants: usize) -> Run {
    let started = Instant::now();
    let cfg = SimConfig {
        seed,
        tenants,
        duration_secs: HOURS * 3600,
        injections: Injection::ALL.to_vec(),
        ..SimConfig::default()
    };
    let (key, alerts, mut parse_errors, lines) = simulate_and_replay(&cfg);
    let found = key
        .items
        .iter()
        .map(|i| alerts.iter().any(|a| i.found_by(a)))
        .collect();
    let explained = alerts
        .iter()
        .map(|a| key.items.iter().any(|i| i.explains(a)))
        .collect();
    let clean = SimConfig {
        injections: Vec::new(),
        ..cfg
    };
    let (_, clean_alerts, errors, clean_lines) = simulate_and_replay(&clean);
    parse_errors += errors;
    Run {
        seed,
        tenants,
        lines: lines + clean_lines,
        items: key.items,
        found,
        alerts,
        explained,
        clean_alerts,
        parse_errors,
        secs: started.elapsed().as_secs_f64(),
    }
}

#[derive(Default)]
struct Row {
    planted: usize,
    found: usize,
    side_effects: usize,
    side_effects_found: usize,
    alerts: usize,
    unexplained: usize,
}

fn pct(num: usize, den: usize) -> String {
    if den == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * num as f64 / den as f64)
    }
}

fn table(runs: &[Run]) -> String {
    let mut rows: BTreeMap<&str, Row> = BTreeMap::new();
    for r in runs {
        for (item, &found) in r.items.iter().zip(&r.found) {
            let row = rows.entry(item.category).or_default();
            if item.side_effect {
                row.side_effects += 1;
                row.side_effects_found += found as usize;
            } else {
                row.planted += 1;
                row.found += found as usize;
            }
        }
        for (a, &ok) in r.alerts.iter().zip(&r.explained) {
            let row = rows.entry(a.category.as_str()).or_default();
            row.alerts += 1;
            row.unexplained += (!ok) as usize;
        }
    }
    let mut out = String::new();
    out.push_str(&format!(
        "\nscorecard: simulate --inject all, {} platforms x {HOURS} h\n",
        runs.len()
    ));
    out.push_str(&format!(
        "{:<22} {:>7} {:>5} {:>7} {:>12} {:>6} {:>11} {:>9}\n",
        "category",
        "planted",
        "found",
        "recall",
        "side effects",
        "alerts",
        "unexplained",
        "precision"
    ));
    let mut total = Row::default();
    for (cat, r) in &rows {
        out.push_str(&format!(
            "{:<22} {:>7} {:>5} {:>7} {:>12} {:>6} {:>11} {:>9}\n",
            cat,
            r.planted,
            r.found,
            pct(r.found, r.planted),
            format!("{}/{}", r.side_effects_found, r.side_effects),
            r.alerts,
            r.unexplained,
            pct(r.alerts - r.unexplained, r.alerts)
        ));
        total.planted += r.planted;
        total.found += r.found;
        total.side_effects += r.side_effects;
        total.side_effects_found += r.side_effects_found;
        total.alerts += r.alerts;
        total.unexplained += r.unexplained;
    }
    out.push_str(&format!(
        "{:<22} {:>7} {:>5} {:>7} {:>12} {:>6} {:>11} {:>9}\n",
        "total",
        total.planted,
        total.found,
        pct(total.found, total.planted),
        format!("{}/{}", total.side_effects_found, total.side_effects),
        total.alerts,
        total.unexplained,
        pct(total.alerts - total.unexplained, total.alerts)
    ));
    out.push_str(&format!(
        "\n{:>4} {:>7} {:>7} {:>6} {:>7} {:>11} {:>12} {:>6}\n",
        "seed", "tenants", "lines", "alerts", "missing", "unexplained", "clean alerts", "secs"
    ));
    for r in runs {
        out.push_str(&format!(
            "{:>4} {:>7} {:>7} {:>6} {:>7} {:>11} {:>12} {:>6.1}\n",
            r.seed,
            r.tenants,
            r.lines,
            r.alerts.len(),
            r.found.iter().filter(|f| !**f).count(),
            r.explained.iter().filter(|e| !**e).count(),
            r.clean_alerts.len(),
            r.secs
        ));
    }
    out
}

#[test]
fn every_planted_finding_is_found_and_nothing_else_is_reported() {
    let runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = PLATFORMS
            .iter()
            .map(|&(seed, tenants)| s.spawn(move || run(seed, tenants)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a platform's run panicked"))
            .collect()
    });
    println!("{}", table(&runs));

    let mut failures = Vec::new();
    for r in &runs {
        let tag = format!("seed {} tenants {}", r.seed, r.tenants);
        if r.parse_errors != 0 {
            failures.push(format!("{tag}: {} parse errors", r.parse_errors));
        }
        for (item, found) in r.items.iter().zip(&r.found) {
            if !found {
                failures.push(format!(
                    "{tag}: not found: {} ({} >= {}, {}..{}): {}",
                    item.injection,
                    item.category,
                    item.min_severity,
                    item.window_start,
                    item.window_end,
                    item.description
                ));
            }
        }
        for (a, ok) in r.alerts.iter().zip(&r.explained) {
            if !ok {
                failures.push(format!("{tag}: unexplained alert: {}", a.to_json_line()));
            }
        }
        for a in &r.clean_alerts {
            failures.push(format!("{tag}: clean traffic alert: {}", a.to_json_line()));
        }
        // Every kind planted something of its own.
        for inj in Injection::ALL {
            if !r
                .items
                .iter()
                .any(|i| i.injection == inj.name() && !i.side_effect)
            {
                failures.push(format!("{tag}: no answer item for {}", inj.name()));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
