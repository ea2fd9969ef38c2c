//! Parallel replay gives exactly what the one-thread replay gives: the same alerts in the
//! same order, and the same counts, whatever the number of threads.

use std::io::Write;

use crate::util::{
    cross_tenant_allowed, cross_tenant_denied, own_tenant_read, rid, samples_dir, BIN,
};
use serde_json::Value;

/// Alerts, the summary, and the unreadable lines logged (input, line number, reason).
fn run(threads: &str, paths: &[&std::path::Path]) -> (String, Value, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.json");
    // A low line cap, so that some lines are over it.
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "parse:\n  max_line_bytes: 4096\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["replay", "--threads", threads, "--stats-json"])
        .arg(&stats)
        .arg("--config")
        .arg(&config)
        .args(paths)
        .env_remove("AUDITWATCH_LOG")
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut s: Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    s.as_object_mut().unwrap().remove("elapsed_secs");
    let logged = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| {
            l.split_once("unreadable line skipped ")
                .map(|(_, t)| t.to_string())
        })
        .collect();
    (String::from_utf8(out.stdout).unwrap(), s, logged)
}

/// Several megabytes of mixed traffic: alerts, quiet reads, bad lines of every kind (some
/// over the line cap), and requests whose responses come thousands of lines later (across
/// chunk boundaries).
fn mixed_input(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("mixed.log");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let padding = "x".repeat(600);
    for i in 0..12_000u32 {
        let line = match i % 7 {
            0 => cross_tenant_allowed(&rid(i)),
            1 => cross_tenant_denied(&rid(i)),
            2 => "garbage line".to_string(),
            3 => r#"{"type":"response","truncated"#.to_string(),
            4 => String::new(),
            _ => own_tenant_read(&rid(i)).replace(
                "\"operation\"",
                &format!("\"pad\":\"{padding}\",\"operation\""),
            ),
        };
        writeln!(f, "{line}").unwrap();
        if i % 997 == 0 {
            writeln!(f, "{}", "y".repeat(5000)).unwrap();
        }
        if i % 1000 == 0 {
            // A request now, its response 2,500 lines later.
            let req = cross_tenant_allowed(&rid(1_000_000 + i))
                .replace("\"type\":\"response\"", "\"type\":\"request\"");
            writeln!(f, "{req}").unwrap();
        }
        if i % 1000 == 500 && i >= 3500 {
            writeln!(f, "{}", cross_tenant_allowed(&rid(1_000_000 + i - 2500))).unwrap();
        }
    }
    f.flush().unwrap();
    path
}

/// Good lines for a few chunks, then unreadable ones: their line numbers, as logged, count
/// the lines of earlier chunks.
fn late_errors(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("late.log");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..3_000u32 {
        writeln!(f, "{}", own_tenant_read(&rid(2_000_000 + i))).unwrap();
        if i % 700 == 699 {
            writeln!(f, "garbage {i}").unwrap();
            writeln!(f, "{}", "z".repeat(4097)).unwrap();
        }
    }
    f.flush().unwrap();
    path
}

#[test]
fn parallel_replay_gives_the_same_alerts_and_counts_as_one_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mixed = mixed_input(dir.path());
    let late = late_errors(dir.path());
    let mut paths = vec![mixed.as_path(), late.as_path()];
    // The real samples too, when configured.
    let samples = samples_dir();
    if let Some(s) = &samples {
        paths.push(s.as_path());
    }
    let (alerts1, stats1, logged1) = run("1", &paths);
    assert!(
        alerts1.lines().count() > 1000,
        "the input must raise many alerts"
    );
    assert!(stats1["parse_errors_total"].as_u64().unwrap() > 1000);
    assert!(
        logged1.iter().any(|l| l.contains("line_too_long")),
        "{logged1:?}"
    );
    let late_logged: Vec<&String> = logged1.iter().filter(|l| l.contains("late.log")).collect();
    assert_eq!(late_logged.len(), 8, "{late_logged:?}");
    assert!(late_logged[0].contains("line=701 "), "{late_logged:?}");
    // Requests at 0, 1000, ..., 11000; responses 2,500 lines later for 1000..=9000: the
    // other three never get one.
    if samples.is_none() {
        assert_eq!(stats1["timed_out_requests"], 3, "{stats1}");
    }
    for threads in ["2", "3"] {
        let (alerts, stats, logged) = run(threads, &paths);
        assert_eq!(stats, stats1, "stats differ with --threads {threads}");
        assert_eq!(
            logged, logged1,
            "lines logged differ with --threads {threads}"
        );
        assert!(alerts == alerts1, "alerts differ with --threads {threads}");
    }
}
