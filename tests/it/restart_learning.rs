//! Learned state across a restart (issue 18): the daemon stopped in the middle of a
//! learning period and started again from its state snapshot goes on learning where it
//! stopped. The identities and secrets it saw before the restart are past their learning
//! period an hour after they first appeared, not an hour after the restart, so the
//! findings that fall between the two are raised, and are replay's, id for id. A daemon
//! that lost what it learned would start each identity's learning again at the restart and
//! stay quiet there.

use std::path::Path;

use auditwatch::parse::time::format_rfc3339;
use serde_json::Value;

use crate::util::*;

const S: i64 = 1_000_000_000;
const MIN: i64 = 60 * S;

/// A one-hour learning period.
const DETECTION: &str = "learning: {period_secs: 3600}\n";

fn config(state: &Path) -> String {
    format!(
        "{DETECTION}server: {{listen: 127.0.0.1:0, tick_secs: 0}}
state: {{dir: '{}', interval_secs: 1}}
sources:
  - {{name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}}
",
        state.display()
    )
}

fn read(who: &str, path: &str, t: i64, n: &str) -> String {
    let auth = if who.starts_with("oidc-") {
        format!(r#"{{"display_name":"{who}","entity_id":"e-{who}","policies":["default"]}}"#)
    } else {
        format!(
            r#"{{"display_name":"kubernetes-bookstore-platform-acme-{who}","metadata":{{"service_account_name":"{who}","service_account_namespace":"bookstore-platform-acme"}},"policies":["default"]}}"#
        )
    };
    format!(
        r#"{{"time":"{}","type":"response","auth":{auth},"request":{{"id":"{n}","operation":"read","mount_type":"kv","mount_point":"secret/","path":"{path}","remote_address":"10.0.0.9"}},"response":{{}}}}"#,
        format_rfc3339(t)
    )
}

/// 100 minutes of everyone reading their own secrets every 5 minutes; at 70 minutes alice
/// reads bob's secret and the tenant's database password only ESO read.
fn stream(t0: i64) -> Vec<(i64, String)> {
    let mut lines = Vec::new();
    for n in 0..20 {
        let t = t0 + n * 5 * MIN;
        lines.push((
            t,
            read("oidc-alice", "secret/data/app/a", t, &format!("a-{n}")),
        ));
        lines.push((
            t + S,
            read("oidc-bob", "secret/data/pay/b", t + S, &format!("b-{n}")),
        ));
        lines.push((
            t + 2 * S,
            read(
                "oidc-bob",
                "secret/data/bookstore-platform/acme/config",
                t + 2 * S,
                &format!("c-{n}"),
            ),
        ));
        lines.push((
            t + 3 * S,
            read(
                "bookstore-platform-eso",
                "secret/data/bookstore-platform/acme/db",
                t + 3 * S,
                &format!("e-{n}"),
            ),
        ));
    }
    let t = t0 + 70 * MIN + 30 * S;
    lines.push((t, read("oidc-alice", "secret/data/pay/b", t, "x-1")));
    lines.push((
        t + S,
        read(
            "oidc-alice",
            "secret/data/bookstore-platform/acme/db",
            t + S,
            "x-2",
        ),
    ));
    lines.sort();
    lines
}

fn summary(alerts: &[Value]) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = alerts
        .iter()
        .map(|a| {
            (
                a["rule"].as_str().unwrap_or("").to_string(),
                a["request_id"].as_str().unwrap_or("").to_string(),
                a["severity"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_restart_in_the_learning_period_keeps_what_was_learned() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let t0 = now_ns() - 3 * 3600 * S;
    let lines = stream(t0);
    // The first daemon sees 40 minutes (the learning period runs to 60), the second the rest.
    let cut = lines.iter().position(|(t, _)| *t >= t0 + 40 * MIN).unwrap();
    let (first, second) = lines.split_at(cut);
    let all = across_restarts(
        dir.path(),
        &config(&state),
        &[],
        &[first, second],
        |_, _| {},
    );
    let want = vec![
        (
            "first-seen-access".to_string(),
            "x-1".to_string(),
            "warning".to_string(),
        ),
        (
            "first-seen-access".to_string(),
            "x-2".to_string(),
            "warning".to_string(),
        ),
        (
            "human-in-machine-secret".to_string(),
            "x-2".to_string(),
            "high".to_string(),
        ),
    ];
    assert_eq!(summary(&all), want, "{all:#?}");

    // Replay of the same input: the same findings, id for id.
    let run = replay_timed(dir.path(), &lines, DETECTION, &[]);
    let ids = |v: &[Value]| -> Vec<String> {
        let mut ids: Vec<String> = v.iter().map(|a| a["id"].to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&run.alerts()), ids(&all));
}
