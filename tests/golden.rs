//! Golden scenarios: every `fixtures/scenarios/<name>.jsonl` (except the `.alerts.jsonl`
//! files) is replayed through the pipeline with the default config and the embedded
//! rules, and its alerts must equal `<name>.alerts.jsonl` line for line. On a mismatch the
//! test prints a line diff (expected vs actual, with line numbers) and fails.
//!
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the expected files. Review the
//! diff before committing: an expected file is a claim about what the detections must
//! report (shared/docs/detections.md), not a snapshot of whatever the engine said.
//!
//! Scenarios from the simulator's catalogue are also checked against their meaning:
//! a look-alike scenario must raise nothing, and an injected one must raise what its
//! answer key says and nothing it does not explain.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use auditwatch::alert::Alert;
use auditwatch::config::Config;
use auditwatch::pipeline::Pipeline;
use auditwatch::rules::RuleSet;
use auditwatch::simulate::{scenarios, Simulation};

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios")
}

/// Replay a file's bytes; returns the alerts and the number of parse errors.
fn replay(bytes: &[u8]) -> (Vec<Alert>, u64) {
    let mut p = Pipeline::new(Arc::new(Config::default()), Arc::new(RuleSet::embedded()));
    let mut alerts = Vec::new();
    for line in bytes.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        // A parse error is counted by the pipeline; the check is on the total below.
        let _ = p.feed_line(line, &mut alerts);
    }
    p.finish(&mut alerts);
    (alerts, p.stats().parse_errors_total())
}

/// A line diff of two texts (longest common subsequence): changed lines only, each with
/// its line number on its own side.
fn line_diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let (n, m) = (e.len(), a.len());
    // lcs[i][j]: length of the LCS of e[i..] and a[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if e[i] == a[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && e[i] == a[j] {
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- expected {:>4}: {}\n", i + 1, e[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ actual   {:>4}: {}\n", j + 1, a[j]));
            j += 1;
        }
    }
    out
}

fn scenario_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(scenario_dir())
        .expect("fixtures/scenarios exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".jsonl") && !name.ends_with(".alerts.jsonl")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn golden_scenarios() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let files = scenario_files();
    assert!(!files.is_empty(), "no scenarios in fixtures/scenarios");
    let catalogue = scenarios::catalogue();
    let mut failures = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".jsonl"))
            .expect("a .jsonl file name");
        let bytes = std::fs::read(path).expect("readable scenario");
        let (alerts, parse_errors) = replay(&bytes);
        if parse_errors != 0 {
            failures.push(format!("{name}: {parse_errors} parse error(s)"));
        }
        let actual: String = alerts.iter().map(|a| a.to_json_line() + "\n").collect();
        let expected_path = scenario_dir().join(format!("{name}.alerts.jsonl"));
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
                    "{name}: cannot read {} ({e}); run UPDATE_GOLDEN=1 cargo test --test golden",
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

#[test]
fn line_diff_names_lines_on_both_sides() {
    let d = line_diff("a\nb\nc\n", "a\nx\nc\nd\n");
    assert_eq!(
        d,
        "- expected    2: b\n+ actual      2: x\n+ actual      4: d\n"
    );
    assert_eq!(line_diff("same\n", "same\n"), "");
}
