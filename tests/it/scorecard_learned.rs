//! The scorecard of the detections that learn (issue 18): `simulate --inject learned` on
//! three platforms (seed, tenants) of 8 days and 12 hours from a Monday (without the
//! validation loop and the metrics scrape, which read no secret), replayed with the
//! default config (the 7-day learning period) and the embedded rules. The main scorecard's
//! ten hours are too short to pass a learning period, so these run apart.
//!
//! Required, per detection: every planted finding found (recall 100%), every alert
//! explained by the answer key (0 unexplained), and the clean stream of the same platform
//! (the same 8.5 days with no injection: people on their usual days, ESO, CI, the
//! break-glass job) silent. The `new_tenant` look-alike (a tenant created after the
//! learning period, its secrets read by ESO and a person at once) plants nothing: any
//! alert it causes is unexplained. The table prints before the assertions
//! (`cargo test --test it scorecard_learned -- --nocapture` shows it on success too).

use auditwatch::simulate::learned::INJECTIONS;
use auditwatch::simulate::SimConfig;

use crate::util::{score_failures, score_platforms, score_table};

const PLATFORMS: [(u64, usize); 3] = [(1, 2), (2, 3), (3, 5)];
const HOURS: i64 = 8 * 24 + 12;
const CATEGORIES: [&str; 3] = [
    "first_seen_access",
    "human_in_machine_secret",
    "unusual_hour",
];

#[test]
fn learned_detections_find_every_planted_finding_and_nothing_else() {
    let runs = score_platforms(&PLATFORMS, |seed, tenants| SimConfig {
        seed,
        tenants,
        duration_secs: HOURS * 3600,
        injections: INJECTIONS.to_vec(),
        // The validation loop and the metrics scrape are most of the volume and touch no
        // secret: left out, 8.5 days replay in seconds.
        store_validation_secs: None,
        metrics_scrape_secs: None,
        ..SimConfig::default()
    });
    println!(
        "{}",
        score_table(
            &format!("scorecard (learned): simulate --inject learned, {HOURS} h"),
            &runs,
            &CATEGORIES
        )
    );
    let mut failures = score_failures(&runs);
    for r in &runs {
        for c in CATEGORIES {
            if !r.items.iter().any(|i| i.category == c && !i.side_effect) {
                failures.push(format!("{}: nothing planted for {c}", r.tag()));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
