//! copytruncate loses nothing (issue #14, item 4): the file source reads what it had not
//! read before the truncation from the rotated copy, found by its content, with the daemon
//! up while lines are appended fast, and with the daemon stopped (SIGTERM) or killed
//! (SIGKILL) before the rotation and started after it, also when the copy has been
//! compressed meanwhile; a file renamed and compressed while the daemon was down is found
//! by its content too. When the copy is gone (or a checkpointed file), the loss is counted
//! and one `input_lost` finding is raised; a checkpoint of the previous version is resumed
//! from, and a truncation it cannot verify is counted the same way.
//!
//! The rotation is done exactly as logrotate's `copytruncate` does it (older copies shifted
//! to `.2`, `.3`, the file copied to `.1`, then truncated in place) while the writer keeps
//! its `O_APPEND` descriptor. Only the copy and the truncation themselves are kept apart
//! from the writer's appends: a line written between the two is in neither file (logrotate
//! documents that window), and no reader can get it back.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::util::*;

const WAIT: Duration = Duration::from_secs(90);
const TAG: u32 = 0xc0b1;
const INPUT_LOST_RULE: &str = include_str!("../../rules/input_lost.yaml");

fn config(dir: &Path, extra: &str) -> String {
    format!(
        "server: {{listen: 127.0.0.1:0, tick_secs: 0, checkpoint_interval_secs: 1}}
sources:
  - {{name: vault-file, kind: file, path: '{}', checkpoint_dir: '{}', poll_millis: 50, rotate_wait_secs: 1{extra}}}
",
        dir.join("audit.log").display(),
        dir.join("state").display()
    )
}

/// The daemon with a rule that alerts on every entry written here, and the shipped
/// `input_lost` rule.
fn start(dir: &Path) -> Daemon {
    start_with(dir, "")
}

/// [`start`] with more settings of the file source (`, key: value`).
fn start_with(dir: &Path, extra: &str) -> Daemon {
    let rules = rules_dir(
        dir,
        &[
            ("every.yaml", EVERY_READ_RULE),
            ("input_lost.yaml", INPUT_LOST_RULE),
        ],
    );
    Daemon::start(
        dir,
        &config(dir, extra),
        &["--rules", rules.to_str().unwrap()],
    )
}

fn line(i: u64) -> String {
    let t = format!("2026-03-02T10:{:02}:{:02}Z", (i / 60) % 60, i % 60);
    format!("{}\n", response_line(&request_id(TAG, i), &t))
}

fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

fn write(f: &mut File, range: std::ops::Range<u64>) {
    for i in range {
        f.write_all(line(i).as_bytes()).unwrap();
    }
}

/// logrotate's `copytruncate` with `rotate 3`: shift `.1`, `.2` up, copy the file to `.1`,
/// truncate it in place. `gate` keeps the writer out between the copy and the truncation.
fn copytruncate(path: &Path, gate: &Mutex<()>) -> PathBuf {
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    let dir = path.parent().unwrap();
    let rotated = |n: u32| dir.join(format!("{name}.{n}"));
    for n in (1..3).rev() {
        if rotated(n).exists() {
            std::fs::rename(rotated(n), rotated(n + 1)).unwrap();
        }
    }
    let _held = gate.lock().unwrap();
    std::fs::copy(path, rotated(1)).unwrap();
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
    rotated(1)
}

/// gzip `file` to `file.gz` and remove it (logrotate's `compress` without `delaycompress`).
fn compress(file: &Path) -> PathBuf {
    let gz = PathBuf::from(format!("{}.gz", file.display()));
    let data = std::fs::read(file).unwrap();
    let mut enc = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), Default::default());
    enc.write_all(&data).unwrap();
    enc.finish().unwrap();
    std::fs::remove_file(file).unwrap();
    gz
}

/// A writer appending entries fast (bursts of `burst`, a pause between), as Vault does,
/// through one `O_APPEND` descriptor.
struct Writer {
    written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    gate: Arc<Mutex<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(path: &Path, from: u64, limit: u64, burst: u64, pause: Duration) -> Writer {
        let written = Arc::new(AtomicU64::new(from));
        let stop = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(Mutex::new(()));
        let handle = {
            let (path, written, stop, gate) = (
                path.to_path_buf(),
                written.clone(),
                stop.clone(),
                gate.clone(),
            );
            std::thread::spawn(move || {
                let mut w = append(&path);
                let mut i = from;
                while !stop.load(Ordering::Relaxed) && i < limit {
                    let end = (i + burst).min(limit);
                    {
                        let _g = gate.lock().unwrap();
                        write(&mut w, i..end);
                    }
                    i = end;
                    written.store(i, Ordering::Relaxed);
                    std::thread::sleep(pause);
                }
            })
        };
        Writer {
            written,
            stop,
            gate,
            handle: Some(handle),
        }
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    #[track_caller]
    fn wait_written(&self, n: u64) {
        let start = std::time::Instant::now();
        while self.written() < n {
            assert!(
                start.elapsed() < WAIT,
                "the writer is stuck at {}",
                self.written()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Stop and return how many entries were written.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap();
        self.written()
    }
}

/// The ids of entries `0..n` that raised no alert, and those that raised more than one.
fn lost_and_repeated(alerts: &[serde_json::Value], n: u64) -> (Vec<u64>, Vec<u64>) {
    let ids = ids(alerts);
    let lost = (0..n)
        .filter(|&i| !ids.contains_key(&request_id(TAG, i)))
        .collect();
    let repeated = (0..n)
        .filter(|&i| ids.get(&request_id(TAG, i)).is_some_and(|&c| c > 1))
        .collect();
    (lost, repeated)
}

/// Alerts of the every-entry rule.
fn entry_alerts(d: &Daemon) -> Vec<serde_json::Value> {
    d.alerts()
        .into_iter()
        .filter(|a| a["category"] == "test_read")
        .collect()
}

fn input_lost(d: &Daemon) -> Vec<serde_json::Value> {
    d.alerts()
        .into_iter()
        .filter(|a| a["category"] == "input_lost")
        .collect()
}

/// Wait until entries `0..n` have all raised their alert (or the wait runs out), then
/// return the lost and repeated ones.
fn settle(d: &Daemon, n: u64) -> (Vec<u64>, Vec<u64>) {
    let start = std::time::Instant::now();
    let mut last = 0;
    let mut since_change = std::time::Instant::now();
    loop {
        let a = entry_alerts(d);
        let (lost, _) = lost_and_repeated(&a, n);
        if lost.is_empty() {
            break;
        }
        if a.len() != last {
            last = a.len();
            since_change = std::time::Instant::now();
        }
        // Nothing new for a while: what is missing is lost.
        if since_change.elapsed() > Duration::from_secs(5) || start.elapsed() > WAIT {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    lost_and_repeated(&entry_alerts(d), n)
}

#[track_caller]
fn nothing_lost(d: &Daemon, what: &str, lost: &[u64], n: u64) {
    eprintln!("{what}: {} of {n} entries lost", lost.len());
    if lost.is_empty() {
        return;
    }
    let log = d.log_lines();
    panic!(
        "{what}: {} of {n} entries lost: {:?}..\nthe daemon's log ends with:\n{}",
        lost.len(),
        &lost[..lost.len().min(20)],
        log[log.len().saturating_sub(40)..].join("\n")
    );
}

#[test]
fn copytruncate_while_appending_fast_processes_every_line_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let d = start(dir.path());
    let n = 6_000;
    let w = Writer::start(&path, 0, n, 20, Duration::from_millis(2));
    for at in [1_500, 3_000, 4_500] {
        w.wait_written(at);
        copytruncate(&path, &w.gate);
    }
    w.wait_written(n);
    let n = w.finish();
    let (lost, repeated) = settle(&d, n);
    nothing_lost(&d, "daemon up, 3 rotations", &lost, n);
    assert!(repeated.is_empty(), "processed twice: {repeated:?}");
    assert_eq!(entry_alerts(&d).len() as u64, n);
    assert_eq!(
        d.metric("auditwatch_file_rotations_total", &["kind=\"truncate\""]),
        3.0
    );
    assert_eq!(
        d.metric("auditwatch_dropped_lines_total", &["source=\"vault-file\""]),
        0.0
    );
    assert!(input_lost(&d).is_empty(), "{:?}", input_lost(&d));
    assert_eq!(d.stop().code, Some(0));
}

/// The daemon is stopped (or killed) while the file grows, more is written while it is
/// down, the file is rotated (the copy kept plain, or compressed as logrotate's `compress`
/// does), more is written, and the daemon started again reads the rest from the copy.
fn restart_around_rotation(kill: bool, gzip: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let d = start(dir.path());
    // About 1,000 entries a second: still writing when the daemon is stopped.
    let w = Writer::start(&path, 0, 1_500, 10, Duration::from_millis(10));
    // Stopped once a periodic checkpoint exists (before it, a first run has none to
    // resume from) and entries were processed; after SIGKILL, those processed after the
    // checkpoint are read again.
    let cp = dir.path().join("state/vault-file.checkpoint.json");
    d.wait_until("a checkpoint", WAIT, |d| {
        cp.exists() && entry_alerts(d).len() >= 300
    });
    if kill {
        d.signal("KILL");
        drop(d);
    } else {
        assert_eq!(d.stop().code, Some(0));
    }
    // Down: the writer goes on, 500 more, the rotation, then 1,000 more.
    w.wait_written(1_500);
    let written = w.finish();
    let mut w = append(&path);
    write(&mut w, written..2_000);
    let copy = copytruncate(&path, &Mutex::new(()));
    if gzip {
        compress(&copy);
    }
    write(&mut w, 2_000..3_000);
    let n = 3_000;
    let d = start(dir.path());
    let (lost, _) = settle(&d, n);
    let what = format!(
        "{} before the rotation{}",
        if kill { "SIGKILL" } else { "SIGTERM" },
        if gzip { ", compressed copy" } else { "" }
    );
    nothing_lost(&d, &what, &lost, n);
    // After SIGKILL, lines processed after the last checkpoint are read again: their
    // alerts repeat with the same ids (the sinks de-duplicate on them).
    let ids: std::collections::BTreeSet<String> = d
        .alerts()
        .iter()
        .filter(|a| a["category"] == "test_read")
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len() as u64, n, "distinct alert ids");
    if !kill {
        assert_eq!(entry_alerts(&d).len() as u64, n, "nothing repeated");
    }
    assert_eq!(
        d.metric("auditwatch_dropped_lines_total", &["source=\"vault-file\""]),
        0.0
    );
    assert!(input_lost(&d).is_empty(), "{:?}", input_lost(&d));
    // More entries after the restart are read from the truncated file.
    write(&mut w, n..n + 50);
    let (lost, _) = settle(&d, n + 50);
    nothing_lost(&d, "after the restart", &lost, n + 50);
    assert_eq!(d.stop().code, Some(0));
}

#[test]
fn copytruncate_while_stopped_loses_nothing() {
    restart_around_rotation(false, false);
}

#[test]
fn copytruncate_while_killed_loses_nothing() {
    restart_around_rotation(true, false);
}

#[test]
fn copytruncate_and_compress_while_stopped_loses_nothing() {
    restart_around_rotation(false, true);
}

/// The copy is removed before the daemon read it: what it held is lost, counted, and
/// raised as one `input_lost` finding; the truncated file is read from its start.
#[test]
fn a_copy_removed_before_it_was_read_is_counted_and_raised_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut w = append(&path);
    write(&mut w, 0..100);
    let d = start(dir.path());
    let (lost, _) = settle(&d, 100);
    nothing_lost(&d, "before the rotation", &lost, 100);
    assert_eq!(d.stop().code, Some(0));
    write(&mut w, 100..200);
    let copy = copytruncate(&path, &Mutex::new(()));
    std::fs::remove_file(copy).unwrap();
    write(&mut w, 200..300);

    let d = start(dir.path());
    d.wait_until("the input_lost finding", WAIT, |d| {
        !input_lost(d).is_empty()
    });
    d.wait_until("the lines after the rotation", WAIT, |d| {
        ids_of(d, 200..300) == 100
    });
    std::thread::sleep(Duration::from_millis(500));
    let found = input_lost(&d);
    assert_eq!(found.len(), 1, "{found:?}");
    let a = &found[0];
    assert_eq!(a["severity"], "high");
    assert_eq!(a["evidence"]["source"], "vault-file");
    assert_eq!(a["evidence"]["reason"], "rotated_away");
    assert_eq!(a["evidence"]["file"], path.display().to_string());
    let done: u64 = (0..100).map(|i| line(i).len() as u64).sum();
    assert_eq!(a["evidence"]["from_offset"], done, "{a}");
    assert!(a["id"].as_str().unwrap().starts_with("input-lost:"), "{a}");
    assert_eq!(
        ids_of(&d, 100..200),
        0,
        "the lines of the removed copy are gone"
    );
    assert_eq!(
        d.metric(
            "auditwatch_dropped_lines_total",
            &["source=\"vault-file\"", "reason=\"rotated_away\""]
        ),
        1.0
    );
    assert_eq!(
        d.metric("auditwatch_alerts_total", &["category=\"input_lost\""]),
        1.0
    );
    // Restarted again: the loss is not raised a second time.
    assert_eq!(d.stop().code, Some(0));
    let d = start(dir.path());
    std::thread::sleep(Duration::from_secs(1));
    assert!(input_lost(&d).len() == 1, "{:?}", input_lost(&d));
    assert_eq!(d.stop().code, Some(0));
}

/// The same with the daemon up: the file is truncated and its copy removed between two
/// polls, so what was appended just before is gone.
#[test]
fn a_truncation_without_a_copy_while_up_is_counted_and_raised_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut w = append(&path);
    write(&mut w, 0..100);
    let d = start(dir.path());
    let (lost, _) = settle(&d, 100);
    nothing_lost(&d, "before the rotation", &lost, 100);
    write(&mut w, 100..110);
    let copy = copytruncate(&path, &Mutex::new(()));
    std::fs::remove_file(copy).unwrap();
    write(&mut w, 110..160);
    d.wait_until("the input_lost finding", WAIT, |d| {
        !input_lost(d).is_empty()
    });
    d.wait_until("the lines after the rotation", WAIT, |d| {
        ids_of(d, 110..160) == 50
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(input_lost(&d).len(), 1, "{:?}", input_lost(&d));
    assert_eq!(
        d.metric(
            "auditwatch_dropped_lines_total",
            &["source=\"vault-file\"", "reason=\"rotated_away\""]
        ),
        1.0
    );
    assert_eq!(d.stop().code, Some(0));
}

/// How many of the entries `range` raised an alert.
fn ids_of(d: &Daemon, range: std::ops::Range<u64>) -> usize {
    let ids = ids(&entry_alerts(d));
    range
        .filter(|&i| ids.contains_key(&request_id(TAG, i)))
        .count()
}

/// Stopped, then the file is rotated by rename, and the rotated file compressed (a new
/// identity) or deleted before the daemon starts again: found by its content and read
/// from the checkpoint, or counted and raised as `file_gone`.
fn rename_while_stopped(then: &str) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut w = append(&path);
    write(&mut w, 0..100);
    let d = start(dir.path());
    let (lost, _) = settle(&d, 100);
    nothing_lost(&d, "before the rotation", &lost, 100);
    assert_eq!(d.stop().code, Some(0));
    write(&mut w, 100..150);
    drop(w);
    let rotated = dir.path().join("audit.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    // The new file first, so that it cannot reuse the old one's inode.
    let mut w = append(&path);
    match then {
        "compress" => {
            compress(&rotated);
        }
        _ => std::fs::remove_file(&rotated).unwrap(),
    }
    write(&mut w, 150..200);
    let d = start(dir.path());
    (dir, d)
}

#[test]
fn a_file_rotated_and_compressed_while_stopped_is_found_by_its_content() {
    let (_dir, d) = rename_while_stopped("compress");
    let (lost, repeated) = settle(&d, 200);
    nothing_lost(&d, "renamed and compressed while stopped", &lost, 200);
    assert!(repeated.is_empty(), "{repeated:?}");
    assert!(input_lost(&d).is_empty(), "{:?}", input_lost(&d));
    assert_eq!(d.metric("auditwatch_dropped_lines_total", &[]), 0.0);
    assert!(d
        .log_text()
        .contains("found the rest of a checkpointed file"));
    assert_eq!(d.stop().code, Some(0));
}

#[test]
fn a_file_deleted_while_stopped_is_counted_and_raised() {
    let (_dir, d) = rename_while_stopped("delete");
    d.wait_until("the new file read", WAIT, |d| ids_of(d, 150..200) == 50);
    d.wait_until("the input_lost finding", WAIT, |d| {
        !input_lost(d).is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ids_of(&d, 100..150), 0);
    let found = input_lost(&d);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["evidence"]["reason"], "file_gone");
    assert_eq!(
        d.metric("auditwatch_dropped_lines_total", &["reason=\"file_gone\""]),
        1.0
    );
    assert_eq!(d.stop().code, Some(0));
}

/// A checkpoint of the previous version (no marks) is resumed from; a truncation it cannot
/// verify is counted as a loss and raised, never a crash.
#[test]
fn a_version_1_checkpoint_resumes_and_an_unverifiable_truncation_is_counted() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut w = append(&path);
    write(&mut w, 0..100);
    let done: u64 = (0..60).map(|i| line(i).len() as u64).sum();
    let m = std::fs::metadata(&path).unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let v1 = serde_json::json!({
        "version": 1, "source": "vault-file", "path": path,
        "files": [{"dev": m.dev(), "ino": m.ino(), "offset": done, "current": true}]
    });
    let cp = dir.path().join("state/vault-file.checkpoint.json");
    std::fs::write(&cp, v1.to_string()).unwrap();
    let d = start(dir.path());
    d.wait_until("the rest read", WAIT, |d| ids_of(d, 60..100) == 40);
    assert_eq!(ids_of(&d, 0..60), 0, "resumed at the checkpoint");
    assert_eq!(d.stop().code, Some(0));
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    assert_eq!(written["version"], 2);
    assert!(written["files"][0]["last_line"].is_object(), "{written}");

    // Version 1 again, and the file truncated meanwhile: nothing to find the copy by.
    std::fs::write(&cp, v1.to_string()).unwrap();
    copytruncate(&path, &Mutex::new(()));
    write(&mut w, 100..110);
    let d = start(dir.path());
    d.wait_until("the input_lost finding", WAIT, |d| {
        !input_lost(d).is_empty()
    });
    d.wait_until("the new content read", WAIT, |d| ids_of(d, 100..110) == 10);
    assert_eq!(
        d.metric(
            "auditwatch_dropped_lines_total",
            &["reason=\"rotated_away\""]
        ),
        1.0
    );
    assert_eq!(input_lost(&d)[0]["evidence"]["from_offset"], done);
    assert_eq!(d.stop().code, Some(0));
}

/// logrotate's `olddir`: the copy is made in another directory, named in `rotated_dirs`.
#[test]
fn a_copy_in_a_rotated_dir_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut w = append(&path);
    write(&mut w, 0..100);
    let d = start_with(dir.path(), ", rotated_dirs: [old]");
    let (lost, _) = settle(&d, 100);
    nothing_lost(&d, "before the rotation", &lost, 100);
    assert_eq!(d.stop().code, Some(0));
    write(&mut w, 100..150);
    std::fs::create_dir(dir.path().join("old")).unwrap();
    std::fs::copy(&path, dir.path().join("old/audit.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    write(&mut w, 150..200);
    let d = start_with(dir.path(), ", rotated_dirs: [old]");
    let (lost, repeated) = settle(&d, 200);
    nothing_lost(&d, "copy in olddir", &lost, 200);
    assert!(repeated.is_empty(), "{repeated:?}");
    assert!(input_lost(&d).is_empty(), "{:?}", input_lost(&d));
    assert_eq!(d.stop().code, Some(0));
}

/// `config check` reports a bad `rotated_dirs` with its position.
#[test]
fn config_check_reports_bad_rotated_dirs_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yaml");
    std::fs::write(
        &f,
        "sources:\n  - {name: f, kind: file, path: /var/log/vault/audit.log, checkpoint_dir: /tmp/x,\n     rotated_dirs: ['']}\n  - {name: g, kind: file, path: /var/log/vault/b.log, checkpoint_dir: /tmp/x, rotated_dirs: old}\n",
    )
    .unwrap();
    let run = auditwatch(["config", "check", f.to_str().unwrap()]);
    run.assert_code(2);
    for want in [
        "bad.yaml:3:21: a rotated_dirs entry must not be empty",
        "bad.yaml:4:93: rotated_dirs must be a list, found a string",
    ] {
        assert!(
            run.stderr.contains(want),
            "no `{want}` in:\n{}",
            run.context()
        );
    }
}
