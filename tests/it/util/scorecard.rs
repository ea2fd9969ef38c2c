//! What the scorecards (`scorecard.rs`, `scorecard_learned.rs`) share: a simulated platform
//! replayed in-process through the pipeline with its injections and again without them
//! (the clean stream), each answer item matched to the alerts (`AnswerItem::found_by`)
//! and each alert to the items (`AnswerItem::explains`); the platforms on their own
//! threads (the simulator and the pipeline are deterministic and share nothing), each
//! stream going line by line from the simulator into the pipeline; the table of recall
//! and precision per category; and the failures every scorecard requires.

use std::collections::BTreeMap;
use std::time::Instant;

use auditwatch::alert::Alert;
use auditwatch::simulate::{AnswerItem, AnswerKey, SimConfig, Simulation};

use super::replay_lines;

/// One platform's streams, with and without its injections, replayed.
pub struct ScoreRun {
    pub seed: u64,
    pub tenants: usize,
    /// Lines of both streams.
    pub lines: usize,
    pub items: Vec<AnswerItem>,
    /// Per item: found by some alert.
    pub found: Vec<bool>,
    pub alerts: Vec<Alert>,
    /// Per alert: explained by some item.
    pub explained: Vec<bool>,
    pub clean_alerts: Vec<Alert>,
    pub parse_errors: u64,
    pub secs: f64,
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

/// The platform `cfg` replayed with its injections, and clean (none).
pub fn score_platform(cfg: SimConfig) -> ScoreRun {
    let started = Instant::now();
    let (seed, tenants) = (cfg.seed, cfg.tenants);
    let (key, alerts, errors, lines) = simulate_and_replay(&cfg);
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
    let (_, clean_alerts, clean_errors, clean_lines) = simulate_and_replay(&clean);
    ScoreRun {
        seed,
        tenants,
        lines: lines + clean_lines,
        items: key.items,
        found,
        alerts,
        explained,
        clean_alerts,
        parse_errors: errors + clean_errors,
        secs: started.elapsed().as_secs_f64(),
    }
}

/// [`score_platform`] for each (seed, tenants) of `platforms`, each on its own thread.
pub fn score_platforms(
    platforms: &[(u64, usize)],
    cfg: impl Fn(u64, usize) -> SimConfig + Sync,
) -> Vec<ScoreRun> {
    std::thread::scope(|s| {
        let handles: Vec<_> = platforms
            .iter()
            .map(|&(seed, tenants)| {
                let cfg = &cfg;
                s.spawn(move || score_platform(cfg(seed, tenants)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a platform's run panicked"))
            .collect()
    })
}

#[derive(Default)]
struct Row {
    planted: usize,
    found: usize,
    side_effects: usize,
    side_effects_found: usize,
    alerts: usize,
    unexplained: usize,
    clean: usize,
}

impl Row {
    fn add(&mut self, r: &Row) {
        self.planted += r.planted;
        self.found += r.found;
        self.side_effects += r.side_effects;
        self.side_effects_found += r.side_effects_found;
        self.alerts += r.alerts;
        self.unexplained += r.unexplained;
        self.clean += r.clean;
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{:<24} {:>7} {:>5} {:>7} {:>12} {:>6} {:>11} {:>9} {:>12}\n",
            name,
            self.planted,
            self.found,
            pct(self.found, self.planted),
            format!("{}/{}", self.side_effects_found, self.side_effects),
            self.alerts,
            self.unexplained,
            pct(self.alerts - self.unexplained, self.alerts),
            self.clean
        )
    }
}

fn pct(num: usize, den: usize) -> String {
    if den == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * num as f64 / den as f64)
    }
}

/// Per category (every one of `categories`, and any other seen): planted, found, side
/// effects found, alerts, unexplained, clean alerts, and the total; then per platform.
pub fn score_table(title: &str, runs: &[ScoreRun], categories: &[&str]) -> String {
    let mut rows: BTreeMap<&str, Row> = categories.iter().map(|&c| (c, Row::default())).collect();
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
        for a in &r.clean_alerts {
            rows.entry(a.category.as_str()).or_default().clean += 1;
        }
    }
    let mut out = format!(
        "\n{title}, {} platforms\n{:<24} {:>7} {:>5} {:>7} {:>12} {:>6} {:>11} {:>9} {:>12}\n",
        runs.len(),
        "category",
        "planted",
        "found",
        "recall",
        "side effects",
        "alerts",
        "unexplained",
        "precision",
        "clean alerts"
    );
    let mut total = Row::default();
    for (cat, r) in &rows {
        out.push_str(&r.line(cat));
        total.add(r);
    }
    out.push_str(&total.line("total"));
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

/// What every scorecard requires, as one line per failure: no parse error, every item
/// found, every alert explained, the clean stream silent.
pub fn score_failures(runs: &[ScoreRun]) -> Vec<String> {
    let mut failures = Vec::new();
    for r in runs {
        let tag = r.tag();
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
    }
    failures
}

impl ScoreRun {
    /// `seed 1 tenants 4`, to name the platform in a failure.
    pub fn tag(&self) -> String {
        format!("seed {} tenants {}", self.seed, self.tenants)
    }
}
