//! What a test needs from outside the crate: external tools (a real OpenBao, Prometheus,
//! Alertmanager, an SMTP server, moto, Chromium, node) and the real audit samples.
//!
//! Outside CI a missing one skips the test, saying so. Under `CI=true` it fails it: CI
//! installs every one of them (`.ci/run`), so a missing one there is a broken setup that
//! must not pass as green.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::cli::crate_dir;

/// Whether the environment says this is a CI run (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The running test's name (libtest names each test's thread after it).
fn test_name() -> String {
    match std::thread::current().name() {
        Some(n) if n != "main" => n.to_string(),
        _ => "this test".to_string(),
    }
}

/// Whether something the test needs is there (`found`). When it is not: under `CI=true`
/// the test fails here; otherwise `SKIPPED: <test>: <what> not found (install: <install>)`
/// goes to stderr and the caller returns.
#[track_caller]
pub fn require(what: &str, install: &str, found: bool) -> bool {
    if found {
        return true;
    }
    let msg = format!("{}: {what} not found (install: {install})", test_name());
    if in_ci() {
        panic!("CI=true and {msg}: CI must provide it, a skip would pass unseen");
    }
    // Past the test harness's capture, so a passing run shows what it did not test.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {msg}");
    false
}

/// Whether the executable `tool` is on `PATH`; see [`require`] for when it is not.
#[track_caller]
pub fn require_tool(tool: &str, install: &str) -> bool {
    require(tool, install, on_path(tool))
}

/// Whether an executable file named `tool` is in a directory of `PATH`.
pub fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            std::fs::metadata(d.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Whether `python3` can import `module`; see [`require`] for when it cannot.
#[track_caller]
pub fn require_python_module(module: &str, install: &str) -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require(&format!("python3 module {module}"), install, found)
}

/// Whether `dir` (relative to the crate root) exists; see [`require`] for when not.
#[track_caller]
pub fn require_path(path: &str, install: &str) -> bool {
    require(path, install, crate_dir().join(path).exists())
}

/// The real audit samples (`AUDITWATCH_SAMPLES`, relative to the crate root). Unset: the
/// test is skipped, or fails under `CI=true`. Set to something that is not a directory:
/// always a failure.
#[track_caller]
pub fn samples_dir() -> Option<PathBuf> {
    let v = std::env::var_os("AUDITWATCH_SAMPLES");
    if !require(
        "the audit samples (AUDITWATCH_SAMPLES)",
        "AUDITWATCH_SAMPLES=../shared/vault-audit/samples cargo test",
        v.is_some(),
    ) {
        return None;
    }
    let dir = crate_dir().join(v.expect("checked above"));
    assert!(
        dir.is_dir(),
        "AUDITWATCH_SAMPLES={} is not a directory",
        dir.display()
    );
    Some(dir)
}

/// The sample audit logs (`*.log`, `*.ndjson`) of the samples directory, sorted.
pub fn sample_logs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("readable samples directory")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("log" | "ndjson")
                )
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no *.log or *.ndjson in {}", dir.display());
    v
}
