//! Restart equivalence: the daemon tails a file device's log of several days of simulated
//! traffic with every planted finding while it is stopped (SIGTERM) and killed (SIGKILL)
//! at random points, with logrotate renames and copytruncates while it runs and while it
//! is down. All its runs together must give exactly what one `replay` of the same input
//! gives: every alert record once, compared whole, in the JSON lines output, in the mails a
//! real SMTP server received, and in a real Alertmanager. Detection state (learned ESO intervals, windows,
//! episodes, suppressions) must survive the restarts for that to hold.
//!
//! Also: a state file the daemon cannot take (another format version, damaged) is set
//! aside with its reason logged, and the daemon starts.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// Stops and kills of the daemon while the input is written.
const CYCLES: usize = 12;

/// The simulated input, with closing entries, and what replay makes of it.
fn scenario(dir: &Path) -> (Vec<Vec<u8>>, Vec<Value>) {
    simulated_stream(dir, "input", "3d", 4, 11)
}

fn config(dir: &Path, smtp: u16, am: u16) -> String {
    format!(
        "server: {{listen: 127.0.0.1:0, tick_secs: 0, checkpoint_interval_secs: 1}}
state: {{dir: '{state}', interval_secs: 1}}
sources:
  - {{name: vault-file, kind: file, path: '{log}', checkpoint_dir: '{state}', start_at: beginning, poll_millis: 50, rotate_wait_secs: 1}}
email:
  smtp: smtp+plain://127.0.0.1:{smtp}
  from: auditwatch@example.test
  outbox_dir: '{outbox}'
  recipients: {{info: soc@example.test, warning: soc@example.test, high: soc@example.test, critical: soc@example.test}}
  digest_minutes: 0
  dedup_window_secs: 0
  suppress_window_secs: 0
  max_per_hour: 100000
alertmanager:
  url: 'http://127.0.0.1:{am}'
  resolve_after_secs: 3600
  timeout_secs: 2
",
        state = dir.join("state").display(),
        log = dir.join("log/audit.log").display(),
        outbox = dir.join("outbox").display(),
    )
}

/// logrotate's rename rotation: `audit.log.1` → `.2`, `audit.log` → `.1`, a new
/// `audit.log` (Vault reopens it at once, as after its SIGHUP).
fn rotate(log: &Path, w: &mut File) {
    let n = |k: u32| log.with_file_name(format!("audit.log.{k}"));
    if n(1).exists() {
        std::fs::rename(n(1), n(2)).unwrap();
    }
    std::fs::rename(log, n(1)).unwrap();
    *w = open_log(log);
}

/// logrotate's copytruncate: older copies shifted, the file copied to `audit.log.1`, then
/// truncated in place while Vault's `O_APPEND` writer goes on at the new end.
fn copytruncate(log: &Path) {
    let n = |k: u32| log.with_file_name(format!("audit.log.{k}"));
    if n(1).exists() {
        std::fs::rename(n(1), n(2)).unwrap();
    }
    std::fs::copy(log, n(1)).unwrap();
    OpenOptions::new()
        .write(true)
        .open(log)
        .unwrap()
        .set_len(0)
        .unwrap();
}

fn open_log(log: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap()
}

/// Write `n` lines from `next` on, spread over about `ms` of wall time (so a run is
/// stopped in the middle of reading them); returns the new `next`.
fn write_for(w: &mut File, lines: &[Vec<u8>], next: usize, n: usize, ms: u64) -> usize {
    let end = (next + n).min(lines.len());
    let steps = (ms / 40).max(1) as usize;
    let chunk = (end - next).div_ceil(steps).max(1);
    let mut at = next;
    while at < end {
        let stop = (at + chunk).min(end);
        for l in &lines[at..stop] {
            // One write per entry, as Vault's file device does.
            w.write_all(l).unwrap();
        }
        at = stop;
        std::thread::sleep(Duration::from_millis(40));
    }
    end
}

/// Alert records by id; the ids seen more than once.
fn by_id(alerts: &[Value]) -> (BTreeMap<String, Value>, Vec<String>) {
    let mut m = BTreeMap::new();
    let mut twice = Vec::new();
    for a in alerts {
        let id = a["id"].as_str().expect("every alert has an id").to_string();
        if m.insert(id.clone(), a.clone()).is_some() {
            twice.push(id);
        }
    }
    (m, twice)
}

/// The JSON lines output across runs: a line a kill cut short is not an alert (its alert
/// was not recorded as delivered, so it is written again whole).
fn jsonl_alerts(path: &Path) -> (Vec<Value>, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut cut = 0;
    let mut out = Vec::new();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str(l) {
            Ok(v) => out.push(v),
            Err(_) => cut += 1,
        }
    }
    (out, cut)
}

#[test]
fn stops_kills_and_rotations_give_what_one_replay_gives() {
    if !have_aiosmtpd() || !require_tool(AM, "apt-get install prometheus-alertmanager") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (lines, expected) = scenario(dir.path());
    let (want, twice) = by_id(&expected);
    assert!(twice.is_empty(), "replay raised an id twice: {twice:?}");
    assert!(
        want.len() >= 20,
        "the scenario raises too little: {}",
        want.len()
    );
    let categories: BTreeSet<&str> = want
        .values()
        .map(|a| a["category"].as_str().unwrap())
        .collect();
    assert!(
        categories.contains("eso_cadence") && categories.len() >= 10,
        "{categories:?}"
    );

    let smtp_port = free_port();
    let mail_dir = dir.path().join("received");
    let _smtp = Smtp::start(smtp_port, &mail_dir, &[], &[]);
    let am = Alertmanager::start(&dir.path().join("am"), free_port());
    let am_port: u16 = am.addr.rsplit(':').next().unwrap().parse().unwrap();

    let log = dir.path().join("log/audit.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let mut w = open_log(&log);
    let cfg = config(dir.path(), smtp_port, am_port);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut next = 0;
    let mut how = Vec::new();
    // Most of the input is written while the daemon is stopped and killed.
    let share = lines.len() / (CYCLES + 4);
    for cycle in 0..CYCLES {
        let d = Daemon::start(dir.path(), &cfg, &[]);
        next = write_for(&mut w, &lines, next, share, 300 + rng.below(1200) as u64);
        if cycle % 4 == 1 {
            // A rotation while the daemon runs: by rename, or by copytruncate.
            if cycle % 8 == 1 {
                rotate(&log, &mut w);
            } else {
                copytruncate(&log);
            }
            next = write_for(&mut w, &lines, next, share / 4, 200);
        }
        // Let it read into what was written, then stop it somewhere in the middle.
        std::thread::sleep(Duration::from_millis(rng.below(800) as u64));
        if rng.below(3) == 0 {
            how.push("TERM");
            assert_eq!(d.stop().code, Some(0));
        } else {
            how.push("KILL");
            d.signal("KILL");
            drop(d);
        }
        if cycle % 4 == 2 {
            // A rotation while it is down, with lines written to both files meanwhile.
            next = write_for(&mut w, &lines, next, share / 8, 0);
            rotate(&log, &mut w);
            next = write_for(&mut w, &lines, next, share / 8, 0);
        }
        if cycle % 4 == 3 {
            // A copytruncate while it is down, with lines before and after.
            next = write_for(&mut w, &lines, next, share / 8, 0);
            copytruncate(&log);
            next = write_for(&mut w, &lines, next, share / 8, 0);
        }
    }
    assert!(
        how.contains(&"KILL") && how.contains(&"TERM"),
        "both ways of stopping: {how:?}"
    );
    assert!(
        next < lines.len(),
        "the input ran out before the last restart; slow the writer down"
    );
    // The last run reads the rest and stays up until everything is delivered.
    let d = Daemon::start(dir.path(), &cfg, &[]);
    next = write_for(&mut w, &lines, next, lines.len(), 1000);
    assert_eq!(next, lines.len());
    let alerts_path = d.alerts_path.clone();
    let start = Instant::now();
    loop {
        let (got, _) = jsonl_alerts(&alerts_path);
        let ids: BTreeSet<&str> = got.iter().filter_map(|a| a["id"].as_str()).collect();
        let missing: Vec<String> = want
            .iter()
            .filter(|(id, _)| !ids.contains(id.as_str()))
            .map(|(id, a)| format!("{id} ({} at {})", a["category"], a["time"]))
            .collect();
        if missing.is_empty() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let extra: Vec<String> = got
                .iter()
                .filter(|a| !want.contains_key(a["id"].as_str().unwrap_or("")))
                .map(|a| format!("{} ({} at {})", a["id"], a["category"], a["time"]))
                .collect();
            panic!(
                "missing after all runs (stops: {how:?}): {missing:#?}\nraised but not by replay: {extra:#?}\n{}",
                d.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // Anything raised twice would be written by now too.
    std::thread::sleep(Duration::from_secs(2));
    let context = format!("stops: {how:?}\n{}", d.log_text());

    // The JSON lines output: every record once, equal whole to replay's.
    let (got, cut) = jsonl_alerts(&alerts_path);
    let (got, twice) = by_id(&got);
    assert!(
        twice.is_empty(),
        "alerts written twice: {twice:?}\n{context}"
    );
    let extra: Vec<&String> = got.keys().filter(|id| !want.contains_key(*id)).collect();
    assert!(extra.is_empty(), "alerts replay does not raise: {extra:?}");
    for (id, a) in &want {
        assert_eq!(&got[id], a, "alert {id} differs from replay's");
    }

    // The mails: each alert id in one mail. SMTP has no idempotency: a mail the server took
    // in the instant before a kill, before the outbox recorded it, goes again after the
    // restart, with the same Message-ID (mail systems show it once); such re-sends are
    // counted once and reported.
    let resent = std::cell::Cell::new(0usize);
    let mails_of = || {
        let mut seen = BTreeSet::new();
        let all = mails(&mail_dir);
        let distinct: Vec<Value> = all
            .iter()
            .filter(|m| seen.insert(m["message_id"].as_str().unwrap_or("").to_string()))
            .cloned()
            .collect();
        resent.set(all.len() - distinct.len());
        alert_id_counts(&distinct)
    };
    let start = Instant::now();
    while mails_of().len() < want.len() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let mailed = mails_of();
    let missing: Vec<&String> = want.keys().filter(|id| !mailed.contains_key(*id)).collect();
    let mailed_twice: Vec<(&String, &usize)> = mailed.iter().filter(|(_, &n)| n > 1).collect();
    assert!(missing.is_empty(), "not mailed: {missing:?}\n{context}");
    assert!(
        mailed_twice.is_empty(),
        "mailed twice: {mailed_twice:?}\n{context}"
    );
    assert_eq!(
        mailed.len(),
        want.len(),
        "mails for alerts replay does not raise"
    );

    // Alertmanager: one alert per finding, keyed by the id's hash.
    let keys: BTreeSet<String> = want.keys().map(|id| alert_key_of(id)).collect();
    let in_am = am.wait_for(keys.len(), Duration::from_secs(60), || context.clone());
    let am_keys: BTreeSet<String> = in_am
        .iter()
        .map(|a| a["labels"]["alert_key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(am_keys, keys, "alertmanager's alerts are not replay's");

    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    eprintln!(
        "restart equivalence: {} alerts over {} runs ({how:?}); {cut} cut line(s) in the output, {} mail(s) sent again with their Message-ID",
        want.len(),
        CYCLES + 1,
        resent.get()
    );
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join("state/engine.state")
}

/// A state file of another format version, or a damaged one: the daemon says why, sets it
/// aside, counts it, and starts with fresh state; the next checkpoint is a good one.
#[test]
fn a_state_file_that_cannot_be_taken_is_set_aside_and_the_daemon_starts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "server: {{listen: 127.0.0.1:0, tick_secs: 0}}
state: {{dir: '{}', interval_secs: 1}}
sources:
  - {{name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}}
",
        dir.path().join("state").display()
    );
    // A first run writes a good state.
    let d = Daemon::start(dir.path(), &cfg, &[]);
    d.send_and_wait_read(
        "vault-socket",
        format!(
            "{}\n",
            response_line(
                "a1b2c3d4-0000-4000-8000-000000000001",
                "2026-03-02T10:00:00Z"
            )
        )
        .as_bytes(),
    );
    assert_eq!(d.stop().code, Some(0));
    let good = std::fs::read(state_file(dir.path())).expect("a state file after the drain");
    assert!(good.starts_with(b"auditwatch-state"));

    let previous = format!(
        "format version {}",
        auditwatch::daemon::state::FORMAT_VERSION - 1
    );
    for (what, bytes, reason) in [
        // The previous format (2, before the learned and token detectors): set aside, no migration.
        (
            "previous version",
            with_version(&good, auditwatch::daemon::state::FORMAT_VERSION - 1),
            previous.as_str(),
        ),
        ("older version", with_version(&good, 0), "format version 0"),
        (
            "newer version",
            with_version(&good, 99),
            "format version 99",
        ),
        ("damaged", flip_last(&good), "checksum mismatch"),
        ("cut short", good[..good.len() / 2].to_vec(), "cut short"),
    ] {
        std::fs::write(state_file(dir.path()), &bytes).unwrap();
        let d = Daemon::start(dir.path(), &cfg, &[]);
        let log = d.log_text();
        assert!(
            log.contains("the saved state cannot be taken") && log.contains(reason),
            "{what}: {log}"
        );
        assert_eq!(
            d.metric(
                "auditwatch_state_restores_total",
                &["outcome=\"discarded\""]
            ),
            1.0,
            "{what}"
        );
        let aside = dir.path().join("state/engine.state.discarded");
        assert_eq!(std::fs::read(&aside).unwrap(), bytes, "{what}: kept aside");
        assert_eq!(d.stop().code, Some(0));
        // The drain wrote a good one again.
        let again = std::fs::read(state_file(dir.path())).unwrap();
        let version = auditwatch::daemon::state::FORMAT_VERSION;
        assert_eq!(&again[16..20], &version.to_le_bytes(), "{what}");
    }
    // And a good one is taken.
    let d = Daemon::start(dir.path(), &cfg, &[]);
    assert!(
        d.log_text().contains("saved state found"),
        "{}",
        d.log_text()
    );
    assert_eq!(
        d.metric("auditwatch_state_restores_total", &["outcome=\"restored\""]),
        1.0
    );
}

fn with_version(good: &[u8], v: u32) -> Vec<u8> {
    let mut b = good.to_vec();
    b[16..20].copy_from_slice(&v.to_le_bytes());
    b
}

fn flip_last(good: &[u8]) -> Vec<u8> {
    let mut b = good.to_vec();
    let n = b.len() - 1;
    b[n] ^= 0x55;
    b
}
