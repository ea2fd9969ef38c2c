//! `auditwatch rules check|test` and `auditwatch config check` on broken files: every
//! problem is listed as `file:line:col: message` (1-based line and column, at the node at
//! fault), all of them and not only the first, and the exit code is 2. The broken files are
//! in `fixtures/bad_rules/` and `fixtures/bad_config/`, one file per kind of error.
//!
//! An expected line ending in `...` matches any line starting with what precedes it (for
//! messages that end in a long "expected one of" list).

use crate::util::*;

/// The `file:line:col: message` lines of stderr, and the count of its final
/// `N problem(s) in ...` line.
fn problems(run: &Run) -> (Vec<String>, Option<usize>) {
    let mut lines: Vec<String> = run.stderr.lines().map(str::to_string).collect();
    let mut count = None;
    if let Some(last) = lines.last() {
        if let Some((n, _)) = last.split_once(" problem(s) in ") {
            count = n.parse().ok();
            lines.pop();
        }
    }
    (lines, count)
}

fn matches(line: &str, expected: &str) -> bool {
    match expected.strip_suffix("...") {
        Some(prefix) => line.starts_with(prefix),
        None => line == expected,
    }
}

/// Run `auditwatch ARGS` and assert it exits 2 listing exactly `expected`, in order.
#[track_caller]
fn assert_problems<S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
    expected: &[&str],
) -> Run {
    let run = auditwatch(args);
    run.assert_code(2);
    let (lines, count) = problems(&run);
    let ok =
        lines.len() == expected.len() && lines.iter().zip(expected).all(|(l, e)| matches(l, e));
    assert!(
        ok,
        "problems differ\nexpected:\n  {}\ngot:\n  {}\n{}",
        expected.join("\n  "),
        lines.join("\n  "),
        run.context()
    );
    assert_eq!(
        count,
        Some(expected.len()),
        "the problem count line\n{}",
        run.context()
    );
    assert!(run.stdout.is_empty(), "{}", run.context());
    run
}

/// `rules check fixtures/bad_rules/NAME` lists exactly `expected`.
#[track_caller]
fn assert_rule_problems(name: &str, expected: &[&str]) {
    let path = format!("fixtures/bad_rules/{name}");
    assert_problems(["rules", "check", path.as_str()], expected);
}

/// `config check fixtures/bad_config/NAME` lists exactly `expected`.
#[track_caller]
fn assert_config_problems(name: &str, expected: &[&str]) {
    let path = format!("fixtures/bad_config/{name}");
    assert_problems(["config", "check", path.as_str()], expected);
}

// ---------------------------------------------------------------------------------------
// rules check: one kind of error per file.

#[test]
fn rules_check_reports_a_yaml_syntax_error_at_its_position() {
    assert_rule_problems(
        "yaml_syntax.yaml",
        &["fixtures/bad_rules/yaml_syntax.yaml:6:12: invalid YAML: ..."],
    );
}

#[test]
fn rules_check_reports_an_unknown_top_level_field() {
    assert_rule_problems(
        "unknown_top_level_field.yaml",
        &["fixtures/bad_rules/unknown_top_level_field.yaml:6:1: unknown field `severty_when` in a rule; expected one of: ..."],
    );
}

#[test]
fn rules_check_reports_an_unknown_detector_kind() {
    assert_rule_problems(
        "unknown_detector_kind.yaml",
        &["fixtures/bad_rules/unknown_detector_kind.yaml:10:9: unknown detector kind `threshold`; expected one of: ..."],
    );
}

#[test]
fn rules_check_reports_a_missing_required_field() {
    assert_rule_problems(
        "missing_category.yaml",
        &["fixtures/bad_rules/missing_category.yaml:1:1: a rule is missing required field `category`"],
    );
}

#[test]
fn rules_check_reports_a_regex_that_does_not_compile() {
    assert_rule_problems(
        "bad_regex.yaml",
        &["fixtures/bad_rules/bad_regex.yaml:11:14: regex is not a valid regex: ..."],
    );
}

#[test]
fn rules_check_reports_an_unknown_field_in_a_condition() {
    assert_rule_problems(
        "unknown_condition_field.yaml",
        &["fixtures/bad_rules/unknown_condition_field.yaml:10:14: unknown field `pathname`; expected one of: ..."],
    );
}

#[test]
fn rules_check_reports_an_unknown_identity_class() {
    assert_rule_problems(
        "unknown_identity_class.yaml",
        &["fixtures/bad_rules/unknown_identity_class.yaml:8:17: unknown identity class `robot`; expected one of: ..."],
    );
}

#[test]
fn rules_check_reports_a_field_test_with_two_operators() {
    assert_rule_problems(
        "two_operators.yaml",
        &["fixtures/bad_rules/two_operators.yaml:7:3: a field test needs exactly one operator of: ..."],
    );
}

#[test]
fn rules_check_reports_an_unknown_severity() {
    assert_rule_problems(
        "unknown_severity.yaml",
        &["fixtures/bad_rules/unknown_severity.yaml:4:11: unknown severity `severe`; expected one of: info, warning, high, critical"],
    );
}

#[test]
fn rules_check_reports_a_rule_id_defined_in_two_files() {
    assert_rule_problems(
        "duplicate_id",
        &["fixtures/bad_rules/duplicate_id/b.yaml:2:1: duplicate rule id `same-id` (first defined at fixtures/bad_rules/duplicate_id/a.yaml:1)"],
    );
}

#[test]
fn rules_check_reports_a_rule_without_a_quiet_example() {
    assert_rule_problems(
        "no_quiet_example.yaml",
        &["fixtures/bad_rules/no_quiet_example.yaml:1:1: a rule needs at least one example that fires and one that stays quiet"],
    );
}

#[test]
fn rules_check_reports_an_unknown_summary_placeholder() {
    assert_rule_problems(
        "unknown_placeholder.yaml",
        &["fixtures/bad_rules/unknown_placeholder.yaml:5:10: summary: unknown placeholder `{user}`; expected one of: ..."],
    );
}

#[test]
fn rules_check_reports_a_count_detector_without_window_secs() {
    assert_rule_problems(
        "count_missing_window.yaml",
        &["fixtures/bad_rules/count_missing_window.yaml:10:3: detector is missing required field `window_secs`"],
    );
}

#[test]
fn rules_check_reports_an_allow_list_the_config_does_not_define() {
    assert_rule_problems(
        "unknown_allow_list.yaml",
        &["fixtures/bad_rules/unknown_allow_list.yaml:1:1: rule `unknown-allow-list` names allow-list `migration_jobs`, which the config does not define"],
    );
}

#[test]
fn rules_check_reports_every_problem_of_a_file_not_only_the_first() {
    let f = "fixtures/bad_rules/several_errors.yaml";
    let expected = [
        format!("{f}:2:7: id must be lowercase letters, digits, `-` and `_`"),
        format!(
            "{f}:5:13: unknown severity `severe`; expected one of: info, warning, high, critical"
        ),
        format!("{f}:6:12: summary: unknown placeholder `{{user}}`; expected one of: ..."),
        format!("{f}:10:16: unknown field `pathname`; expected one of: ..."),
        format!("{f}:13:16: regex is not a valid regex: ..."),
        format!("{f}:14:19: unknown identity class `robot`; expected one of: ..."),
        format!("{f}:16:5: detector is missing required field `window_secs`"),
        format!("{f}:19:3: unknown field `owner` in a rule; expected one of: ..."),
        format!("{f}:29:11: unknown detector kind `threshold`; expected one of: ..."),
        format!("{f}:31:7: an example is missing required field `expect`"),
    ];
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_rule_problems("several_errors.yaml", &expected);
}

#[test]
fn rules_check_of_a_directory_reports_the_problems_of_every_file() {
    let run = auditwatch(["rules", "check", "fixtures/bad_rules"]);
    run.assert_code(2);
    let mut files: Vec<String> = std::fs::read_dir(crate_dir().join("fixtures/bad_rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            format!(
                "fixtures/bad_rules/{}",
                p.file_name().unwrap().to_string_lossy()
            )
        })
        .collect();
    files.sort();
    // unknown_allow_list.yaml is valid on its own; the cross-check with the config runs
    // only once every file has loaded.
    files.retain(|f| !f.ends_with("unknown_allow_list.yaml"));
    let (lines, count) = problems(&run);
    for f in &files {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("{f}:"))),
            "no problem reported for {f}\n{}",
            run.context()
        );
    }
    assert_eq!(count, Some(lines.len()), "{}", run.context());
}

#[test]
fn rules_check_of_a_directory_without_rule_files_exits_2() {
    let dir = Dir::new();
    dir.write("README.md", "no rules here\n");
    let run = auditwatch(os_args!["rules", "check", dir.path()]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("no rule files (*.yaml, *.yml) found"),
        "{}",
        run.context()
    );
}

#[test]
fn rules_check_accepts_the_shipped_rules() {
    let run = auditwatch(["rules", "check", "rules/"]);
    run.assert_code(0);
    assert!(run.stdout.contains("rule(s) ok"), "{}", run.context());
    // And the rules embedded in the binary.
    auditwatch(["rules", "check"]).assert_code(0);
}

#[test]
fn rules_check_with_a_broken_config_exits_2() {
    assert_problems(
        ["rules", "check", "--config", "fixtures/bad_config/bad_cidr.yaml", "rules/"],
        &[
            "fixtures/bad_config/bad_cidr.yaml:5:9: cidrs: `10.0.0.0/33` is not a CIDR (e.g. 10.0.0.0/8)",
            "fixtures/bad_config/bad_cidr.yaml:6:9: cidrs: `runners.example.com` is not a CIDR (e.g. 10.0.0.0/8)",
        ],
    );
}

// ---------------------------------------------------------------------------------------
// rules test

#[test]
fn rules_test_fails_a_rule_whose_examples_are_wrong_and_points_at_them() {
    let run = auditwatch(["rules", "test", "fixtures/bad_rules/failing_example"]);
    run.assert_code(1);
    let f = "fixtures/bad_rules/failing_example/rule.yaml";
    let fails: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL "))
        .collect();
    assert_eq!(fails.len(), 2, "{}", run.context());
    assert!(
        fails[0].starts_with(&format!(
            "FAIL {f}:17 [failing-example] a read is said to fire, but cannot: expected an alert"
        )),
        "{}",
        run.context()
    );
    assert!(
        fails[1].starts_with(&format!(
            "FAIL {f}:21 [failing-example] another delete is said to stay quiet, but fires: expected no alert"
        )),
        "{}",
        run.context()
    );
    assert!(
        run.stdout.lines().any(|l| l == "1 passed, 2 failed"),
        "{}",
        run.context()
    );
}

#[test]
fn rules_test_passes_every_example_of_the_shipped_rules() {
    let run = auditwatch(["rules", "test", "rules/"]);
    run.assert_code(0);
    let last = run.stdout.lines().last().unwrap_or("");
    let passed: u64 = last
        .strip_suffix(" passed, 0 failed")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("last line: {last:?}\n{}", run.context()));
    assert!(passed >= 20, "{}", run.context());
    assert!(!run.stdout.contains("FAIL"), "{}", run.context());
}

#[test]
fn rules_test_on_broken_rules_exits_2_listing_the_problems() {
    assert_problems(
        ["rules", "test", "fixtures/bad_rules/unknown_severity.yaml"],
        &["fixtures/bad_rules/unknown_severity.yaml:4:11: unknown severity `severe`; expected one of: info, warning, high, critical"],
    );
}

// ---------------------------------------------------------------------------------------
// config check

#[test]
fn config_check_reports_unknown_keys_at_every_level() {
    assert_config_problems(
        "unknown_key.yaml",
        &[
            "fixtures/bad_config/unknown_key.yaml:2:1: unknown field `bussiness_hours` in the config; expected one of: ...",
            "fixtures/bad_config/unknown_key.yaml:6:3: unknown field `response_timeout` in engine; expected one of: ...",
        ],
    );
}

#[test]
fn config_check_reports_a_time_zone_that_does_not_exist() {
    assert_config_problems(
        "bad_time_zone.yaml",
        &["fixtures/bad_config/bad_time_zone.yaml:2:14: time_zone: `Europe/Bonn` is not an IANA time zone (e.g. Europe/Berlin)"],
    );
}

#[test]
fn config_check_reports_each_bad_cidr() {
    assert_config_problems(
        "bad_cidr.yaml",
        &[
            "fixtures/bad_config/bad_cidr.yaml:5:9: cidrs: `10.0.0.0/33` is not a CIDR (e.g. 10.0.0.0/8)",
            "fixtures/bad_config/bad_cidr.yaml:6:9: cidrs: `runners.example.com` is not a CIDR (e.g. 10.0.0.0/8)",
        ],
    );
}

#[test]
fn config_check_reports_a_tenancy_regex_without_a_tenant_capture() {
    assert_config_problems(
        "regex_without_tenant.yaml",
        &["fixtures/bad_config/regex_without_tenant.yaml:3:7: tenancy.paths must have a named capture `(?P<tenant>...)`"],
    );
}

#[test]
fn config_check_reports_each_bad_hours_range() {
    assert_config_problems(
        "bad_hours.yaml",
        &[
            "fixtures/bad_config/bad_hours.yaml:2:26: `19:00-08:00` is not a time range like 08:00-19:00 (start before end)",
            "fixtures/bad_config/bad_hours.yaml:2:41: `13:00-25:00` is not a time range like 08:00-19:00 (start before end)",
        ],
    );
}

#[test]
fn config_check_reports_values_of_the_wrong_type() {
    assert_config_problems(
        "wrong_type.yaml",
        &[
            "fixtures/bad_config/wrong_type.yaml:2:18: lateness_secs must be a non-negative integer, found a string",
            "fixtures/bad_config/wrong_type.yaml:3:25: max_pending_requests must be a non-negative integer...",
            "fixtures/bad_config/wrong_type.yaml:4:17: admin_policies must be a list, found a mapping",
            "fixtures/bad_config/wrong_type.yaml:6:9: days must be a list, found a string",
        ],
    );
}

#[test]
fn config_check_reports_a_yaml_syntax_error_at_its_position() {
    assert_config_problems(
        "yaml_syntax.yaml",
        &["fixtures/bad_config/yaml_syntax.yaml:3:8: invalid YAML: ..."],
    );
}

#[test]
fn config_check_reports_every_problem_of_a_file_not_only_the_first() {
    let f = "fixtures/bad_config/several_errors.yaml";
    let expected = [
        format!("{f}:4:17: tenancy.identity.namespace is not a valid regex: ..."),
        format!("{f}:5:11: tenancy.paths must have a named capture `(?P<tenant>...)`"),
        format!("{f}:7:14: time_zone: `Mars/Olympus_Mons` is not an IANA time zone ..."),
        format!("{f}:8:20: `funday` is not a day of the week ..."),
        format!("{f}:9:26: `18:00-17:00` is not a time range ..."),
        format!("{f}:12:13: cidrs: `10.0.0.0/33` is not a CIDR ..."),
        format!("{f}:14:18: lateness_secs must be a non-negative integer, found a string"),
        format!("{f}:15:3: unknown field `response_timeout` in engine; expected one of: ..."),
        format!("{f}:17:22: max_refresh_ratio must be in (0, 1]"),
        format!("{f}:20:7: an allow-list entry must set at least one of ..."),
        format!("{f}:20:16: action must be `info` or `silence`, found `mute`"),
        format!("{f}:21:1: unknown field `colour` in the config; expected one of: ..."),
    ];
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_config_problems("several_errors.yaml", &expected);
}

#[test]
fn the_default_config_printed_by_config_default_passes_config_check() {
    let dir = Dir::new();
    let printed = auditwatch(["config", "default"]);
    printed.assert_code(0);
    assert!(
        printed.stdout.contains("business_hours:"),
        "{}",
        printed.context()
    );
    let f = dir.write("auditwatch.yaml", &printed.stdout);
    let run = auditwatch(os_args!["config", "check", f]);
    run.assert_code(0);
    assert!(run.stdout.trim_end().ends_with(": ok"), "{}", run.context());
}

#[test]
fn config_check_of_a_missing_file_exits_2() {
    let run = auditwatch(["config", "check", "fixtures/bad_config/no-such-file.yaml"]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("no-such-file.yaml:1:1: cannot read config"),
        "{}",
        run.context()
    );
}

// ---------------------------------------------------------------------------------------
// replay refuses bad config or rules before reading any input.

/// A log that would raise an alert, to show replay did not run.
fn alerting_log(dir: &Dir) -> std::path::PathBuf {
    dir.write_lines("audit.log", &[cross_tenant_denied(&rid(1)).as_bytes()])
}

#[track_caller]
fn assert_replay_refused(run: &Run, problem: &str) {
    run.assert_code(2).assert_no_alerts();
    assert!(run.stderr.contains(problem), "{}", run.context());
    assert!(
        !run.stderr.contains("replayed"),
        "replay ran\n{}",
        run.context()
    );
    assert!(run.stats_text.is_none(), "replay ran\n{}", run.context());
}

#[test]
fn replay_with_a_broken_config_exits_2_before_reading_input() {
    let dir = Dir::new();
    let log = alerting_log(&dir);
    let run = replay(os_args![
        "--config",
        "fixtures/bad_config/bad_time_zone.yaml",
        log
    ]);
    assert_replay_refused(
        &run,
        "fixtures/bad_config/bad_time_zone.yaml:2:14: time_zone",
    );
    // Nor is stdin read.
    let run = Auditwatch::new()
        .arg("replay")
        .with_stats()
        .args(["--config", "fixtures/bad_config/bad_time_zone.yaml", "-"])
        .stdin(cross_tenant_denied(&rid(1)))
        .run();
    assert_replay_refused(&run, "bad_time_zone.yaml:2:14");
}

#[test]
fn replay_with_broken_rules_exits_2_before_reading_input() {
    let dir = Dir::new();
    let log = alerting_log(&dir);
    let run = replay(os_args!["--rules", "fixtures/bad_rules/duplicate_id", log]);
    assert_replay_refused(&run, "duplicate rule id `same-id`");
    let run = replay(os_args!["--rules", "fixtures/bad_rules/no-such-dir", log]);
    assert_replay_refused(&run, "no-such-dir");
}

#[test]
fn replay_with_rules_naming_an_undefined_allow_list_exits_2() {
    let dir = Dir::new();
    let log = alerting_log(&dir);
    let run = replay(os_args![
        "--rules",
        "fixtures/bad_rules/unknown_allow_list.yaml",
        log
    ]);
    assert_replay_refused(&run, "allow-list `migration_jobs`");
}

// ---------------------------------------------------------------------------------------
// Known bugs: problems missed or placed at the enclosing node instead of the item at fault.
// Reproduce with `auditwatch rules check fixtures/bad_rules/bugs/NAME.yaml`.

#[test]
fn rules_check_reports_every_unknown_identity_class_of_a_list_at_its_item() {
    assert_rule_problems(
        "bugs/identity_list.yaml",
        &[
            "fixtures/bad_rules/bugs/identity_list.yaml:7:21: unknown identity class `robot`; expected one of: ...",
            "fixtures/bad_rules/bugs/identity_list.yaml:7:28: unknown identity class `alien`; expected one of: ...",
        ],
    );
}

#[test]
fn rules_check_reports_the_misspelt_kind_of_a_detector() {
    assert_rule_problems(
        "bugs/detector_kind_misspelt.yaml",
        &[
            "fixtures/bad_rules/bugs/detector_kind_misspelt.yaml:10:3: detector is missing required field `kind`",
            "fixtures/bad_rules/bugs/detector_kind_misspelt.yaml:10:3: unknown field `knd` in ...",
        ],
    );
}

#[test]
fn rules_check_reports_every_unknown_cadence_check_at_its_item() {
    assert_rule_problems(
        "bugs/cadence_checks.yaml",
        &[
            "fixtures/bad_rules/bugs/cadence_checks.yaml:12:12: unknown cadence check `too_often`; expected one of: too_frequent, stale, lease_race",
            "fixtures/bad_rules/bugs/cadence_checks.yaml:12:30: unknown cadence check `lease_racing`; expected one of: too_frequent, stale, lease_race",
        ],
    );
}

#[test]
fn rules_check_reports_an_unknown_key_field_at_its_item() {
    assert_rule_problems(
        "bugs/key_field.yaml",
        &["fixtures/bad_rules/bugs/key_field.yaml:11:23: key: unknown field `pth`; expected one of: ..."],
    );
}

#[test]
fn rules_check_reports_both_an_unknown_field_and_a_bad_regex_in_one_test() {
    assert_rule_problems(
        "bugs/field_and_regex.yaml",
        &[
            "fixtures/bad_rules/bugs/field_and_regex.yaml:7:10: unknown field `pathname`; expected one of: ...",
            "fixtures/bad_rules/bugs/field_and_regex.yaml:8:10: regex is not a valid regex: ...",
        ],
    );
}

#[test]
fn a_negative_number_is_reported_with_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, "engine:\n  lateness_secs: -1\n").unwrap();
    let run = auditwatch(os_args!["config", "check", file]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains(":2:18: lateness_secs must be a non-negative integer, found -1"),
        "{}",
        run.context()
    );
}

#[test]
fn a_broken_config_and_broken_rules_are_both_reported_in_one_run() {
    let run = auditwatch(os_args![
        "replay",
        "--config",
        "fixtures/bad_config/unknown_key.yaml",
        "--rules",
        "fixtures/bad_rules/unknown_severity.yaml",
        "-"
    ]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("fixtures/bad_config/unknown_key.yaml:"),
        "{}",
        run.context()
    );
    assert!(
        run.stderr
            .contains("fixtures/bad_rules/unknown_severity.yaml:"),
        "{}",
        run.context()
    );
}

/// A config that exposes an endpoint beyond this host validates, but `config check` says
/// what is exposed; a loopback-only config gets no warning.
#[test]
fn config_check_warns_about_endpoints_beyond_loopback() {
    let dir = Dir::new();
    let exposed = dir.write(
        "exposed.yaml",
        "server: {listen: '0.0.0.0:9201'}\n\
         sources:\n  - {name: vault, kind: socket, protocol: tcp, listen: '0.0.0.0:9200'}\n",
    );
    let run = auditwatch(["config", "check", exposed.to_str().unwrap()]);
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("server.listen 0.0.0.0:9201 is reachable beyond this host"),
        "{}",
        run.context()
    );
    assert!(
        run.stderr
            .contains("source `vault` listens on 0.0.0.0:9200, beyond this host"),
        "{}",
        run.context()
    );
    let local = dir.write(
        "local.yaml",
        "server: {listen: '127.0.0.1:9201'}\n\
         sources:\n  - {name: vault, kind: socket, protocol: tcp, listen: '127.0.0.1:9200'}\n",
    );
    let run = auditwatch(["config", "check", local.to_str().unwrap()]);
    run.assert_code(0);
    assert!(!run.stderr.contains("warning"), "{}", run.context());
}

/// The socket source's partial-line budget has a floor: a budget smaller than one ordinary
/// entry would close Vault's own connection.
#[test]
fn config_check_rejects_a_partial_line_budget_below_one_mib() {
    let dir = Dir::new();
    let f = dir.write(
        "tiny.yaml",
        "sources:\n  - {name: vault, kind: socket, protocol: tcp, listen: '127.0.0.1:9200', max_partial_bytes: 4096}\n",
    );
    let run = auditwatch(["config", "check", f.to_str().unwrap()]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("max_partial_bytes must be at least 1048576"),
        "{}",
        run.context()
    );
}
