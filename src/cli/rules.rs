//! `auditwatch rules check|test|list`.

use std::path::PathBuf;

use auditwatch::pipeline::examples;

use super::out::outln;
use super::{load_checked, load_rules, EXIT_RUNTIME};

pub fn check(dir: Option<PathBuf>, config: Option<PathBuf>) -> u8 {
    let (_, rules) = match load_checked(config.as_deref(), dir.as_ref()) {
        Ok(x) => x,
        Err(code) => return code,
    };
    outln!("{} rule(s) ok ({})", rules.rules.len(), rules.origin);
    0
}

pub fn test(dir: Option<PathBuf>, config: Option<PathBuf>, verbose: bool) -> u8 {
    let (cfg, rules) = match load_checked(config.as_deref(), dir.as_ref()) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let results = examples::run_all(&rules, &cfg.detection);
    let mut failed = 0;
    for r in &results {
        match &r.failure {
            Some(f) => {
                failed += 1;
                outln!("FAIL {} [{}] {}: {f}", r.location, r.rule, r.example);
            }
            None if verbose => outln!("ok   {} [{}] {}", r.location, r.rule, r.example),
            None => {}
        }
    }
    outln!("{} passed, {} failed", results.len() - failed, failed);
    if failed > 0 {
        EXIT_RUNTIME
    } else {
        0
    }
}

pub fn list(dir: Option<PathBuf>) -> u8 {
    let rules = match load_rules(dir.as_ref()) {
        Ok(r) => r,
        Err(code) => return code,
    };
    for r in &rules.rules {
        outln!(
            "{:<24} {:<20} {:<9} {:<16} {}",
            r.id,
            r.category,
            r.severity,
            r.detector.kind(),
            r.title
        );
    }
    0
}
