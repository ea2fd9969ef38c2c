//! What users rely on when replaying real, messy audit files: a bad line is counted under
//! its reason and skipped, the good lines around it are still read and alerted on, and the
//! exit code says what happened (0 ran, 1 an input failed, 2 bad usage, 3 `--fail-on`).

use crate::util::*;

/// Replay `bad` lines framed by two known-good cross-tenant reads and check what must hold
/// whatever the bad lines are: exit 0, both good lines read (two entries, two alerts with
/// the right request ids, in order). The caller checks the counts by reason.
#[track_caller]
fn replay_between_good_lines(bad: &[&[u8]]) -> Run {
    let first = cross_tenant_denied(&rid(1));
    let last = cross_tenant_denied(&rid(2));
    let mut lines: Vec<&[u8]> = vec![first.as_bytes()];
    lines.extend_from_slice(bad);
    lines.push(last.as_bytes());
    let dir = Dir::new();
    let log = dir.write_lines("audit.log", &lines);
    let run = replay([&log]);
    run.assert_code(0).assert_alerts_for(&[rid(1), rid(2)]);
    assert_eq!(run.count("entries"), 2, "{}", run.context());
    assert_eq!(run.count("lines"), lines.len() as u64, "{}", run.context());
    run
}

#[test]
fn garbage_text_lines_are_invalid_json_and_the_lines_around_them_are_read() {
    let run = replay_between_good_lines(&[
        b"hello world",
        b"2026-03-02 14:07:00 [INFO] vault started",
        b"{not json at all}",
    ]);
    run.assert_parse_errors(&[("invalid_json", 3)]);
    let input = &run.input_reports("inputs")[0];
    assert_eq!(input["parse_errors"], 3, "{}", run.context());
    assert_eq!(input["entries"], 2, "{}", run.context());
}

#[test]
fn truncated_json_lines_are_counted_as_truncated() {
    let whole = cross_tenant_denied(&rid(9));
    let cut = &whole.as_bytes()[..whole.len() / 2];
    let run =
        replay_between_good_lines(&[cut, br#"{"time":"2026-03-02T14:07:00Z","type":"resp"#, b"{"]);
    run.assert_parse_errors(&[("truncated", 3)]);
}

#[test]
fn a_10_mib_line_is_read_whole_under_the_default_40_mib_cap() {
    // Vault writes request bodies up to its 32 MiB max_request_size into the entry, so the
    // default cap is above it: a 10 MiB entry is read like any other.
    let mut huge = br#"{"time":"2026-03-02T14:07:00Z","type":"response","pad":""#.to_vec();
    huge.resize(10 * 1024 * 1024, b'x');
    huge.extend_from_slice(br#""}"#);
    let a = cross_tenant_denied(&rid(1));
    let b = cross_tenant_denied(&rid(2));
    let dir = Dir::new();
    let log = dir.write_lines("audit.log", &[a.as_bytes(), &huge, b.as_bytes()]);
    let run = replay([&log]);
    run.assert_code(0)
        .assert_alerts_for(&[rid(1), rid(2)])
        .assert_parse_errors(&[]);
    assert_eq!(run.count("entries"), 3, "{}", run.context());
    assert!(run.count("bytes") > huge.len() as u64, "{}", run.context());
}

#[test]
fn a_line_over_the_cap_is_skipped_as_line_too_long_and_the_next_line_is_read() {
    // Over the cap and not like an entry (no entry key first, no type): counted only.
    let dir = Dir::new();
    let config = dir.write("config.yaml", "parse:\n  max_line_bytes: 4096\n");
    let mut huge = br#"{"pad":""#.to_vec();
    huge.resize(3 * 1024 * 1024, b'x');
    huge.extend_from_slice(br#""}"#);
    let a = cross_tenant_denied(&rid(1));
    let b = cross_tenant_denied(&rid(2));
    let log = dir.write_lines("audit.log", &[a.as_bytes(), &huge, b.as_bytes()]);
    let run = replay(os_args!["--config", config, log]);
    run.assert_code(0)
        .assert_alerts_for(&[rid(1), rid(2)])
        .assert_parse_errors(&[("line_too_long", 1)]);
    // The oversized line's bytes are accounted for, not silently lost.
    assert!(run.count("bytes") > huge.len() as u64, "{}", run.context());
}

#[test]
fn the_line_cap_follows_parse_max_line_bytes_in_the_config() {
    let dir = Dir::new();
    let config = dir.write("config.yaml", "parse:\n  max_line_bytes: 4096\n");
    let pad = |n: usize| {
        format!(
            r#"{{"time":"2026-03-02T14:07:00Z","type":"response","pad":"{}"}}"#,
            "y".repeat(n)
        )
    };
    let under = pad(3000);
    let over = pad(5000);
    let a = cross_tenant_denied(&rid(1));
    let b = cross_tenant_denied(&rid(2));
    let log = dir.write_lines(
        "audit.log",
        &[
            a.as_bytes(),
            under.as_bytes(),
            over.as_bytes(),
            b.as_bytes(),
        ],
    );
    let run = replay(os_args!["--config", config, log]);
    // The line over the cap starts like an entry: besides its count, an
    // `unreadable_entry` alert (it names no request id within its first bytes).
    run.assert_code(0)
        .assert_alerts_for(&[rid(1), "<none>".into(), rid(2)])
        .assert_parse_errors(&[("line_too_long", 1)]);
    assert_eq!(run.alerts()[1]["category"], "unreadable_entry");
    assert_eq!(run.alerts()[1]["evidence"]["size_bytes"], over.len() as u64);
    assert_eq!(run.count("entries"), 3, "{}", run.context());
}

#[test]
fn invalid_utf8_inside_a_json_string_is_counted_as_invalid_utf8() {
    // A byte 0xff in the middle of the path string.
    let line = cross_tenant_denied(&rid(9));
    let at = line.find("lumen").unwrap() + 2;
    let mut bad = line.into_bytes();
    bad[at] = 0xff;
    let a = cross_tenant_denied(&rid(1));
    let b = cross_tenant_denied(&rid(2));
    let dir = Dir::new();
    let lines: [&[u8]; 4] = [
        a.as_bytes(),
        &bad,
        b"{\"type\":\"response\",\"error\":\"caf\xc3\"}",
        b.as_bytes(),
    ];
    let log = dir.write_lines("audit.log", &lines);
    let run = replay([&log]);
    // The damaged entry still names its type and request id: it is counted and raises
    // `unreadable_entry`; the stray object is only counted.
    run.assert_code(0)
        .assert_alerts_for(&[rid(1), rid(9), rid(2)])
        .assert_parse_errors(&[("invalid_utf8", 2)]);
    assert_eq!(run.alerts()[1]["category"], "unreadable_entry");
    assert_eq!(run.alerts()[1]["evidence"]["reason"], "invalid_utf8");
}

#[test]
fn a_nul_run_inside_a_line_is_counted_as_nul_bytes() {
    let mut bad = cross_tenant_denied(&rid(9)).into_bytes();
    let tail = bad.split_off(bad.len() / 2);
    bad.extend_from_slice(&[0u8; 16]);
    bad.extend_from_slice(&tail);
    let a = cross_tenant_denied(&rid(1));
    let b = cross_tenant_denied(&rid(2));
    let dir = Dir::new();
    let log = dir.write_lines(
        "audit.log",
        &[a.as_bytes(), &bad, b"\0\0\0\0\0\0\0\0", b.as_bytes()],
    );
    let run = replay([&log]);
    // The entry with a NUL run inside names its type and request id before the run: it is
    // counted and raises `unreadable_entry`; the bare NUL run is only counted.
    run.assert_code(0)
        .assert_alerts_for(&[rid(1), rid(9), rid(2)])
        .assert_parse_errors(&[("nul_bytes", 2)]);
    assert_eq!(run.alerts()[1]["category"], "unreadable_entry");
    assert_eq!(run.count("nul_prefixed_lines"), 0, "{}", run.context());
}

#[test]
fn a_nul_run_before_an_entry_is_skipped_and_the_entry_is_read() {
    // copytruncate leaves a sparse hole of NULs before the next entry written.
    let mut holed = vec![0u8; 43_074];
    holed.extend_from_slice(cross_tenant_denied(&rid(3)).as_bytes());
    let a = cross_tenant_denied(&rid(1));
    let dir = Dir::new();
    let log = dir.write_lines("audit.log", &[a.as_bytes(), &holed]);
    let run = replay([&log]);
    run.assert_code(0)
        .assert_alerts_for(&[rid(1), rid(3)])
        .assert_parse_errors(&[]);
    assert_eq!(run.count("nul_prefixed_lines"), 1, "{}", run.context());
    assert_eq!(run.count("entries"), 2, "{}", run.context());
}

#[test]
fn json_that_is_not_an_object_is_counted_as_not_an_object() {
    let run = replay_between_good_lines(&[b"[1,2]", b"\"x\"", b"42", b"null"]);
    run.assert_parse_errors(&[("not_an_object", 4)]);
}

#[test]
fn an_object_without_a_type_is_counted_as_missing_type() {
    let run = replay_between_good_lines(&[
        b"{}",
        br#"{"time":"2026-03-02T14:07:00Z","request":{"id":"x"}}"#,
    ]);
    run.assert_parse_errors(&[("missing_type", 2)]);
}

#[test]
fn jsonx_lines_are_counted_as_jsonx() {
    let run = replay_between_good_lines(&[
        br#"<json:object name="auth"><json:string name="client_token">hmac-sha256:aa</json:string></json:object>"#,
    ]);
    run.assert_parse_errors(&[("jsonx", 1)]);
}

#[test]
fn every_kind_of_bad_line_in_one_file_is_counted_under_its_own_reason() {
    let run = replay_between_good_lines(&[
        b"garbage",
        br#"{"type":"respo"#,
        b"[1,2]",
        b"{}",
        b"<json:object/>",
        b"{\"type\":\"a\0\0b\"}",
        b"{\"type\":\"\xff\"}",
        b"",
    ]);
    run.assert_parse_errors(&[
        ("invalid_json", 1),
        ("truncated", 1),
        ("not_an_object", 1),
        ("missing_type", 1),
        ("jsonx", 1),
        ("nul_bytes", 1),
        ("invalid_utf8", 1),
    ]);
    assert_eq!(run.count("blank_lines"), 1, "{}", run.context());
}

#[test]
fn crlf_line_endings_are_read() {
    let a = cross_tenant_denied(&rid(1));
    let b = cross_tenant_denied(&rid(2));
    let dir = Dir::new();
    let log = dir.write("audit.log", format!("{a}\r\n{b}\r\n"));
    let run = replay([&log]);
    run.assert_code(0)
        .assert_alerts_for(&[rid(1), rid(2)])
        .assert_parse_errors(&[]);
    assert_eq!(run.count("entries"), 2, "{}", run.context());
    assert_eq!(run.count("blank_lines"), 0, "{}", run.context());
}

#[test]
fn a_final_line_without_a_newline_is_read() {
    let a = cross_tenant_denied(&rid(1));
    let b = cross_tenant_denied(&rid(2));
    let dir = Dir::new();
    let log = dir.write("audit.log", format!("{a}\n{b}"));
    let run = replay([&log]);
    run.assert_code(0)
        .assert_alerts_for(&[rid(1), rid(2)])
        .assert_parse_errors(&[]);
    assert_eq!(run.count("lines"), 2, "{}", run.context());
}

#[test]
fn blank_lines_are_skipped_and_are_not_errors() {
    let run = replay_between_good_lines(&[b"", b"   ", b"\t", b"\r", b""]);
    run.assert_parse_errors(&[]);
    assert_eq!(run.count("blank_lines"), 5, "{}", run.context());
}

#[test]
fn an_empty_file_replays_to_nothing_and_exits_0() {
    let dir = Dir::new();
    let log = dir.write("audit.log", "");
    let run = replay([&log]);
    run.assert_code(0)
        .assert_no_alerts()
        .assert_parse_errors(&[]);
    assert_eq!(run.count("entries"), 0, "{}", run.context());
    assert_eq!(run.count("lines"), 0, "{}", run.context());
    assert_eq!(run.input_names(), ["audit.log"], "{}", run.context());
}

#[test]
fn a_gzip_file_is_read() {
    let a = cross_tenant_denied(&rid(1));
    let b = cross_tenant_denied(&rid(2));
    let dir = Dir::new();
    let log = dir.write(
        "audit.log.1.gz",
        gzip(&join_lines(&[a.as_bytes(), b.as_bytes()])),
    );
    let run = replay([&log]);
    run.assert_code(0)
        .assert_alerts_for(&[rid(1), rid(2)])
        .assert_parse_errors(&[]);
    assert_eq!(run.count("entries"), 2, "{}", run.context());
}

#[test]
fn a_concatenated_multi_member_gzip_is_read_whole_whatever_its_name() {
    // `cat a.gz b.gz > c.gz` (and logrotate's delaycompress + append) give several
    // members; gzip is told by its magic bytes, not by the name.
    let mut bytes = gzip(&join_lines(&[cross_tenant_denied(&rid(1)).as_bytes()]));
    bytes.extend(gzip(&join_lines(
        &[cross_tenant_denied(&rid(2)).as_bytes()],
    )));
    bytes.extend(gzip(&join_lines(
        &[cross_tenant_denied(&rid(3)).as_bytes()],
    )));
    let dir = Dir::new();
    let log = dir.write("audit-archive", bytes);
    let run = replay([&log]);
    run.assert_code(0)
        .assert_alerts_for(&[rid(1), rid(2), rid(3)])
        .assert_parse_errors(&[]);
    assert_eq!(run.count("entries"), 3, "{}", run.context());
}

#[test]
fn a_directory_replays_its_logs_and_lists_other_files_as_skipped_inputs() {
    let dir = Dir::new();
    dir.write_lines("audit.log", &[cross_tenant_denied(&rid(1)).as_bytes()]);
    dir.write("notes.txt", "how we set up the audit device\n");
    dir.write(".hidden.log", cross_tenant_denied(&rid(7)));
    let run = replay([dir.path()]);
    run.assert_code(0)
        .assert_alerts_for(&[rid(1)])
        .assert_parse_errors(&[]);
    assert_eq!(run.input_names(), ["audit.log"], "{}", run.context());
    assert_eq!(run.skipped_names(), ["notes.txt"], "{}", run.context());
    let skipped = &run.input_reports("skipped_inputs")[0];
    assert_eq!(skipped["skipped"], true, "{}", run.context());
    assert!(
        skipped["problem"]
            .as_str()
            .is_some_and(|p| p.starts_with("skipped")),
        "{}",
        run.context()
    );
}

#[test]
fn stdin_is_read_when_the_path_is_a_dash() {
    let input = join_lines(&[
        cross_tenant_denied(&rid(1)).as_bytes(),
        b"garbage",
        cross_tenant_denied(&rid(2)).as_bytes(),
    ]);
    let run = Auditwatch::new()
        .arg("replay")
        .with_stats()
        .arg("-")
        .stdin(input)
        .run();
    run.assert_code(0)
        .assert_alerts_for(&[rid(1), rid(2)])
        .assert_parse_errors(&[("invalid_json", 1)]);
    assert_eq!(run.input_names(), ["-"], "{}", run.context());
}

/// A rotated set where a request is in the older file and its response in the newer one.
/// `time(i)` is the time of the i-th entry written.
fn write_rotated_set(dir: &Dir, time: impl Fn(u32) -> String) {
    // request A (cross-tenant) ... response A | request B (own tenant) ... response B
    let req_a = eso_read(
        "request",
        &rid(1),
        &time(0),
        Target::Lumen,
        Outcome::Allowed,
    );
    let resp_a = eso_read(
        "response",
        &rid(1),
        &time(1),
        Target::Lumen,
        Outcome::Allowed,
    );
    let req_b = eso_read("request", &rid(2), &time(2), Target::Acme, Outcome::Allowed);
    let resp_b = eso_read(
        "response",
        &rid(2),
        &time(3),
        Target::Acme,
        Outcome::Allowed,
    );
    dir.write("audit.log.2.gz", gzip(&join_lines(&[req_a.as_bytes()])));
    dir.write_lines("audit.log.1", &[resp_a.as_bytes(), req_b.as_bytes()]);
    dir.write_lines("audit.log", &[resp_b.as_bytes()]);
}

#[test]
fn a_rotated_set_is_replayed_oldest_first_so_requests_meet_their_responses() {
    let dir = Dir::new();
    write_rotated_set(&dir, |i| format!("2026-03-02T14:07:0{i}Z"));
    let run = replay([dir.path()]);
    run.assert_code(0)
        .assert_alerts_for(&[rid(1)])
        .assert_parse_errors(&[]);
    assert_eq!(
        run.input_names(),
        ["audit.log.2.gz", "audit.log.1", "audit.log"],
        "{}",
        run.context()
    );
    assert_eq!(run.alerts()[0]["severity"], "critical", "{}", run.context());
    assert_eq!(run.count("timed_out_requests"), 0, "{}", run.context());
    assert_eq!(run.count("duplicate_responses"), 0, "{}", run.context());
    assert_eq!(run.count("entries"), 4, "{}", run.context());
}

#[test]
fn a_rotated_set_with_equal_timestamps_is_ordered_by_rotation_suffix() {
    let dir = Dir::new();
    write_rotated_set(&dir, |_| "2026-03-02T14:07:00Z".to_string());
    let run = replay([dir.path()]);
    run.assert_code(0).assert_alerts_for(&[rid(1)]);
    assert_eq!(
        run.input_names(),
        ["audit.log.2.gz", "audit.log.1", "audit.log"],
        "{}",
        run.context()
    );
    assert_eq!(run.count("timed_out_requests"), 0, "{}", run.context());
}

#[test]
fn files_of_a_directory_are_replayed_in_order_of_their_first_timestamp() {
    let dir = Dir::new();
    let old = eso_read(
        "response",
        &rid(1),
        "2026-03-01T10:00:00Z",
        Target::Lumen,
        Outcome::Denied,
    );
    let new = eso_read(
        "response",
        &rid(2),
        "2026-03-02T10:00:00Z",
        Target::Lumen,
        Outcome::Denied,
    );
    dir.write_lines("a-newer.log", &[new.as_bytes()]);
    dir.write_lines("b-older.log", &[old.as_bytes()]);
    let run = replay([dir.path()]);
    run.assert_code(0).assert_alerts_for(&[rid(1), rid(2)]);
    assert_eq!(
        run.input_names(),
        ["b-older.log", "a-newer.log"],
        "{}",
        run.context()
    );
}

#[test]
fn a_nonexistent_path_exits_2_and_names_it() {
    let dir = Dir::new();
    let good = dir.write_lines("audit.log", &[cross_tenant_denied(&rid(1)).as_bytes()]);
    let missing = dir.path().join("no-such-audit.log");
    let run = replay([&good, &missing]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("no-such-audit.log"),
        "{}",
        run.context()
    );
}

#[test]
fn fail_on_high_exits_3_when_a_critical_alert_is_raised() {
    let dir = Dir::new();
    let log = dir.write_lines(
        "audit.log",
        &[
            cross_tenant_denied(&rid(1)).as_bytes(),
            cross_tenant_allowed(&rid(2)).as_bytes(),
        ],
    );
    let run = replay(os_args![log, "--fail-on", "high"]);
    run.assert_code(3).assert_alerts_for(&[rid(1), rid(2)]);
    assert_eq!(run.alerts()[1]["severity"], "critical", "{}", run.context());
    assert_eq!(
        run.count("/alerts_by_severity/critical"),
        1,
        "{}",
        run.context()
    );
}

#[test]
fn fail_on_high_exits_0_when_only_lower_alerts_are_raised() {
    let dir = Dir::new();
    let log = dir.write_lines("audit.log", &[cross_tenant_denied(&rid(1)).as_bytes()]);
    let run = replay(os_args![log, "--fail-on", "high"]);
    run.assert_code(0).assert_alerts_for(&[rid(1)]);
    assert_eq!(run.alerts()[0]["severity"], "warning", "{}", run.context());
}

#[test]
fn fail_on_with_an_unknown_severity_exits_2() {
    let dir = Dir::new();
    let log = dir.write_lines("audit.log", &[cross_tenant_allowed(&rid(1)).as_bytes()]);
    let run = replay(os_args![log, "--fail-on", "severe"]);
    run.assert_code(2);
    assert!(run.stderr.contains("severe"), "{}", run.context());
}

#[test]
fn since_is_inclusive_and_until_exclusive_and_the_rest_is_counted_as_filtered() {
    let at =
        |n: u32, time: &str| eso_read("response", &rid(n), time, Target::Lumen, Outcome::Denied);
    let lines = [
        at(1, "2026-03-01T23:59:59.999Z"),
        at(2, "2026-03-02T00:00:00Z"),
        at(3, "2026-03-02T23:59:59Z"),
        at(4, "2026-03-03T00:00:00Z"),
    ];
    let dir = Dir::new();
    let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let log = dir.write_lines("audit.log", &refs);
    let run = replay(os_args![
        log,
        "--since",
        "2026-03-02",
        "--until",
        "2026-03-03T00:00:00Z",
    ]);
    run.assert_code(0).assert_alerts_for(&[rid(2), rid(3)]);
    assert_eq!(run.count("filtered_by_time"), 2, "{}", run.context());
    assert_eq!(run.count("entries"), 4, "{}", run.context());
}

#[test]
fn a_since_that_is_not_a_time_exits_2() {
    let dir = Dir::new();
    let log = dir.write_lines("audit.log", &[cross_tenant_denied(&rid(1)).as_bytes()]);
    let run = replay(os_args![log, "--since", "yesterday"]);
    run.assert_code(2);
    assert!(run.stderr.contains("--since"), "{}", run.context());
}

#[test]
fn output_writes_the_alerts_to_the_file_instead_of_stdout() {
    let dir = Dir::new();
    let log = dir.write_lines(
        "audit.log",
        &[
            cross_tenant_denied(&rid(1)).as_bytes(),
            cross_tenant_allowed(&rid(2)).as_bytes(),
        ],
    );
    let out = dir.path().join("alerts.jsonl");
    let run = replay(os_args![log, "--output", out]);
    run.assert_code(0).assert_no_alerts();
    let written = std::fs::read_to_string(&out).expect("--output file written");
    let ids: Vec<String> = written
        .lines()
        .map(|l| {
            let a: serde_json::Value = serde_json::from_str(l).expect("alert is JSON");
            a["request_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids, [rid(1), rid(2)], "{written}");
    assert_eq!(run.count("alerts_total"), 2, "{}", run.context());
}

#[test]
fn a_corrupt_gzip_exits_1_naming_it_and_the_other_inputs_are_still_replayed() {
    let dir = Dir::new();
    let mut corrupt = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03];
    corrupt.extend_from_slice(b"this is not a deflate stream, it is garbage...");
    let bad = dir.write("audit.log.1.gz", corrupt);
    let before = dir.write_lines("before.log", &[cross_tenant_denied(&rid(1)).as_bytes()]);
    let after = dir.write_lines("after.log", &[cross_tenant_denied(&rid(2)).as_bytes()]);
    let run = replay([&before, &bad, &after]);
    run.assert_code(1).assert_alerts_for(&[rid(1), rid(2)]);
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("error: ") && l.contains("audit.log.1.gz")),
        "the error names the corrupt file\n{}",
        run.context()
    );
    let reports = run.input_reports("inputs");
    assert_eq!(reports.len(), 3, "{}", run.context());
    assert!(reports[1]["problem"].is_string(), "{}", run.context());
    assert!(reports[0]["problem"].is_null(), "{}", run.context());
    assert!(reports[2]["problem"].is_null(), "{}", run.context());
    assert_eq!(run.count("entries"), 2, "{}", run.context());
}

#[test]
fn a_gzip_cut_short_keeps_the_lines_before_the_cut_and_exits_1() {
    // A rotation interrupted mid-compression: the complete lines before the cut count.
    let lines: Vec<String> = (1..=200).map(|n| cross_tenant_denied(&rid(n))).collect();
    let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let whole = gzip(&join_lines(&refs));
    let dir = Dir::new();
    let cut = dir.write("audit.log.1.gz", &whole[..whole.len() * 3 / 4]);
    let run = replay([&cut]);
    run.assert_code(1);
    let n = run.count("entries");
    assert!(n > 0 && n < 200, "entries read: {n}\n{}", run.context());
    assert_eq!(run.alerts().len() as u64, n, "{}", run.context());
    assert!(run.stderr.contains("audit.log.1.gz"), "{}", run.context());
}

#[test]
fn a_live_stdin_stream_gets_each_alert_before_the_stream_ends() {
    // `tail -f audit.log | auditwatch replay -`: the alert must not wait for a full chunk,
    // a full output buffer or the end of the input. Both the one- and two-thread paths.
    for threads in ["1", "2"] {
        let mut child = std::process::Command::new(BIN)
            .args(["replay", "-q", "--threads", threads, "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("runs");
        let mut stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let _ = tx.send(line.unwrap());
            }
        });
        std::io::Write::write_all(
            &mut stdin,
            join_lines(&[cross_tenant_denied(&rid(1)).as_bytes()]).as_slice(),
        )
        .unwrap();
        let first = rx.recv_timeout(std::time::Duration::from_secs(20));
        // Only now does the stream end.
        drop(stdin);
        let status = child.wait().unwrap();
        let first = first
            .unwrap_or_else(|_| panic!("--threads {threads}: no alert while the stream was open"));
        assert!(first.contains(&rid(1)), "{first}");
        assert_eq!(status.code(), Some(0));
    }
}

#[test]
fn replay_without_a_path_reads_piped_stdin() {
    let input = join_lines(&[cross_tenant_denied(&rid(1)).as_bytes()]);
    let run = Auditwatch::new()
        .arg("replay")
        .with_stats()
        .stdin(input)
        .run();
    run.assert_code(0).assert_alerts_for(&[rid(1)]);
    assert_eq!(run.input_names(), ["-"], "{}", run.context());
}

#[test]
fn an_output_file_that_cannot_be_created_exits_1() {
    let dir = Dir::new();
    let log = dir.write_lines("audit.log", &[cross_tenant_denied(&rid(1)).as_bytes()]);
    let out = dir.path().join("no-such-dir").join("alerts.jsonl");
    let run = replay(os_args![log, "--output", out]);
    run.assert_code(1);
    assert!(run.stderr.contains("alerts.jsonl"), "{}", run.context());
}

// ---------------------------------------------------------------------------------------
// Known bugs: a directory's files are sniffed (their first 64 KiB must show an audit
// entry) before replay, and a file that fails the sniff is skipped with exit 0, while the
// same file named directly is read (or fails with exit 1).

#[test]
fn a_directory_log_starting_with_a_large_nul_hole_is_still_replayed() {
    // copytruncate holes can be as large as the file was; 43 KiB is seen in the samples.
    let mut bytes = vec![0u8; 100 * 1024];
    bytes.extend(join_lines(&[
        cross_tenant_denied(&rid(1)).as_bytes(),
        cross_tenant_denied(&rid(2)).as_bytes(),
    ]));
    let dir = Dir::new();
    let log = dir.write("audit.log", &bytes);
    // Named directly, it is read:
    replay([&log])
        .assert_code(0)
        .assert_alerts_for(&[rid(1), rid(2)]);
    // In its directory, it must be too:
    let run = replay([dir.path()]);
    run.assert_code(0).assert_alerts_for(&[rid(1), rid(2)]);
    assert_eq!(
        run.skipped_names(),
        Vec::<String>::new(),
        "{}",
        run.context()
    );
}

#[test]
fn a_directory_log_whose_first_entry_is_large_is_still_replayed() {
    // A large first response (a KV list, a UI mounts listing) is ordinary.
    let mut big: serde_json::Value = serde_json::from_str(&own_tenant_read(&rid(9))).unwrap();
    let keys: Vec<String> = (0..12_000).map(|i| format!("key-{i:06}")).collect();
    big["response"]["data"] = serde_json::json!({ "keys": keys });
    let big = big.to_string();
    assert!(big.len() > 64 * 1024);
    let dir = Dir::new();
    let log = dir.write_lines(
        "audit.log",
        &[big.as_bytes(), cross_tenant_denied(&rid(1)).as_bytes()],
    );
    replay([&log]).assert_code(0).assert_alerts_for(&[rid(1)]);
    let run = replay([dir.path()]);
    run.assert_code(0).assert_alerts_for(&[rid(1)]);
    assert_eq!(run.count("entries"), 2, "{}", run.context());
}

#[test]
fn a_corrupt_gzip_inside_a_directory_exits_1() {
    let dir = Dir::new();
    let mut corrupt = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03];
    corrupt.extend_from_slice(b"this is not a deflate stream, it is garbage...");
    let bad = dir.write("audit.log.1.gz", corrupt);
    dir.write_lines("audit.log", &[cross_tenant_denied(&rid(1)).as_bytes()]);
    replay([&bad]).assert_code(1);
    let run = replay([dir.path()]);
    run.assert_code(1).assert_alerts_for(&[rid(1)]);
    assert!(run.stderr.contains("audit.log.1.gz"), "{}", run.context());
}

#[test]
fn a_complete_object_followed_by_trailing_text_is_invalid_json_not_truncated() {
    // Nothing was cut off: the object is whole and something else follows it.
    let run = replay_between_good_lines(&[br#"{"type":"response"} trailing text"#]);
    run.assert_parse_errors(&[("invalid_json", 1)]);
}

#[test]
fn gzip_piped_to_stdin_is_decompressed() {
    let input = join_lines(&[
        cross_tenant_denied(&rid(1)).as_bytes(),
        cross_tenant_denied(&rid(2)).as_bytes(),
    ]);
    let run = Auditwatch::new()
        .arg("replay")
        .with_stats()
        .arg("-")
        .stdin(gzip(&input))
        .run();
    run.assert_code(0)
        .assert_alerts_for(&[rid(1), rid(2)])
        .assert_parse_errors(&[]);
}

#[test]
fn a_subdirectory_of_a_replayed_directory_is_listed_as_skipped() {
    let dir = Dir::new();
    dir.write_lines("audit.log", &[cross_tenant_denied(&rid(1)).as_bytes()]);
    std::fs::create_dir(dir.path().join("archive")).unwrap();
    let run = replay([dir.path()]);
    run.assert_code(0).assert_alerts_for(&[rid(1)]);
    assert_eq!(run.skipped_names(), ["archive"], "{}", run.context());
}
