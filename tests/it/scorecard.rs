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
//! The platforms run on their own threads and each stream goes line by line from the
//! simulator into the pipeline: nothing holds a whole run in memory (`util::scorecard`).

use auditwatch::simulate::{Injection, SimConfig};

use crate::util::{score_failures, score_platforms, score_table};

/// (seed, tenants). Ten hours from Monday 00:00: the night for `after_hours_admin`, the
/// 7.5 hours `eso_stale` needs, and 08:00-10:00 for the human admins' sessions.
const PLATFORMS: [(u64, usize); 5] = [(1, 4), (2, 8), (3, 12), (4, 16), (5, 24)];
const HOURS: i64 = 10;

#[test]
fn every_planted_finding_is_found_and_nothing_else_is_reported() {
    let runs = score_platforms(&PLATFORMS, |seed, tenants| SimConfig {
        seed,
        tenants,
        duration_secs: HOURS * 3600,
        injections: Injection::ALL.to_vec(),
        ..SimConfig::default()
    });
    println!(
        "{}",
        score_table(
            &format!("scorecard: simulate --inject all, {HOURS} h"),
            &runs,
            &[]
        )
    );

    let mut failures = score_failures(&runs);
    // Every kind planted something of its own.
    for r in &runs {
        for inj in Injection::ALL {
            if !r
                .items
                .iter()
                .any(|i| i.injection == inj.name() && !i.side_effect)
            {
                failures.push(format!("{}: no answer item for {}", r.tag(), inj.name()));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
