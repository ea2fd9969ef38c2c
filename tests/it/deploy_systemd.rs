//! The systemd unit as shipped (`deploy/auditwatch.service`): `systemd-analyze verify`
//! finds nothing to say about it, and every path the shipped default config, the README's
//! example config and the deploy guide's config write is one the hardened unit lets the
//! daemon write (`ProtectSystem=strict` makes everything else read-only, and the unit used to
//! restart-loop on the README's own `/var/log/auditwatch/alerts.jsonl`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::deploy_util::chmod;
use crate::util::{crate_dir, fenced_block, require_tool, yaml_docs, BIN};

const UNIT: &str = include_str!("../../deploy/auditwatch.service");

/// The values of `key` in the unit's `[Service]` section, each assignment split on
/// whitespace (`StateDirectory=a b` is two directories).
fn service_values(key: &str) -> Vec<String> {
    let mut in_service = false;
    let mut out = Vec::new();
    for line in UNIT.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service {
            if let Some(v) = line.strip_prefix(key).and_then(|r| r.strip_prefix('=')) {
                out.extend(v.split_whitespace().map(str::to_string));
            }
        }
    }
    out
}

/// The directories the unit lets the service write: its `StateDirectory=`,
/// `LogsDirectory=`, `RuntimeDirectory=` and `CacheDirectory=` under their systemd roots,
/// and `ReadWritePaths=`.
fn writable_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for (key, root) in [
        ("StateDirectory", "/var/lib"),
        ("LogsDirectory", "/var/log"),
        ("RuntimeDirectory", "/run"),
        ("CacheDirectory", "/var/cache"),
    ] {
        dirs.extend(service_values(key).iter().map(|d| Path::new(root).join(d)));
    }
    dirs.extend(
        service_values("ReadWritePaths")
            .iter()
            .map(|p| PathBuf::from(p.trim_start_matches('-'))),
    );
    dirs
}

/// The paths a daemon config makes auditwatch write (`writes`) and read (`reads`): every
/// `*dir` key (spool, state, checkpoints, the email outbox), the JSON lines file
/// `output.alerts`, a unix socket source's `listen`; and every `path`, `*_file` and
/// `rotated_dirs` value.
fn config_paths(config: &Value) -> (Vec<PathBuf>, Vec<PathBuf>) {
    fn walk(
        key: &str,
        v: &Value,
        parent: &Value,
        writes: &mut Vec<PathBuf>,
        reads: &mut Vec<PathBuf>,
    ) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, x)| walk(k, x, v, writes, reads)),
            Value::Array(a) => a.iter().for_each(|x| walk(key, x, parent, writes, reads)),
            Value::String(s) if s.starts_with('/') => {
                let unix_listen = key == "listen" && parent["protocol"] == "unix";
                if key.ends_with("dir") || key == "alerts" || unix_listen {
                    writes.push(PathBuf::from(s));
                } else if key == "path" || key.ends_with("_file") || key == "rotated_dirs" {
                    reads.push(PathBuf::from(s));
                }
            }
            _ => {}
        }
    }
    let (mut writes, mut reads) = (Vec::new(), Vec::new());
    walk("", config, &Value::Null, &mut writes, &mut reads);
    (writes, reads)
}

/// The configs the unit must run: the .deb's default (as shipped, and with its
/// commented-out file source switched on), the README's sink wiring example and the
/// deployment guide's example.
fn configs() -> Vec<(&'static str, String)> {
    let shipped = std::fs::read_to_string(crate_dir().join("deploy/auditwatch.yaml")).unwrap();
    let with_file_source = shipped.replace("  # - {name: vault-file", "  - {name: vault-file");
    assert_ne!(
        shipped, with_file_source,
        "the shipped config offers a file source"
    );
    let readme = std::fs::read_to_string(crate_dir().join("README.md")).unwrap();
    let guide = std::fs::read_to_string(crate_dir().join("deploy/README.md")).unwrap();
    vec![
        ("deploy/auditwatch.yaml", shipped),
        (
            "deploy/auditwatch.yaml with its file source",
            with_file_source,
        ),
        (
            "README.md's sink wiring",
            fenced_block(&readme, "yaml", "# auditwatch.yaml"),
        ),
        (
            "deploy/README.md's config",
            fenced_block(&guide, "yaml", "# auditwatch config"),
        ),
    ]
}

#[test]
fn unit_passes_systemd_analyze_verify_without_a_warning() {
    if !require_tool("systemd-analyze", "apt-get install systemd") {
        return;
    }
    // A scratch root: systemd's own units (the targets the unit is ordered against), the
    // unit where the package puts it, and stand-ins for the programs it runs (verify
    // checks that they exist and are executable; the real binary is the package test's).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let system = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .find(|d| Path::new(d).join("sysinit.target").exists())
        .expect("systemd's unit directory");
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(system)
        .arg(root.join("usr/lib/systemd/"))
        .status()
        .unwrap();
    assert!(copied.success());
    for exec in ["ExecStart", "ExecReload"] {
        let program = service_values(exec)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("the unit has {exec}="));
        let stub = root.join(program.trim_start_matches('/'));
        std::fs::create_dir_all(stub.parent().unwrap()).unwrap();
        std::fs::write(&stub, "#!/bin/sh\n").unwrap();
        chmod(&stub, 0o755);
    }
    let units = root.join("usr/lib/systemd/system");
    let verify = |name: &str, text: &str| {
        std::fs::write(units.join(name), text).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .arg(name)
            .env("SYSTEMD_LOG_COLOR", "0")
            .output()
            .expect("systemd-analyze runs");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    };
    let (ok, said) = verify("auditwatch.service", UNIT);
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify deploy/auditwatch.service: {said}"
    );
    // The same run does read the file: a key systemd does not know is reported (verify
    // exits 0 on such a warning, so the test requires silence, not the exit code).
    let (_, said) = verify(
        "auditwatch-typo.service",
        &UNIT.replace("[Service]\n", "[Service]\nProtectSytem=strict\n"),
    );
    assert!(said.contains("ProtectSytem"), "{said}");
}

#[test]
fn unit_lets_the_daemon_write_every_path_of_the_shipped_and_documented_configs() {
    assert_eq!(service_values("ProtectSystem"), ["strict"]);
    assert_eq!(service_values("ProtectHome"), ["yes"]);
    assert_eq!(service_values("PrivateTmp"), ["yes"]);
    let exec = service_values("ExecStart");
    assert_eq!(
        exec,
        [
            "/usr/bin/auditwatch",
            "run",
            "--config",
            "/etc/auditwatch/auditwatch.yaml"
        ],
        "the unit runs the packaged binary on the packaged config"
    );
    let writable = writable_dirs();
    for want in [
        "/var/lib/auditwatch",
        "/var/log/auditwatch",
        "/run/auditwatch",
    ] {
        assert!(
            writable.contains(&PathBuf::from(want)),
            "{want} in {writable:?}"
        );
    }
    let private = ["/home", "/root", "/run/user", "/tmp", "/var/tmp"];
    for (what, text) in configs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auditwatch.yaml");
        std::fs::write(&file, &text).unwrap();
        let out = Command::new(BIN)
            .args(["config", "check"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what}: config check: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let docs = yaml_docs(what, &text);
        let (writes, reads) = config_paths(&docs[0]);
        assert!(!writes.is_empty(), "{what} writes somewhere");
        for w in &writes {
            assert!(
                writable.iter().any(|d| w.starts_with(d)),
                "{what}: {w:?} is read-only under the unit (writable: {writable:?})"
            );
        }
        for r in &reads {
            assert!(
                !private.iter().any(|p| r.starts_with(p)),
                "{what}: {r:?} is hidden from the unit (ProtectHome, PrivateTmp)"
            );
        }
    }
}
