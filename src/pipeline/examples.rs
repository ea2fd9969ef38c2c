//! The rule examples runner (`rules test`): every example of every rule is fed through its
//! own pipeline, seeing only its own rule, and judged against what the example expects.
//! It sits above the pipeline; the examples themselves are data of [`crate::rules`].

use std::sync::Arc;

use crate::alert::Alert;
use crate::config::Config;
use crate::rules::examples::Example;
use crate::rules::RuleSet;

use super::Pipeline;

/// The outcome of one example.
#[derive(Debug)]
pub struct ExampleResult {
    pub rule: String,
    pub example: String,
    pub location: String,
    pub failure: Option<String>,
    pub alerts: Vec<Alert>,
}

/// Run every example of every rule; each example sees only its own rule.
pub fn run_all(rules: &RuleSet, cfg: &Arc<Config>) -> Vec<ExampleResult> {
    let mut results = Vec::new();
    for rule in &rules.rules {
        let only = Arc::new(rules.only(&rule.id));
        for ex in &rule.examples {
            let mut p = Pipeline::new(cfg.clone(), only.clone());
            let mut alerts = Vec::new();
            for l in &ex.lines {
                let _ = p.feed_line(l.as_bytes(), &mut alerts);
            }
            p.finish(&mut alerts);
            let failure = judge(ex, &alerts);
            results.push(ExampleResult {
                rule: rule.id.clone(),
                example: ex.name.clone(),
                location: format!("{}:{}", rule.file, ex.line),
                failure,
                alerts,
            });
        }
    }
    results
}

fn judge(ex: &Example, alerts: &[Alert]) -> Option<String> {
    if !ex.expect_fire {
        return (!alerts.is_empty()).then(|| {
            format!(
                "expected no alert, got {}: {}",
                alerts.len(),
                alerts[0].summary
            )
        });
    }
    if alerts.is_empty() {
        return Some("expected an alert, got none".into());
    }
    if let Some(c) = ex.count {
        if alerts.len() as u64 != c {
            return Some(format!("expected {c} alert(s), got {}", alerts.len()));
        }
    }
    if let Some(s) = ex.severity {
        if alerts[0].severity != s {
            return Some(format!("expected severity {s}, got {}", alerts[0].severity));
        }
    }
    if let Some(k) = &ex.evidence_kind {
        let got = alerts[0].evidence.get("kind").and_then(|v| v.as_str());
        if got != Some(k.as_str()) {
            return Some(format!(
                "expected evidence.kind {k}, got {}",
                got.unwrap_or("none")
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rule_examples_pass() {
        let rs = crate::rules::RuleSet::embedded();
        let cfg = std::sync::Arc::new(crate::config::Config::default());
        let results = run_all(&rs, &cfg);
        let failures: Vec<String> = results
            .iter()
            .filter_map(|r| {
                r.failure
                    .as_ref()
                    .map(|f| format!("{} [{}] {}: {f}", r.location, r.rule, r.example))
            })
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
        assert!(results.len() >= 20);
    }
}
