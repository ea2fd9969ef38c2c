//! The file source against real files rotated the ways the field does it: rename + create
//! with late writes to the old file (logrotate, then SIGHUP to Vault), copytruncate (with
//! an `O_APPEND` writer, and with a writer that leaves a NUL hole), deletion while Vault
//! keeps writing the unlinked inode and re-creation, a partial last line, and daemon
//! restarts from the checkpoint during continuous writes. Every entry must raise exactly
//! one alert: nothing lost, nothing re-alerted.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::util::*;

const WAIT: Duration = Duration::from_secs(60);

fn config(dir: &Path) -> String {
    format!(
        "server: {{listen: 127.0.0.1:0, tick_secs: 0, checkpoint_interval_secs: 1}}
sources:
  - {{name: vault-file, kind: file, path: '{}', checkpoint_dir: '{}', poll_millis: 50, rotate_wait_secs: 1}}
",
        dir.join("audit.log").display(),
        dir.join("state").display()
    )
}

fn start(dir: &Path) -> Daemon {
    let rules = rules_dir(dir, &[("every.yaml", EVERY_READ_RULE)]);
    Daemon::start(dir, &config(dir), &["--rules", rules.to_str().unwrap()])
}

fn line(i: u64) -> String {
    let t = format!("2026-03-02T10:{:02}:{:02}Z", (i / 60) % 60, i % 60);
    format!("{}\n", response_line(&request_id(0xf11e, i), &t))
}

/// Append entries `range`, one write each (as Vault's file device does).
fn write(f: &mut File, range: std::ops::Range<u64>) {
    for i in range {
        f.write_all(line(i).as_bytes()).unwrap();
    }
}

fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// Wait until alerts cover exactly `0..n`, each once.
#[track_caller]
fn expect_exactly(d: &Daemon, n: u64) {
    d.wait_until(&format!("{n} alerts"), WAIT, |d| {
        d.alerts().len() as u64 >= n
    });
    std::thread::sleep(Duration::from_millis(300));
    check_exactly(&d.alerts(), n);
}

#[track_caller]
fn check_exactly(alerts: &[serde_json::Value], n: u64) {
    let ids = ids(alerts);
    let want: Vec<String> = (0..n).map(|i| request_id(0xf11e, i)).collect();
    let missing: Vec<&String> = want.iter().filter(|id| !ids.contains_key(*id)).collect();
    let dups: Vec<(&String, &usize)> = ids.iter().filter(|(_, &c)| c > 1).collect();
    assert!(missing.is_empty(), "lost entries: {missing:?}");
    assert!(dups.is_empty(), "re-alerted entries: {dups:?}");
    assert_eq!(ids.len() as u64, n, "unexpected entries");
}

#[test]
fn rename_rotation_drains_the_old_file_until_vault_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    // The daemon starts before the file exists and waits for it.
    let d = start(dir.path());
    let mut old = append(&path);
    write(&mut old, 0..100);
    expect_exactly(&d, 100);
    // logrotate: rename, create...
    std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
    let _created = File::create(&path).unwrap();
    // ...Vault writes to the renamed file until its SIGHUP...
    write(&mut old, 100..150);
    std::thread::sleep(Duration::from_millis(200));
    write(&mut old, 150..160);
    // ...then reopens the path.
    drop(old);
    let mut new = append(&path);
    write(&mut new, 160..260);
    expect_exactly(&d, 260);
    assert_eq!(
        d.metric("auditwatch_file_rotations_total", &["kind=\"rename\""]),
        1.0
    );
    // Once quiet, the rotated file is let go and the checkpoint names only the new one.
    d.wait_until("the old file retired", WAIT, |d| {
        d.log_text().contains("rotated file drained")
    });
    let exit = d.stop();
    assert_eq!(exit.code, Some(0));
    let cp: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("state/vault-file.checkpoint.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cp["version"], 2);
    assert_eq!(cp["files"].as_array().unwrap().len(), 1, "{cp}");
    assert_eq!(
        cp["files"][0]["offset"].as_u64().unwrap(),
        std::fs::metadata(&path).unwrap().len()
    );
}

#[test]
fn copytruncate_with_append_and_with_a_nul_hole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut w = append(&path);
    let d = start(dir.path());
    write(&mut w, 0..100);
    expect_exactly(&d, 100);
    // logrotate copytruncate: copy, then truncate in place; Vault's O_APPEND writes
    // continue at the new end (0).
    std::fs::copy(&path, dir.path().join("audit.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    write(&mut w, 100..200);
    expect_exactly(&d, 200);
    drop(w);

    // A writer without O_APPEND keeps its offset: after the truncation its next write
    // lands past a run of NUL bytes.
    let mut w = OpenOptions::new().write(true).open(&path).unwrap();
    w.seek(SeekFrom::End(0)).unwrap();
    write(&mut w, 200..220);
    expect_exactly(&d, 220);
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    write(&mut w, 220..300);
    expect_exactly(&d, 300);
    assert!(d.metric("auditwatch_file_rotations_total", &["kind=\"truncate\""]) >= 2.0);
    assert_eq!(
        d.metric("auditwatch_parse_errors_total", &[]),
        0.0,
        "NUL runs are skipped, not parsed"
    );
    assert_eq!(d.stop().code, Some(0));
}

#[test]
fn deletion_follows_the_unlinked_file_then_the_recreated_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut w = append(&path);
    let d = start(dir.path());
    write(&mut w, 0..50);
    expect_exactly(&d, 50);
    // Deleted: Vault keeps writing to the unlinked inode (hashicorp/vault#31718).
    std::fs::remove_file(&path).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    write(&mut w, 50..100);
    expect_exactly(&d, 100);
    assert_eq!(
        d.metric("auditwatch_file_rotations_total", &["kind=\"delete\""]),
        1.0
    );
    // Re-created (Vault restarted or reloaded).
    drop(w);
    let mut w = append(&path);
    write(&mut w, 100..150);
    expect_exactly(&d, 150);
    assert_eq!(d.stop().code, Some(0));
}

#[test]
fn restart_resumes_from_the_checkpoint_with_a_partial_line_and_a_rotation_while_down() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut w = append(&path);
    write(&mut w, 0..100);
    // A large entry caught mid-write: no newline yet.
    let partial = line(100);
    let (head, tail) = partial.split_at(partial.len() / 2);
    w.write_all(head.as_bytes()).unwrap();
    let d = start(dir.path());
    expect_exactly(&d, 100);
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    let cp: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("state/vault-file.checkpoint.json")).unwrap(),
    )
    .unwrap();
    let done: u64 = (0..100).map(|i| line(i).len() as u64).sum();
    assert_eq!(
        cp["files"][0]["offset"].as_u64().unwrap(),
        done,
        "the checkpoint stops at the last whole line: {cp}"
    );

    // While the daemon is down: the line completes, more arrive, and the file rotates.
    w.write_all(tail.as_bytes()).unwrap();
    write(&mut w, 101..150);
    std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
    drop(w);
    let mut w = append(&path);
    write(&mut w, 150..200);

    let d = start(dir.path());
    expect_exactly(&d, 200);
    write(&mut w, 200..210);
    expect_exactly(&d, 210);
    assert_eq!(d.stop().code, Some(0));
}

#[test]
fn restarts_during_continuous_writes_lose_nothing_and_repeat_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (path, written, stop) = (path.clone(), written.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut w = append(&path);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 20_000 {
                write(&mut w, i..i + 10);
                i += 10;
                written.store(i, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    for _ in 0..3 {
        let d = start(dir.path());
        let seen = written.load(Ordering::Relaxed);
        d.wait_until("progress", WAIT, |d| d.alerts().len() as u64 > seen);
        std::thread::sleep(Duration::from_millis(300));
        let exit = d.stop();
        assert_eq!(exit.code, Some(0), "{}", exit.log);
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let n = written.load(Ordering::Relaxed);
    let d = start(dir.path());
    expect_exactly(&d, n);
    assert_eq!(d.stop().code, Some(0));
}
