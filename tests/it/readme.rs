//! The README's examples are promises: its example rule must pass `rules check` and
//! `rules test`, and its example config must pass `config check`.

use std::process::Command;

use crate::util::BIN;

const README: &str = include_str!("../../README.md");

fn block_starting(marker: &str) -> String {
    let start = README
        .find(marker)
        .unwrap_or_else(|| panic!("README has no block starting {marker:?}"));
    let body = &README[start + "```yaml\n".len()..];
    body[..body.find("```").expect("closed block")].to_string()
}

fn auditwatch(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn readme_example_rule_is_valid_and_its_examples_pass() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("example.yaml");
    std::fs::write(&file, block_starting("```yaml\nid: vault-root-token-use")).unwrap();
    let f = file.to_str().unwrap();
    let (code, out) = auditwatch(&["rules", "check", f]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = auditwatch(&["rules", "test", f]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 passed, 0 failed"), "{out}");
}

#[test]
fn readme_example_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, block_starting("```yaml\nbusiness_hours:")).unwrap();
    let (code, out) = auditwatch(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn readme_sink_wiring_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auditwatch.yaml");
    let block = block_starting("```yaml\n# auditwatch.yaml");
    assert!(block.contains("alertmanager:") && block.contains("email:"));
    std::fs::write(&file, block).unwrap();
    let (code, out) = auditwatch(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}
