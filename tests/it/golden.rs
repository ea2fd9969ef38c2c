//! Golden scenarios: every `fixtures/scenarios/<name>.jsonl` (except the `.alerts.jsonl`
//! files) is replayed through the pipeline with the default config and the embedded
//! rules, and its alerts must equal `<name>.alerts.jsonl` line for line. On a mismatch the
//! test prints a line diff (expected vs actual, with line numbers) and fails.
//!
//! `UPDATE_GOLDEN=1 cargo test --test it golden::` rewrites the expected files. Review the
//! diff before committing: an expected file is a claim about what the detections must
//! report (shared/docs/detections.md), not a snapshot of whatever the engine said.
//!
//! Scenarios from the simulator's catalogue are also checked against their meaning:
//! a look-alike scenario must raise nothing, and an injected one must raise what its
//! answer key says and nothing it does not explain.

use auditwatch::simulate::{scenarios, Simulation};

use crate::util::*;

#[test]
fn golden_scenarios() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let files = scenario_files();
    assert!(!files.is_empty(), "no scenarios in fixtures/scenarios");
    let catalogue = scenarios::catalogue();
    let mut failures = Vec::new();
    for path in &files {
        let name = scenario_name(path);
        let bytes = std::fs::read(path).expect("readable scenario");
        let (alerts, parse_errors) = replay_lines(lines(&bytes));
        if parse_errors != 0 {
            failures.push(format!("{name}: {parse_errors} parse error(s)"));
        }
        let actual: String = alerts.iter().map(|a| a.to_json_line() + "\n").collect();
        let expected_path = golden_path(name);
        if update {
            std::fs::write(&expected_path, &actual).expect("write expected alerts");
        } else {
            match std::fs::read_to_string(&expected_path) {
                Ok(expected) if expected == actual => {}
                Ok(expected) => failures.push(format!(
                    "{name}: alerts differ from {}\n{}",
                    expected_path.display(),
                    line_diff(&expected, &actual)
                )),
                Err(e) => failures.push(format!(
                    "{name}: cannot read {} ({e}); run UPDATE_GOLDEN=1 cargo test --test it golden::",
                    expected_path.display()
                )),
            }
        }

        // What the scenario means, independently of the expected file.
        if let Some(sc) = catalogue.iter().find(|s| s.name == name) {
            if sc.quiet() {
                if !alerts.is_empty() {
                    failures.push(format!(
                        "{name}: a look-alike scenario raised {} alert(s):\n{actual}",
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
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}
