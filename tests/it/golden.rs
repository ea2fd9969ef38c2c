//! What the golden scenarios mean. Every `fixtures/scenarios/<name>.jsonl` reads without
//! a parse error, and a scenario from the simulator's catalogue raises what its answer key
//! says: a look-alike scenario raises nothing, and an injected one raises what its answer
//! key says and nothing it does not explain.
//!
//! That the alerts equal `<name>.alerts.jsonl` line for line, on every path (serial and
//! parallel replay, the daemon's socket and file sources), is `paths.rs`'s check.

use auditwatch::simulate::{scenarios, Simulation};

use crate::util::*;

#[test]
fn golden_scenarios_mean_what_the_catalogue_says() {
    let files = scenario_files();
    assert!(!files.is_empty(), "no scenarios in fixtures/scenarios");
    let catalogue = scenarios::catalogue();
    let mut failures = Vec::new();
    let mut checked = 0;
    for path in &files {
        let name = scenario_name(path);
        let bytes = std::fs::read(path).expect("readable scenario");
        let (alerts, parse_errors) = replay_lines(lines(&bytes));
        if parse_errors != 0 {
            failures.push(format!("{name}: {parse_errors} parse error(s)"));
        }
        let Some(sc) = catalogue.iter().find(|s| s.name == name) else {
            continue;
        };
        checked += 1;
        if sc.quiet() {
            if !alerts.is_empty() {
                let shown: String = alerts.iter().map(|a| a.to_json_line() + "\n").collect();
                failures.push(format!(
                    "{name}: a look-alike scenario raised {} alert(s):\n{shown}",
                    alerts.len()
                ));
            }
        } else {
            let sim = Simulation::new(&sc.config).expect("catalogue scenarios plan");
            let key = sim.answer_key();
            for item in &key.items {
                if !alerts.iter().any(|a| item.found_by(a)) {
                    failures.push(format!(
                        "{name}: injected finding not reported: {} ({}, at least {})",
                        item.description, item.category, item.min_severity
                    ));
                }
            }
            for a in &alerts {
                if !key.items.iter().any(|i| i.explains(a)) {
                    failures.push(format!(
                        "{name}: alert not explained by the answer key: {}",
                        a.to_json_line()
                    ));
                }
            }
        }
    }
    assert!(checked > 0, "no fixture is a catalogue scenario");
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}
