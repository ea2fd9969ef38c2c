//! The simulator against the engine: planted findings are found, clean traffic is quiet,
//! the golden fixtures are exactly what the generator produces, the look-alike scenarios
//! really contain their look-alikes, and `auditwatch simulate` is deterministic.
//!
//! `UPDATE_GOLDEN=1 cargo test --test it simulate::` regenerates `fixtures/scenarios/*.jsonl`
//! from the catalogue (then run `UPDATE_GOLDEN=1 cargo test --test it paths::serial` and review
//! the alert diffs).

use std::path::Path;
use std::process::Command;

use auditwatch::alert::Alert;
use auditwatch::parse::time::parse_rfc3339_nanos;
use auditwatch::simulate::{generate, scenarios, Injection, SimConfig};
use serde_json::Value;

use crate::util::{replay_lines, scenario_dir, BIN};

const SEC: i64 = 1_000_000_000;

/// A mid-sized platform for half a day: long enough for every injection (the stale one
/// needs about 7.5 h), small enough for a debug-build test.
fn platform(seed: u64, injections: Vec<Injection>) -> SimConfig {
    SimConfig {
        seed,
        tenants: 6,
        duration_secs: 12 * 3600,
        injections,
        ..SimConfig::default()
    }
}

#[test]
fn every_injected_finding_is_found_and_clean_traffic_is_quiet() {
    for seed in [1, 2] {
        let (lines, key) = generate(&platform(seed, Injection::ALL.to_vec())).expect("plans");
        for inj in Injection::ALL {
            assert!(
                key.items
                    .iter()
                    .any(|i| i.injection == inj.name() && !i.side_effect),
                "seed {seed}: no answer item for {}",
                inj.name()
            );
        }
        let (alerts, errors) = replay_lines(&lines);
        assert_eq!(errors, 0, "seed {seed}: parse errors");
        let show = |alerts: &[Alert]| -> String {
            alerts
                .iter()
                .map(|a| a.to_text_line() + "\n")
                .collect::<String>()
        };
        for item in &key.items {
            assert!(
                alerts.iter().any(|a| item.found_by(a)),
                "seed {seed}: not found: {} ({} >= {}, {}..{})\nalerts:\n{}",
                item.description,
                item.category,
                item.min_severity,
                item.window_start,
                item.window_end,
                show(&alerts)
            );
        }
        for a in &alerts {
            assert!(
                key.items.iter().any(|i| i.explains(a)),
                "seed {seed}: alert not explained by the answer key: {}",
                a.to_json_line()
            );
        }

        let (clean, _) = generate(&platform(seed, Vec::new())).expect("plans");
        let (alerts, errors) = replay_lines(&clean);
        assert_eq!(errors, 0);
        assert!(
            alerts.is_empty(),
            "seed {seed}: clean traffic raised alerts:\n{}",
            show(&alerts)
        );
    }
}

#[test]
fn injections_that_do_not_fit_say_what_they_need() {
    let short = SimConfig {
        duration_secs: 3600,
        injections: vec![Injection::EsoStale],
        ..SimConfig::default()
    };
    let err = generate(&short).expect_err("a 1 h window cannot show staleness");
    assert!(err.to_string().contains("7.5 h"), "{err}");
    let lonely = SimConfig {
        tenants: 1,
        injections: vec![Injection::CrossTenantRead],
        ..SimConfig::default()
    };
    assert!(generate(&lonely).is_err());
    let office = SimConfig {
        start: SimConfig::default().start + 9 * 3600 * SEC,
        duration_secs: 3 * 3600,
        injections: vec![Injection::AfterHoursAdmin],
        ..SimConfig::default()
    };
    assert!(
        generate(&office).is_err(),
        "09:00-12:00 has no after-hours slot"
    );
    // A human admin's session needs business hours: Saturday has none.
    let saturday = SimConfig {
        start: SimConfig::default().start + 5 * 86_400 * SEC,
        duration_secs: 6 * 3600,
        injections: vec![Injection::PolicyDrift],
        ..SimConfig::default()
    };
    let err = generate(&saturday).expect_err("no business hours on a Saturday");
    assert!(err.to_string().contains("business hours"), "{err}");
    // The silent-stream alarm judges busy streams only; two tenants without the scrape
    // are not busy.
    let quiet = SimConfig {
        tenants: 2,
        metrics_scrape_secs: None,
        utc_offset_secs: 0,
        injections: vec![Injection::AuditStreamSilent],
        ..SimConfig::default()
    };
    let err = generate(&quiet).expect_err("a sparse stream cannot go silent");
    assert!(err.to_string().contains("busy stream"), "{err}");
    let nothing = SimConfig {
        store_validation_secs: None,
        metrics_scrape_secs: None,
        utc_offset_secs: 0,
        injections: vec![Injection::RawAuditDevice],
        ..SimConfig::default()
    };
    assert!(
        generate(&nothing).is_err(),
        "a log_raw window needs traffic"
    );
}

#[test]
fn the_device_states_shape_the_stream() {
    let cfg = SimConfig {
        seed: 9,
        tenants: 4,
        duration_secs: 4 * 3600,
        injections: vec![Injection::AuditStreamSilent, Injection::RawAuditDevice],
        ..SimConfig::default()
    };
    let (lines, key) = generate(&cfg).expect("plans");
    let window = |kind: &str| {
        let i = key
            .items
            .iter()
            .find(|i| i.evidence_kind == Some(kind))
            .expect("an item per device state");
        (i.window_start_ns, i.window_end_ns)
    };
    let times: Vec<i64> = lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            time(&v)
        })
        .collect();
    // The silent gap: no entry for more than 15 minutes before the alarm's time.
    let (_, alarm) = window("silent");
    let before = times
        .iter()
        .filter(|&&t| t <= alarm - 900 * SEC)
        .max()
        .copied();
    let after = times
        .iter()
        .filter(|&&t| t > alarm - 900 * SEC)
        .min()
        .copied();
    let (before, after) = (
        before.expect("traffic before"),
        after.expect("traffic after"),
    );
    assert!(after - before > 20 * 60 * SEC, "a gap of 20+ minutes");
    // The log_raw window: every token inside it is in clear, none outside.
    let (r0, r1) = window("log_raw");
    for (l, &t) in lines.iter().zip(&times) {
        let clear = l.contains("\"client_token\":\"s.");
        if clear {
            assert!(
                (r0..r1 + 60 * SEC).contains(&t),
                "a clear token outside the window"
            );
        }
        if (r0 + SEC..r1 - SEC).contains(&t) && l.contains("\"client_token\"") {
            assert!(!l.contains("\"client_token\":\"hmac-sha256:"), "{l}");
        }
    }
    assert!(lines.iter().any(|l| l.contains("\"client_token\":\"s.")));
}

#[test]
fn fixtures_are_the_generators_output() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for sc in scenarios::catalogue() {
        let (lines, _) = generate(&sc.config).expect("catalogue scenarios plan");
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        assert!(
            text.len() < 700 * 1024,
            "{}: {} bytes; fixtures stay well under 1 MB",
            sc.name,
            text.len()
        );
        let path = scenario_dir().join(format!("{}.jsonl", sc.name));
        if update {
            std::fs::create_dir_all(scenario_dir()).expect("create fixtures/scenarios");
            std::fs::write(&path, &text).expect("write fixture");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(on_disk) if on_disk == text => {}
            _ => stale.push(sc.name),
        }
    }
    assert!(
        stale.is_empty(),
        "fixtures differ from the generator: {stale:?}; regenerate with \
         UPDATE_GOLDEN=1 cargo test --test it simulate::, then review \
         UPDATE_GOLDEN=1 cargo test --test it paths::serial"
    );
}

/// The entries of a catalogue scenario, parsed.
fn entries(name: &str) -> Vec<Value> {
    let sc = scenarios::catalogue()
        .into_iter()
        .find(|s| s.name == name)
        .expect("a catalogue scenario");
    let (lines, _) = generate(&sc.config).expect("plans");
    lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("valid JSON"))
        .collect()
}

fn responses(es: &[Value]) -> impl Iterator<Item = &Value> {
    es.iter().filter(|e| e["type"] == "response")
}

/// Who acted: the issued token on a login, else the calling token.
fn actor(e: &Value) -> &Value {
    let issued = &e["response"]["auth"];
    if issued["display_name"].is_string() {
        issued
    } else {
        &e["auth"]
    }
}

fn time(e: &Value) -> i64 {
    e["time"]
        .as_str()
        .and_then(parse_rfc3339_nanos)
        .expect("a time")
}

fn path(e: &Value) -> &str {
    e["request"]["path"].as_str().unwrap_or("")
}

fn hour(e: &Value) -> i64 {
    time(e).rem_euclid(86_400 * SEC) / (3600 * SEC)
}

fn is_eso_read(e: &Value) -> bool {
    actor(e)["metadata"]["service_account_name"] == "bookstore-platform-eso"
        && e["request"]["operation"] == "read"
        && (path(e).starts_with("secret/") || path(e).starts_with("database/"))
}

#[test]
fn look_alike_scenarios_contain_their_look_alikes() {
    // The Composition writes tenant policies at 03:xx; the break-glass job reads every
    // tenant's credentials.
    let es = entries("composition-3am");
    let comp = |e: &&Value| {
        actor(e)["display_name"] == "kubernetes-crossplane-system-provider-vault"
            && e["request"]["operation"] == "update"
            && path(e).starts_with("sys/policies/acl/bookstore-platform-app-")
            && hour(e) == 3
    };
    assert!(responses(&es).filter(comp).count() >= 2);
    let breakglass = responses(&es)
        .filter(|e| {
            actor(e)["metadata"]["service_account_name"] == "breakglass-refresh"
                && path(e).starts_with("secret/data/bookstore-platform/")
        })
        .count();
    assert_eq!(breakglass, 2, "one read per tenant");

    // Humans with the admin policy in business hours; one denied read by a developer.
    let es = entries("human-business-hours");
    let admin: Vec<&Value> = responses(&es)
        .filter(|e| {
            let a = actor(e);
            let dn = a["display_name"].as_str().unwrap_or("");
            (dn.starts_with("oidc-") || dn.starts_with("userpass-"))
                && a["policies"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p == "bookstore-platform-admin"))
        })
        .collect();
    assert!(admin.len() >= 4, "an admin session");
    assert!(admin.iter().all(|e| (8..19).contains(&hour(e))));
    let denied: Vec<&Value> = responses(&es)
        .filter(|e| {
            e["error"]
                .as_str()
                .is_some_and(|x| x.contains("permission denied"))
        })
        .collect();
    assert_eq!(denied.len(), 1);
    assert!(actor(denied[0])["display_name"]
        .as_str()
        .is_some_and(|d| d.starts_with("oidc-dave")));
    assert!(path(denied[0]).starts_with("secret/data/bookstore-platform/"));

    // ESO: duplicate reads, a failed read and its retry, 50-minute database refreshes,
    // the validation loop.
    let es = entries("eso-rhythm");
    let reads: Vec<&Value> = responses(&es).filter(|e| is_eso_read(e)).collect();
    let ok: Vec<&Value> = reads
        .iter()
        .copied()
        .filter(|e| e["error"].is_null())
        .collect();
    let failed = reads.len() - ok.len();
    assert!(failed >= 1, "a failed read that ESO retries");
    let mut dups = 0;
    for (i, e) in ok.iter().enumerate() {
        if ok[..i]
            .iter()
            .any(|p| path(p) == path(e) && time(e) - time(p) < 30 * SEC)
        {
            dups += 1;
        }
    }
    assert!(dups >= 1, "a duplicate read");
    let db: Vec<i64> = ok
        .iter()
        .filter(|e| path(e).starts_with("database/creds/"))
        .map(|e| time(e))
        .collect();
    assert!(db.len() >= 3);
    let mut minted_twice = false;
    for w in db.windows(2) {
        let iv = (w[1] - w[0]) / SEC;
        // A re-reconcile mints again within seconds (a duplicate); otherwise 50 min.
        minted_twice |= iv < 30;
        assert!(
            iv < 30 || (2990..3010).contains(&iv),
            "50-minute refresh, got {iv} s"
        );
    }
    assert!(minted_twice, "a re-reconcile that mints twice");
    let logins = responses(&es)
        .filter(|e| path(e) == "auth/kubernetes/login")
        .count();
    assert!(
        logins >= 36,
        "the 5-minute validation loop logs in: {logins}"
    );

    // CI logs in and looks itself up; it never reads.
    let es = entries("ci-login-only");
    let ci_logins = responses(&es)
        .filter(|e| path(e) == "auth/jwt/login")
        .count();
    assert!(ci_logins >= 2);
    let ci_reads = responses(&es)
        .filter(|e| {
            actor(e)["display_name"]
                .as_str()
                .is_some_and(|d| d.starts_with("jwt-"))
                && path(e) != "auth/token/lookup-self"
                && path(e) != "auth/jwt/login"
        })
        .count();
    assert_eq!(ci_reads, 0);
}

fn command() -> Command {
    Command::new(BIN)
}

#[test]
fn the_command_is_deterministic_and_writes_an_answer_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("key.json");
    let run = |out: &Path| {
        let status = command()
            .args([
                "simulate",
                "--seed",
                "7",
                "--tenants",
                "2",
                "--start",
                "2026-03-02T14:00:00Z",
                "--duration",
                "20m",
                "--inject",
                "cross-tenant-read,ci_origin_read,generate-root",
                "--answer-key",
            ])
            .arg(&key)
            .arg("--output")
            .arg(out)
            .status()
            .expect("runs");
        assert!(status.success());
        std::fs::read(out).expect("output written")
    };
    let a = run(&dir.path().join("a.jsonl"));
    let b = run(&dir.path().join("b.jsonl"));
    assert!(!a.is_empty());
    assert_eq!(a, b);
    let key: Value =
        serde_json::from_str(&std::fs::read_to_string(&key).expect("key")).expect("json");
    assert_eq!(key["items"].as_array().map(Vec::len), Some(3));
    let cats: Vec<&str> = key["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["category"].as_str())
        .collect();
    for c in ["cross_tenant_read", "ci_origin_read", "generate_root"] {
        assert!(cats.contains(&c), "{cats:?}");
    }

    let stdout = command()
        .args([
            "simulate",
            "--seed",
            "7",
            "--tenants",
            "1",
            "--duration",
            "5m",
        ])
        .output()
        .expect("runs");
    assert!(stdout.status.success());
    assert!(stdout.stdout.starts_with(b"{\"time\":\"2026-03-02T00:0"));

    for bad in [
        &["simulate", "--duration", "soon"][..],
        &["simulate", "--metrics-scrape", "often"],
        &["simulate", "--inject", "nope"],
        &["simulate", "--start", "yesterday"],
        &[
            "simulate",
            "--tenants",
            "1",
            "--inject",
            "cross_tenant_probe",
        ],
    ] {
        let out = command().args(bad).output().expect("runs");
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(out.stdout.is_empty());
    }
}
