//! The HTML forensics report in a real browser: generates the page of the incident fixture
//! with the binary, then runs `node --test tests/browser/report.test.mjs` (headless
//! Chromium through playwright-core). Needs Debian's `/usr/bin/chromium`
//! (`apt-get install -y chromium`) and the test's `node_modules` (`npm ci --prefix
//! tests/browser`); without them it says so and passes.
//!
//! `AUDITWATCH_SCREENSHOT=docs/report.png cargo test --test report_browser` refreshes the
//! screenshot in the docs.

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn html_report_works_in_headless_chromium() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let chromium = Path::new("/usr/bin/chromium");
    let modules = root.join("tests/browser/node_modules/playwright-core");
    let node = Command::new("node").arg("--version").output();
    if !chromium.exists() || !modules.exists() || node.is_err() {
        eprintln!(
            "note: the browser test did not run: it needs node, /usr/bin/chromium (apt-get install -y chromium) and tests/browser/node_modules (npm ci --prefix tests/browser)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("incident.html");
    let out = Command::new(env!("CARGO_BIN_EXE_auditwatch"))
        .current_dir(&root)
        .args(["replay", "--quiet", "--report"])
        .arg(&page)
        .arg("fixtures/report/incident.jsonl")
        .output()
        .expect("auditwatch runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new("node")
        .current_dir(&root)
        .args(["--test", "tests/browser/report.test.mjs"])
        .env("AUDITWATCH_REPORT", &page)
        .output()
        .expect("node runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "the browser test failed:\n{text}");
    eprintln!("{text}");
}
