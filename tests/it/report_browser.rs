//! The HTML forensics report in a real browser: generates the page of the incident fixture
//! with the binary, then runs `node --test tests/browser/report.test.mjs` (headless
//! Chromium through playwright-core). Needs Debian's `/usr/bin/chromium`
//! (`apt-get install -y chromium`) and the test's `node_modules` (`npm ci --prefix
//! tests/browser`); without them it says SKIPPED and passes, except under `CI=true`, where
//! it fails.
//!
//! `AUDITWATCH_SCREENSHOT=docs/report.png cargo test --test it report_browser::` refreshes the
//! screenshot in the docs.

use std::path::Path;
use std::process::Command;

use crate::util::{crate_dir, require, require_path, require_tool, BIN};

#[test]
fn html_report_works_in_headless_chromium() {
    let root = crate_dir();
    // Not `&&`: each missing one is said (or, under CI, the first fails the test).
    let have = [
        require(
            "/usr/bin/chromium",
            "apt-get install -y chromium",
            Path::new("/usr/bin/chromium").exists(),
        ),
        require_tool("node", "apt-get install -y nodejs"),
        require_path(
            "tests/browser/node_modules/playwright-core",
            "npm ci --prefix tests/browser",
        ),
    ];
    if have.contains(&false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("incident.html");
    let out = Command::new(BIN)
        .current_dir(root)
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
        .current_dir(root)
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
