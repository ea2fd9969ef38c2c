//! The Debian package (`[package.metadata.deb]` in Cargo.toml), built with cargo-deb from the
//! binary these tests run (`--no-build --profile dev`: a release build only for this would
//! take minutes) and installed with `dpkg -i` into a scratch root (`dpkg --root`; installing
//! for real would change the machine the tests run on). Checks: what `dpkg -I` and `dpkg -c`
//! say, the installed files, the conffile, and the installed binary's `config check` on the
//! installed default config.
//!
//! cargo-deb is found at `${AUDITWATCH_TOOLS:-$HOME/.cache/auditwatch/tools}/cargo-deb/bin`
//! (`.ci/run` installs it there with `cargo install --locked cargo-deb --root ...`).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::deploy_util::{mkdir, mode, run_ok as run};
use crate::util::{crate_dir, require, require_tool, BIN};

fn cargo_deb() -> PathBuf {
    let tools = std::env::var_os("AUDITWATCH_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                .join(".cache/auditwatch/tools")
        });
    tools.join("cargo-deb/bin/cargo-deb")
}

/// The .deb built from the test binary, in `out`.
fn build_deb(out: &Path) -> PathBuf {
    // BIN is <target dir>/debug/auditwatch: cargo-deb packages it from there.
    let target_dir = Path::new(BIN).parent().unwrap().parent().unwrap();
    run(Command::new(cargo_deb())
        .args([
            "--no-build",
            "--profile",
            "dev",
            "--locked",
            "--fast",
            "--strip",
        ])
        .arg("--output")
        .arg(out)
        .current_dir(crate_dir())
        .env("CARGO_TARGET_DIR", target_dir));
    let debs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one package in {out:?}: {debs:?}");
    debs.into_iter().next().unwrap()
}

#[test]
fn deb_package_installs_with_dpkg_and_its_binary_checks_its_config() {
    if !require(
        "cargo-deb",
        "cargo install --locked cargo-deb --root ~/.cache/auditwatch/tools/cargo-deb",
        cargo_deb().exists(),
    ) || !require_tool("dpkg", "a Debian system")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let deb = build_deb(&mkdir(dir.path().join("out")));

    let info = run(Command::new("dpkg-deb").arg("--info").arg(&deb));
    for want in [
        "Package: auditwatch",
        "Architecture: amd64",
        "Section: admin",
        "Depends: libc6",
    ] {
        assert!(info.contains(want), "dpkg -I lacks {want:?}:\n{info}");
    }
    // No maintainer scripts: the unit's DynamicUser needs no account, and the package
    // does not start a daemon whose config has not been edited yet.
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        assert!(!info.contains(script), "{script} in:\n{info}");
    }
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for want in [
        "./usr/bin/auditwatch",
        "./usr/lib/systemd/system/auditwatch.service",
        "./etc/auditwatch/auditwatch.yaml",
        "./usr/share/auditwatch/rules/cross_tenant_read.yaml",
        "./usr/share/auditwatch/dashboards/grafana/soc-overview.json",
        "./usr/share/auditwatch/dashboards/grafana/provisioning/dashboards/auditwatch.yaml",
        "./usr/share/auditwatch/dashboards/grafana/provisioning/datasources/auditwatch.yaml",
        "./usr/share/auditwatch/dashboards/prometheus/auditwatch.rules.yml",
        "./usr/share/doc/auditwatch/README.md",
        "./usr/share/doc/auditwatch/deploy.md",
    ] {
        assert!(contents.contains(want), "dpkg -c lacks {want}:\n{contents}");
    }
    // Every shipped rule and dashboard, not a stale list.
    for (src, dest) in [
        ("rules", "usr/share/auditwatch/rules"),
        (
            "dashboards/grafana",
            "usr/share/auditwatch/dashboards/grafana",
        ),
        (
            "dashboards/prometheus",
            "usr/share/auditwatch/dashboards/prometheus",
        ),
    ] {
        for e in std::fs::read_dir(crate_dir().join(src)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                let name = p.file_name().unwrap().to_str().unwrap();
                let want = format!("./{dest}/{name}");
                assert!(contents.contains(&want), "dpkg -c lacks {want}");
            }
        }
    }

    // dpkg -i into a scratch root: its own database, no chroot (no maintainer scripts).
    let root = dir.path().join("root");
    let admin = root.join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(admin.join(d)).unwrap();
    }
    std::fs::write(admin.join("status"), "").unwrap();
    // The scratch database knows no libc6: only the dependency check is forced.
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", dir.path().join("dpkg.log").display()))
        .args(["--force-not-root", "--force-depends", "--no-triggers", "-i"])
        .arg(&deb));
    let status = run(Command::new("dpkg-query")
        .arg(format!("--admindir={}", admin.display()))
        .args(["-W", "-f", "${Status}\n${Conffiles}\n", "auditwatch"]));
    assert!(status.starts_with("install ok installed"), "{status}");
    assert!(
        status.contains("/etc/auditwatch/auditwatch.yaml "),
        "the config is a conffile: {status}"
    );
    let installed_config = root.join("etc/auditwatch/auditwatch.yaml");
    assert_eq!(
        std::fs::read_to_string(&installed_config).unwrap(),
        std::fs::read_to_string(crate_dir().join("deploy/auditwatch.yaml")).unwrap()
    );
    // Readable by the unit's dynamic user.
    assert_eq!(mode(&installed_config), 0o644);
    let installed_bin = root.join("usr/bin/auditwatch");
    assert_eq!(mode(&installed_bin), 0o755);
    assert_eq!(
        std::fs::read_to_string(root.join("usr/lib/systemd/system/auditwatch.service")).unwrap(),
        std::fs::read_to_string(crate_dir().join("deploy/auditwatch.service")).unwrap()
    );

    // The installed binary checks the installed config; and refuses a broken one (the
    // check is a real one).
    let said = run(Command::new(&installed_bin)
        .args(["config", "check"])
        .arg(&installed_config));
    assert!(!said.contains("error"), "{said}");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "sources:\n  - {kind: socket, protocol: sctp, listen: x}\n",
    )
    .unwrap();
    let out = Command::new(&installed_bin)
        .args(["config", "check"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let version = run(Command::new(&installed_bin).arg("--version"));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
}
