//! One page per incident (issue 17), with the real programs a user wires together: the
//! daemon pushes its detections to Debian's `prometheus-alertmanager`, Debian's
//! `prometheus` scrapes the daemon and evaluates `dashboards/prometheus/auditwatch.rules.yml`
//! against the same Alertmanager, and Alertmanager runs the shipped
//! `deploy/alertmanager/alertmanager.example.yml` with its webhook receivers pointed at a
//! small webhook server here. One cross-tenant read gives exactly one notification (before:
//! three), to the security pager; a rejected reload gives exactly one, to the platform team.
//! `amtool` checks the example config and the routes the README promises.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::util::*;
use serde_json::Value;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/alertmanager/alertmanager.example.yml")
}

fn rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dashboards/prometheus/auditwatch.rules.yml")
}

#[test]
fn amtool_accepts_the_example_config_and_its_routes_are_the_documented_ones() {
    if !require_tool("amtool", "apt-get install prometheus-alertmanager") {
        return;
    }
    let out = Command::new("amtool")
        .arg("check-config")
        .arg(example())
        .output()
        .expect("amtool runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("SUCCESS"), "{out:?}");
    assert!(text.contains("4 inhibit rules"), "{text}");
    // Label sets as the push and the health rules send them → the receiver they reach.
    for (labels, receiver) in [
        (
            "alertname=AuditwatchCrossTenantRead team=security severity=critical tenant=acme category=cross_tenant_read",
            "security-page",
        ),
        (
            "alertname=AuditwatchRootTokenUse team=security severity=high category=root_token_use",
            "security-page",
        ),
        (
            "alertname=AuditwatchCrossTenantRead team=security severity=critical tenant=lumen category=cross_tenant_read",
            "lumen-security-page",
        ),
        (
            "alertname=AuditwatchCrossTenantRead team=security severity=warning tenant=acme category=cross_tenant_read",
            "security-ticket",
        ),
        (
            "alertname=AuditwatchDetectionsHigh team=security severity=info",
            "security-ticket",
        ),
        (
            "alertname=AuditwatchLinesDropped team=platform severity=critical instance=a:9201",
            "platform-page",
        ),
        (
            "alertname=AuditwatchReloadRejected team=platform severity=warning instance=a:9201",
            "platform-ticket",
        ),
    ] {
        let out = Command::new("amtool")
            .args(["config", "routes", "test"])
            .arg(format!("--config.file={}", example().display()))
            .arg(format!("--verify.receivers={receiver}"))
            .args(labels.split(' '))
            .output()
            .expect("amtool runs");
        assert!(
            out.status.success(),
            "{labels} should reach {receiver}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn one_incident_is_one_notification_and_a_health_problem_is_one() {
    if !require_tool("prometheus", "apt-get install prometheus")
        || !require_tool(AM, "apt-get install prometheus-alertmanager")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The webhook receiver: records every notification Alertmanager posts.
    let hook = Recorder::start();
    // The example as shipped, with its receivers at the webhook here and its waits short.
    let shipped = std::fs::read_to_string(example()).unwrap();
    let mut config = shipped.replace("http://127.0.0.1:5001", &format!("http://{}", hook.addr));
    for (from, to) in [
        ("group_wait: 30s", "group_wait: 1s"),
        ("group_interval: 5m", "group_interval: 2s"),
    ] {
        assert_eq!(config.matches(from).count(), 1, "{from} in the example");
        config = config.replace(from, to);
    }
    assert_eq!(config.matches(&hook.addr).count(), 5);
    let am = Alertmanager::start_with_config(&dir.path().join("am"), free_port(), &config);

    let ddir = dir.path().join("daemon");
    std::fs::create_dir_all(&ddir).unwrap();
    let daemon_config = format!(
        "server: {{listen: 127.0.0.1:0, tick_secs: 1}}
sources:
  - {{name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}}
alertmanager:
  url: 'http://{}'
  timeout_secs: 2
",
        am.addr
    );
    let daemon = Daemon::start(&ddir, &daemon_config, &[]);
    let target = daemon.http.clone().expect("the daemon's http address");
    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ['{}']
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['{}']
scrape_configs:
  - job_name: auditwatch
    static_configs:
      - targets: ['{target}']
",
            rules().display(),
            am.addr
        ),
    )
    .unwrap();
    let prom = Prometheus::start(dir.path(), &prom_config);
    let context = || {
        format!(
            "prometheus alerts: {}\nalertmanager alerts: {:#?}\nalertmanager log:\n{}\ndaemon log:\n{}",
            prom.api("/api/v1/alerts"),
            am.alerts(),
            am.log_text(),
            daemon.log_text()
        )
    };
    let wait = |what: &str, f: &mut dyn FnMut() -> bool| {
        wait_for(what, Duration::from_secs(60), f, context);
    };
    let notifications = || -> Vec<(String, Value)> {
        (hook.requests().iter())
            .map(|r| (r.path().to_string(), r.json()))
            .collect()
    };
    // Scraped (the counters exist at zero) and the rules loaded before anything happens.
    wait("the first scrape", &mut || {
        !prom
            .query(r#"auditwatch_reloads_total{job="auditwatch",outcome="rejected"} == 0"#)
            .is_empty()
    });
    wait("the rules to load", &mut || {
        prom.api("/api/v1/rules")["data"]["groups"]
            .as_array()
            .is_some_and(|g| g.len() == 3)
    });
    // Rules evaluated and Alertmanager's grouping done (group_wait + group_interval), twice
    // over: long enough for a second notification of the same incident to show.
    let settle = || {
        let after = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2);
        wait("the rules evaluated again", &mut || {
            prom.rules_evaluated_after(after)
        });
        std::thread::sleep(Duration::from_secs(6));
    };

    // One cross-tenant read.
    daemon.send("vault-socket", &scenario("cross-tenant-read"));
    daemon.wait_until("the alert", Duration::from_secs(20), |d| {
        d.alerts().len() == 1
    });
    hook.wait_for(1, Duration::from_secs(60), context);
    wait("the alert scraped", &mut || {
        !prom
            .query(r#"auditwatch_alerts_total{category="cross_tenant_read"} == 1"#)
            .is_empty()
    });
    settle();
    let got = notifications();
    assert_eq!(
        got.len(),
        1,
        "one incident, one notification: {got:#?}\n{}",
        context()
    );
    let (path, n) = &got[0];
    assert_eq!(path, "/security-page", "{n:#}");
    assert_eq!(n["receiver"], "security-page");
    assert_eq!(n["status"], "firing");
    let alerts = n["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{n:#}");
    let labels = &alerts[0]["labels"];
    assert_eq!(labels["alertname"], "AuditwatchCrossTenantRead", "{n:#}");
    assert_eq!(labels["team"], "security");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["tenant"], "acme");
    assert_eq!(labels["category"], "cross_tenant_read");
    // The page carries the evidence a responder needs, from the push.
    let ann = &alerts[0]["annotations"];
    assert!(
        ann["summary"]
            .as_str()
            .unwrap()
            .contains("acme identity read"),
        "{ann}"
    );
    assert!(ann["path"].is_string() && ann["actor"].is_string(), "{ann}");
    assert_eq!(n["groupLabels"]["tenant"], "acme", "{n:#}");

    // A health problem: a reload rejected (a setting the daemon does not know).
    let cfg_path = ddir.join("config.yaml");
    let mut cfg = std::fs::read_to_string(&cfg_path).unwrap();
    cfg.push_str("no_such_setting: 1\n");
    std::fs::write(&cfg_path, cfg).unwrap();
    daemon.signal("HUP");
    daemon.wait_until("the rejection", Duration::from_secs(20), |d| {
        d.metric("auditwatch_reloads_total", &["outcome=\"rejected\""]) >= 1.0
    });
    hook.wait_for(2, Duration::from_secs(60), context);
    settle();
    let got = notifications();
    assert_eq!(
        got.len(),
        2,
        "one health problem, one notification: {got:#?}"
    );
    let (path, n) = &got[1];
    assert_eq!(path, "/platform-ticket", "{n:#}");
    let alerts = n["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{n:#}");
    let labels = &alerts[0]["labels"];
    assert_eq!(labels["alertname"], "AuditwatchReloadRejected", "{n:#}");
    assert_eq!(labels["team"], "platform");
    assert_eq!(labels["severity"], "warning");
    assert_eq!(labels["instance"], target.as_str());

    drop(prom);
    let exit = daemon.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
}
