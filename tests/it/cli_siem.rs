//! What a SIEM gets: every record names the detector instance (`observer`), says what the
//! rule means (`description`) and links the runbook (`runbook_url`), without changing the
//! stable `id`; `replay --format ecs` and the JSON lines sink's `format: ecs` write the
//! same alerts as Elastic Common Schema; the README's shipper configurations are valid
//! YAML that read the file auditwatch writes, and its auditwatch config passes `config
//! check`.

use std::collections::BTreeMap;
use std::time::Duration;

use auditwatch::rules::RuleSet;
use serde_json::Value;

use crate::util::*;

const README: &str = include_str!("../../README.md");

const SCENARIO: &str = "fixtures/scenarios/day-on-the-platform.jsonl";

fn config_file(dir: &std::path::Path, text: &str) -> String {
    let p = dir.join("c.yaml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// The rule descriptions, on one line, by rule id.
fn descriptions() -> BTreeMap<String, String> {
    RuleSet::embedded()
        .rules
        .iter()
        .map(|r| {
            let one: Vec<&str> = r.description.split_whitespace().collect();
            (r.id.clone(), one.join(" "))
        })
        .collect()
}

#[test]
fn records_name_the_observer_describe_the_rule_and_link_the_runbook_with_the_same_ids() {
    let dir = tempfile::tempdir().unwrap();
    let plain = Auditwatch::new()
        .args(["replay", "--quiet", SCENARIO])
        .run();
    plain.assert_code(0);
    let cfg = config_file(
        dir.path(),
        "output: {observer: vault-dc1-a, runbook_url: 'https://wiki.example/auditwatch/{category}#{rule}'}\n",
    );
    let named = Auditwatch::new()
        .args(["replay", "--quiet", "--config", cfg.as_str(), SCENARIO])
        .run();
    named.assert_code(0);
    let (a, b) = (plain.alerts(), named.alerts());
    assert!(a.len() >= 5, "{}", plain.context());
    let host = hostname::get().unwrap().into_string().unwrap();
    let about = descriptions();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        // The observer never enters the id: an HA pair's ids stay equal.
        assert_eq!(x["id"], y["id"]);
        assert_eq!(
            x["observer"],
            host.as_str(),
            "the default observer is the host name"
        );
        assert_eq!(y["observer"], "vault-dc1-a");
        let rule = y["rule"].as_str().unwrap();
        assert_eq!(y["description"], about[rule].as_str(), "{y}");
        assert!(!about[rule].is_empty() && !about[rule].contains('\n'));
        assert_eq!(x["runbook_url"], Value::Null, "no runbook configured: {x}");
        assert_eq!(
            y["runbook_url"],
            format!(
                "https://wiki.example/auditwatch/{}#{rule}",
                y["category"].as_str().unwrap()
            )
        );
        // Apart from what the instance adds, the records are the same.
        let strip = |v: &Value| {
            let mut v = v.clone();
            for k in ["observer", "runbook_url"] {
                v.as_object_mut().unwrap().remove(k);
            }
            v
        };
        assert_eq!(strip(x), strip(y));
    }
    // The record's fields, in the contract's order, the new ones last.
    let first = plain.stdout.lines().next().unwrap();
    let order = [
        "\"id\":",
        "\"time\":",
        "\"rule\":",
        "\"category\":",
        "\"severity\":",
        "\"summary\":",
        "\"tenant\":",
        "\"target_tenant\":",
        "\"request_id\":",
        "\"path\":",
        "\"operation\":",
        "\"outcome\":",
        "\"actor\":",
        "\"evidence\":",
        "\"observer\":",
        "\"description\":",
        "\"runbook_url\":",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|k| first.find(k).unwrap_or_else(|| panic!("no {k} in {first}")))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "field order: {first}");
}

#[test]
fn replay_format_ecs_writes_the_same_alerts_as_ecs_documents() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        dir.path(),
        "output: {observer: vault-dc1-a, runbook_url: 'https://wiki.example/{rule}'}\n",
    );
    let run = |format: &str| {
        let r = Auditwatch::new()
            .args([
                "replay",
                "--quiet",
                "--config",
                cfg.as_str(),
                "--format",
                format,
                SCENARIO,
            ])
            .run();
        r.assert_code(0);
        r.alerts()
    };
    let (records, ecs) = (run("jsonl"), run("ecs"));
    assert_eq!(records.len(), ecs.len());
    let level = |s: &str| match s {
        "info" => 21,
        "warning" => 47,
        "high" => 73,
        "critical" => 99,
        other => panic!("severity {other}"),
    };
    for (r, e) in records.iter().zip(&ecs) {
        assert_eq!(e["@timestamp"], r["time"]);
        assert_eq!(e["message"], r["summary"]);
        assert_eq!(e["event"]["kind"], "alert");
        assert_eq!(e["event"]["id"], r["id"]);
        assert_eq!(
            e["event"]["severity"],
            level(r["severity"].as_str().unwrap())
        );
        assert_eq!(e["log"]["level"], r["severity"]);
        assert_eq!(e["rule"]["id"], r["rule"]);
        assert_eq!(e["rule"]["description"], r["description"]);
        assert_eq!(e["rule"]["reference"], r["runbook_url"]);
        assert_eq!(e["observer"]["name"], "vault-dc1-a");
        assert_eq!(e["observer"]["product"], "auditwatch");
        assert_eq!(e["ecs"]["version"], "8.11.0");
        assert!(e["event"]["category"]
            .as_array()
            .unwrap()
            .contains(&Value::from("intrusion_detection")));
        if let Some(t) = r["tenant"].as_str() {
            assert_eq!(e["labels"]["tenant"], t);
        }
        if let Some(n) = r["actor"]["display_name"].as_str() {
            assert_eq!(e["user"]["name"], n);
        }
        // What the record has as null, ECS leaves out.
        match r["path"].as_str() {
            Some(p) => assert_eq!(e["auditwatch"]["path"], p),
            None => assert!(e["auditwatch"].get("path").is_none(), "{e}"),
        }
    }
}

#[test]
fn the_jsonl_sink_writes_ecs_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "server: {{listen: 127.0.0.1:0}}\nsources:\n  - {{name: s, kind: socket, protocol: tcp, listen: 127.0.0.1:0}}\noutput: {{alerts: '{}', format: ecs, observer: detector-b}}\n",
        dir.path().join("alerts.jsonl").display()
    );
    let d = Daemon::start(dir.path(), &cfg, &[]);
    let line = cross_tenant_allowed(&rid(7)) + "\n";
    d.send("s", line.as_bytes());
    d.wait_until("the alert", Duration::from_secs(30), |d| {
        !d.alerts().is_empty()
    });
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    let docs = read_alerts(&dir.path().join("alerts.jsonl"));
    assert_eq!(docs.len(), 1, "{docs:?}");
    let e = &docs[0];
    assert_eq!(e["event"]["kind"], "alert");
    assert_eq!(e["event"]["id"], format!("cross-tenant-read:{}", rid(7)));
    assert_eq!(e["event"]["severity"], 99);
    assert_eq!(e["observer"]["name"], "detector-b");
    assert_eq!(e["labels"]["tenant"], "acme");
    assert_eq!(e["labels"]["target_tenant"], "lumen");
    assert_eq!(e["auditwatch"]["request_id"], rid(7));
    assert!(
        e.get("id").is_none(),
        "an ECS document, not the record: {e}"
    );
}

#[test]
fn bad_format_and_observer_are_reported_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        dir.path(),
        "output:\n  format: xml\n  observer: \"a\\nb\"\n",
    );
    let run = auditwatch(["config", "check", cfg.as_str()]);
    run.assert_code(2);
    for want in [
        "c.yaml:2:11: output.format must be `jsonl` (the alert record) or `ecs`",
        "c.yaml:3:13: output.observer must be at most 253 bytes without control characters",
    ] {
        assert!(
            run.stderr.contains(want),
            "missing `{want}`\n{}",
            run.context()
        );
    }
}

/// The README's "Shipping alerts to a SIEM" section: its auditwatch config passes `config
/// check`, and its Vector and Fluent Bit configurations are YAML that read the file that
/// config writes. (Neither Vector nor Fluent Bit is packaged in the registries this
/// project installs from, so their own validators do not run here.)
#[test]
fn readme_siem_shipping_configs_are_valid_and_read_the_alert_file() {
    let section = &README[README
        .find("## Shipping alerts to a SIEM")
        .expect("README has the SIEM section")..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let block = |first_line: &str| fenced_block(section, "yaml", first_line);
    let ours = block("# /etc/auditwatch/auditwatch.yaml");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), &ours);
    auditwatch(["config", "check", cfg.as_str()]).assert_code(0);
    let alerts_file = "/var/log/auditwatch/alerts.jsonl";
    assert!(
        ours.contains(alerts_file) && ours.contains("format: ecs"),
        "{ours}"
    );

    let load = |text: &str| -> Value {
        let mut docs = yaml_docs(&format!("a README block:\n{text}"), text);
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    };
    let vector = load(&block("# /etc/vector/vector.yaml"));
    let src = &vector["sources"]["auditwatch_alerts"];
    assert_eq!(src["type"].as_str(), Some("file"));
    assert_eq!(src["include"][0].as_str(), Some(alerts_file));
    let parse = &vector["transforms"]["auditwatch_parse"];
    assert_eq!(parse["type"].as_str(), Some("remap"));
    assert!(parse["source"].as_str().unwrap().contains("parse_json!"));
    let sink = &vector["sinks"]["siem"];
    assert_eq!(sink["inputs"][0].as_str(), Some("auditwatch_parse"));
    assert_eq!(sink["id_key"].as_str(), Some("event.id"));

    let fluent = load(&block("# /etc/fluent-bit/fluent-bit.yaml"));
    let input = &fluent["pipeline"]["inputs"][0];
    assert_eq!(input["name"].as_str(), Some("tail"));
    assert_eq!(input["path"].as_str(), Some(alerts_file));
    let parser = input["parser"].as_str().unwrap();
    assert_eq!(fluent["parsers"][0]["name"].as_str(), Some(parser));
    assert_eq!(fluent["parsers"][0]["format"].as_str(), Some("json"));
    assert_eq!(
        fluent["parsers"][0]["time_key"].as_str(),
        Some("@timestamp")
    );
    let output = &fluent["pipeline"]["outputs"][0];
    assert_eq!(
        output["match"].as_str(),
        Some(input["tag"].as_str().unwrap())
    );
}
