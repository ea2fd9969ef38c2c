//! The command line behaves as people expect of a Unix daemon and tool: it says when it
//! starts, listens, runs and stops without being asked; `RUST_LOG` (and auditwatch's own
//! `AUDITWATCH_LOG`) set the filter; `--log-format json` gives one JSON object a line;
//! colour only on a terminal and never with `NO_COLOR`; a failed start says its error once;
//! `run` finds its config by `--config`, `AUDITWATCH_CONFIG` or the system file; shell
//! completions, a man page, and `--version` naming the commit.

use std::process::Command;

use serde_json::Value;

use crate::util::*;

/// A daemon config on free ports, alerts into `dir`.
fn config(dir: &std::path::Path) -> String {
    format!(
        "server: {{listen: 127.0.0.1:0}}\nsources:\n  - {{name: s, kind: socket, protocol: tcp, listen: 127.0.0.1:0}}\noutput: {{alerts: '{}'}}\nspool: {{dir: '{}'}}\n",
        dir.join("alerts.jsonl").display(),
        dir.join("spool").display()
    )
}

/// A config that validates but cannot start: its alert output is in a missing directory.
fn failing_config(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("failing.yaml");
    std::fs::write(
        &p,
        "server: {listen: ''}\nsources:\n  - {name: s, kind: socket, protocol: tcp, listen: 127.0.0.1:0}\noutput: {alerts: /nonexistent-auditwatch-dir/alerts.jsonl}\n",
    )
    .unwrap();
    p
}

/// With no log variable set, the daemon says it starts (naming its config), listens, runs,
/// drains and stops, at info.
#[test]
fn the_daemon_says_start_listen_ready_and_stop_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_env(
        dir.path(),
        &config(dir.path()),
        &[],
        &[("AUDITWATCH_LOG", ""), ("RUST_LOG", "")],
    );
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    let cfg = dir.path().join("config.yaml");
    let order = [
        "auditwatch starting",
        "http endpoint listening",
        "source listening",
        "auditwatch running",
        "draining",
        "engine drained",
        "auditwatch stopped",
    ];
    let lines: Vec<&str> = exit.log.lines().collect();
    let mut at = 0;
    for want in order {
        match lines[at..].iter().position(|l| l.contains(want)) {
            Some(i) => at += i + 1,
            None => panic!("no `{want}` after line {at} of the log:\n{}", exit.log),
        }
    }
    let start = lines
        .iter()
        .find(|l| l.contains("auditwatch starting"))
        .unwrap();
    assert!(start.contains(" INFO "), "{start}");
    assert!(
        start.contains(&format!("config={}", cfg.display())) && start.contains("found_by=--config"),
        "the start line names the config file and how it was found: {start}"
    );
    assert!(
        start.contains(&format!("revision={}", env!("AUDITWATCH_GIT_REVISION"))),
        "{start}"
    );
}

/// `RUST_LOG` is honoured, and `AUDITWATCH_LOG` wins over it.
#[test]
fn rust_log_sets_the_filter_and_auditwatch_log_overrides_it() {
    // A start that fails at once: its log is short and certain.
    let dir = tempfile::tempdir().unwrap();
    let cfg = failing_config(dir.path());
    let run = |env: &[(&str, &str)]| {
        let mut a = Auditwatch::new().args(["run", "--config"]).arg(&cfg);
        for (k, v) in env {
            a = a.env(k, v);
        }
        a.run()
    };
    let warn_only = run(&[("RUST_LOG", "warn")]);
    warn_only.assert_code(1);
    assert!(
        !warn_only.stderr.contains("auditwatch starting"),
        "{}",
        warn_only.context()
    );
    assert!(
        warn_only.stderr.contains("auditwatch run failed"),
        "{}",
        warn_only.context()
    );
    let both = run(&[("RUST_LOG", "warn"), ("AUDITWATCH_LOG", "info")]);
    assert!(
        both.stderr.contains("auditwatch starting"),
        "{}",
        both.context()
    );
    let off = run(&[("RUST_LOG", "off")]);
    assert_eq!(off.stderr, "", "{}", off.context());
    // A filter that does not parse is said, and the default used.
    let bad = run(&[("RUST_LOG", "auditwatch=loud")]);
    assert!(
        bad.stderr.contains("the log filter does not parse")
            && bad.stderr.contains("auditwatch starting"),
        "{}",
        bad.context()
    );
}

/// A failed start says its error once, and exits 1.
#[test]
fn a_failed_start_prints_its_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = failing_config(dir.path());
    let run = Auditwatch::new().args(["run", "--config"]).arg(&cfg).run();
    run.assert_code(1);
    let n = run.stderr.matches("cannot open the alert output").count();
    assert_eq!(n, 1, "the error is said {n} times\n{}", run.context());
}

/// `--log-format json`: every line on stderr is one JSON object with a timestamp, a level,
/// the message and the event's fields at the top level.
#[test]
fn json_logs_are_one_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_env(
        dir.path(),
        &config(dir.path()),
        &["--log-format", "json"],
        &[("AUDITWATCH_LOG", "")],
    );
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    let lines: Vec<Value> = exit
        .log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 5, "{}", exit.log);
    for l in &lines {
        assert!(
            l["timestamp"].is_string() && l["level"].is_string() && l["message"].is_string(),
            "{l}"
        );
    }
    let start = lines
        .iter()
        .find(|l| l["message"] == "auditwatch starting")
        .expect("start line");
    assert_eq!(start["level"], "INFO");
    assert_eq!(start["found_by"], "--config");
    assert!(
        start["config"].as_str().unwrap().ends_with("config.yaml"),
        "{start}"
    );
    let listening = lines
        .iter()
        .find(|l| l["message"] == "source listening")
        .expect("listening line");
    assert_eq!(listening["source"], "s");
    assert!(
        lines.iter().any(|l| l["message"] == "auditwatch stopped"),
        "{}",
        exit.log
    );
}

/// On a terminal the log is coloured, unless `NO_COLOR` is set; through a pipe it never is.
#[test]
fn colour_on_a_terminal_only_and_never_with_no_color() {
    if !require_tool("script", "apt-get install bsdutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = failing_config(dir.path());
    let on_a_terminal = |no_color: Option<&str>| -> String {
        let cmd = format!("{BIN} run --config {}", cfg.display());
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"])
            .env_remove("AUDITWATCH_LOG")
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        let out = c.output().expect("script runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = on_a_terminal(None);
    assert!(coloured.contains("auditwatch run failed"), "{coloured}");
    assert!(
        coloured.contains("\x1b["),
        "no colour on a terminal: {coloured:?}"
    );
    let plain = on_a_terminal(Some("1"));
    assert!(plain.contains("auditwatch run failed"), "{plain}");
    assert!(
        !plain.contains("\x1b["),
        "colour despite NO_COLOR: {plain:?}"
    );
    let piped = Auditwatch::new().args(["run", "--config"]).arg(&cfg).run();
    assert!(!piped.stderr.contains('\x1b'), "{}", piped.context());
}

/// `run` without `--config` reads `AUDITWATCH_CONFIG`, and says so; `config check` without
/// a file checks the same file.
#[test]
fn run_finds_its_config_in_auditwatch_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = failing_config(dir.path());
    let run = Auditwatch::new()
        .arg("run")
        .env("AUDITWATCH_CONFIG", cfg.to_str().unwrap())
        .run();
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!("config={}", cfg.display()))
            && run.stderr.contains("found_by=AUDITWATCH_CONFIG"),
        "{}",
        run.context()
    );
    // The file's problem, not the built-in default's success: it was read.
    assert!(
        run.stderr.contains("/nonexistent-auditwatch-dir"),
        "{}",
        run.context()
    );
    let check = Auditwatch::new()
        .args(["config", "check"])
        .env("AUDITWATCH_CONFIG", cfg.to_str().unwrap())
        .run();
    check.assert_code(0);
    assert!(
        check.stdout.contains(&format!("{}: ok", cfg.display())),
        "{}",
        check.context()
    );
    // A `--config` on the command line wins.
    let other = dir.path().join("other.yaml");
    std::fs::write(&other, "server: {listen: nonsense}\n").unwrap();
    let flag = Auditwatch::new()
        .args(["run", "--config"])
        .arg(&other)
        .env("AUDITWATCH_CONFIG", cfg.to_str().unwrap())
        .run();
    flag.assert_code(2);
    assert!(flag.stderr.contains("other.yaml:1:"), "{}", flag.context());
}

/// `--version` names the release, the commit and the build date.
#[test]
fn version_names_the_commit_and_the_build_date() {
    let run = auditwatch(["--version"]);
    run.assert_code(0);
    let v = run.stdout.trim();
    let rev = env!("AUDITWATCH_GIT_REVISION");
    let date = env!("AUDITWATCH_BUILD_DATE");
    assert_eq!(
        v,
        format!(
            "auditwatch {} (commit {rev}, built {date})",
            env!("CARGO_PKG_VERSION")
        )
    );
    // In a git checkout the commit is HEAD's; the date is a date.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(crate_dir())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(head) = head {
        assert_eq!(rev, head, "built from another commit than the checkout's");
    }
    let d: Vec<&str> = date.split('-').collect();
    assert!(
        date == "unknown"
            || (d.len() == 3 && d[0].len() == 4 && d.iter().all(|p| p.parse::<u32>().is_ok())),
        "{date}"
    );
}

/// Completion scripts for every shell clap knows name the subcommands; bash's parses.
#[test]
fn completions_are_printed_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = auditwatch(["completions", shell]);
        run.assert_code(0);
        for word in ["replay", "simulate", "completions", "log-format"] {
            assert!(
                run.stdout.contains(word),
                "{shell}: no `{word}`\n{}",
                run.context()
            );
        }
        if shell == "bash" {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("auditwatch.bash");
            std::fs::write(&f, &run.stdout).unwrap();
            let ok = Command::new("bash")
                .arg("-n")
                .arg(&f)
                .status()
                .expect("bash");
            assert!(ok.success(), "bash -n rejects the completion script");
        }
    }
    auditwatch(["completions", "tcsh"]).assert_code(2);
}

/// `auditwatch man` prints a man page that groff renders without a warning, naming every
/// subcommand.
#[test]
fn the_man_page_renders_and_names_every_subcommand() {
    let run = auditwatch(["man"]);
    run.assert_code(0);
    assert!(
        run.stdout.starts_with(".ie") || run.stdout.starts_with(".TH"),
        "{}",
        run.context()
    );
    assert!(run.stdout.contains(".TH auditwatch 1"), "{}", run.context());
    if !require_tool("groff", "apt-get install groff-base") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("auditwatch.1");
    std::fs::write(&page, &run.stdout).unwrap();
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww"])
        .arg(&page)
        .output()
        .expect("groff");
    let text = String::from_utf8_lossy(&out.stdout);
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && warnings.trim().is_empty(),
        "groff: {warnings}"
    );
    for sub in [
        "replay",
        "simulate",
        "rules",
        "run",
        "config",
        "completions",
        "man",
    ] {
        assert!(
            text.contains(sub),
            "the page does not name `{sub}`:\n{text}"
        );
    }
}
