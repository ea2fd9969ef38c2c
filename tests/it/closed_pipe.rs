//! A reader that closes stdout early (`auditwatch … | head`) ends every subcommand
//! quietly with exit 0: regression tests for `replay | head` exiting 1 ("cannot write
//! alerts: Broken pipe") and `rules check | head` exiting 101 (a `println!` panic).
//!
//! Each command runs with its stdout on a pipe whose reading end is already closed, so
//! its very first write meets EPIPE, deterministically.

use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::BIN;

/// Run `auditwatch args` with a closed stdout pipe; its exit code and stderr.
fn run_into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = io::pipe().expect("pipe");
    drop(reader);
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr reads");
    (child.wait().expect("waits").code(), err)
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/scenarios")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_subcommand_ends_quietly_with_exit_0_when_stdout_closes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("auditwatch.yaml");
    std::fs::write(&config, auditwatch::config::DEFAULT_YAML).unwrap();
    let config = config.to_str().unwrap();
    let input = fixture("root-token-session.jsonl");
    let cases: [&[&str]; 9] = [
        &["replay", "--quiet", &input],
        &["replay", "--quiet", "--format", "text", &input],
        &["rules", "check"],
        &["rules", "test", "--verbose"],
        &["rules", "list"],
        &["config", "default"],
        &["config", "check", config],
        &["simulate", "--duration", "10m", "--tenants", "2"],
        &["--help"],
    ];
    for args in cases {
        let (code, err) = run_into_closed_pipe(args);
        assert_eq!(code, Some(0), "auditwatch {args:?}: stderr: {err}");
        assert!(
            !err.contains("error") && !err.contains("panicked"),
            "auditwatch {args:?} complained: {err}"
        );
    }
}

#[test]
fn the_replayed_input_raises_alerts() {
    // Sanity check of the premise: the input does raise alerts, so the replay above wrote
    // (and met the closed pipe) rather than printing nothing.
    let out = Command::new(BIN)
        .args(["replay", "--quiet", &fixture("root-token-session.jsonl")])
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert!(!out.stdout.is_empty());
}
