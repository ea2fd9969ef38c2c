//! The Grafana dashboards in `dashboards/grafana/` and the Prometheus rules in
//! `dashboards/prometheus/`: every dashboard parses, typechecks against `@grafana/schema`
//! (`node tests/grafana/check.mjs`, when `npm ci --prefix tests/grafana` was run), refers to
//! the provisioned Prometheus datasource through its `datasource` variable, and every query
//! is valid PromQL (`promtool check rules`, when promtool is installed) naming only metrics
//! that a live daemon, after processing a scenario that raises alerts, really exposes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util::*;
use serde_json::Value;

const DASHBOARDS: [&str; 4] = [
    "soc-overview.json",
    "tenant.json",
    "eso-cadence.json",
    "detector-health.json",
];
const TENANT_QUERY: &str = "label_values(auditwatch_tenant_alerts_total, tenant)";
/// Grafana's own interval variables.
const BUILTIN_VARS: [&str; 3] = ["__range", "__interval", "__rate_interval"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dashboards() -> Vec<(String, Value)> {
    let dir = root().join("dashboards/grafana");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    found.sort();
    let mut want: Vec<String> = DASHBOARDS.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(found, want, "the dashboards in {dir:?}");
    DASHBOARDS
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(n)).unwrap();
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{n} is not JSON: {e}"));
            (n.to_string(), v)
        })
        .collect()
}

/// A one-document YAML file (the rule and provisioning files) as JSON.
fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let mut docs = yaml_docs(&path.display().to_string(), &text);
    assert_eq!(docs.len(), 1, "{path:?}: one YAML document");
    docs.remove(0)
}

/// Every panel, row panels' children included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(children) = p["panels"].as_array() {
            out.extend(children);
        }
    }
    out
}

fn variables(d: &Value) -> Vec<&Value> {
    d["templating"]["list"]
        .as_array()
        .map(|l| l.iter().collect())
        .unwrap_or_default()
}

/// Every PromQL expression of a dashboard: (where, expr).
fn dashboard_exprs(name: &str, d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_else(|| {
                panic!("{name}: panel `{}` has a target without expr", p["title"])
            });
            out.push((format!("{name}: panel `{}`", p["title"]), expr.to_string()));
        }
    }
    out
}

/// Every alerting rule's expression.
fn rule_exprs() -> Vec<(String, String)> {
    let rules = yaml(&root().join("dashboards/prometheus/auditwatch.rules.yml"));
    let mut out = Vec::new();
    for g in rules["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            out.push((
                format!("alert {}", r["alert"]),
                r["expr"].as_str().expect("expr").to_string(),
            ));
        }
    }
    assert!(out.len() >= 15, "{out:?}");
    out
}

/// The metric names a PromQL expression selects: identifiers outside strings, label
/// matchers, ranges and grouping lists that are not functions, aggregations or keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 7] = ["and", "or", "unless", "bool", "offset", "inf", "nan"];
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let c: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Skip from an opening bracket to its match (strings inside skipped whole).
    let skip_group = |mut i: usize, open: char, close: char| -> usize {
        let mut depth = 0;
        while i < c.len() {
            match c[i] {
                '"' | '\'' | '`' => {
                    let q = c[i];
                    i += 1;
                    while i < c.len() && c[i] != q {
                        i += if c[i] == '\\' { 2 } else { 1 };
                    }
                }
                x if x == open => depth += 1,
                x if x == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '"' || ch == '\'' || ch == '`' {
            i += 1;
            while i < c.len() && c[i] != ch {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if ch == '{' {
            i = skip_group(i, '{', '}');
        } else if ch == '[' {
            i = skip_group(i, '[', ']');
        } else if ch == '$' {
            // A Grafana variable ($__range, ${x}).
            i += 1;
            if i < c.len() && c[i] == '{' {
                i = skip_group(i, '{', '}');
            } else {
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
        } else if ch.is_ascii_digit() || ch == '.' {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '.') {
                i += 1;
            }
        } else if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == ':') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let mut j = i;
            while j < c.len() && c[j].is_whitespace() {
                j += 1;
            }
            // `sum by (x) (...)`: an aggregation whose grouping comes first.
            let rest: String = c[j..].iter().take(8).collect();
            let grouped = ["by", "without"].iter().any(|g| {
                rest.strip_prefix(g)
                    .is_some_and(|r| r.starts_with(|ch: char| ch == '(' || ch.is_whitespace()))
            });
            let call = grouped || (j < c.len() && c[j] == '(');
            if GROUPING.contains(&word.as_str()) {
                if call {
                    i = skip_group(j, '(', ')');
                }
            } else if !call && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_read_from_promql() {
    let got = metric_names(
        r#"sum by (job, source) (rate(auditwatch_events_total{job=~"$job", source="a{b}"}[$__rate_interval])) / on (job) group_left (x) up offset 5m > bool 0.5e3 or vector(0) unless auditwatch_ready{x="}"} offset $__range"#,
    );
    let want: BTreeSet<String> = ["auditwatch_events_total", "up", "auditwatch_ready"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        metric_names("count(sum without (tenant) (increase(x_total[1h])) > 0)"),
        ["x_total".to_string()].into_iter().collect()
    );
}

#[test]
fn dashboards_use_the_provisioned_datasource_and_bounded_variables() {
    let ds = yaml(&root().join("dashboards/grafana/provisioning/datasources/auditwatch.yaml"));
    let ds = &ds["datasources"][0];
    assert_eq!(ds["type"], "prometheus");
    let uid = ds["uid"].as_str().expect("the datasource has a uid");
    let prov = yaml(&root().join("dashboards/grafana/provisioning/dashboards/auditwatch.yaml"));
    assert_eq!(prov["providers"][0]["type"], "file");
    assert!(prov["providers"][0]["options"]["path"].is_string());

    let mut uids = BTreeSet::new();
    for (name, d) in dashboards() {
        assert!(
            uids.insert(d["uid"].as_str().expect("uid").to_string()),
            "{name}: duplicate uid"
        );
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
            "{name}"
        );
        assert!(d["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("auditwatch")));

        // The datasource variable defaults to the provisioned datasource.
        let vars = variables(&d);
        let names: BTreeSet<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
        let dsvar = vars
            .iter()
            .find(|v| v["type"] == "datasource")
            .unwrap_or_else(|| panic!("{name}: no datasource variable"));
        assert_eq!(dsvar["name"], "datasource", "{name}");
        assert_eq!(dsvar["query"], "prometheus", "{name}");
        // Imported, `${DS_PROMETHEUS}` becomes the datasource chosen in the import dialog
        // (`__inputs`); provisioned, that value matches no datasource and Grafana takes the
        // one whose name is the `text`: the provisioned one.
        assert_eq!(dsvar["current"]["value"], "${DS_PROMETHEUS}", "{name}");
        assert_eq!(dsvar["current"]["text"], ds["name"], "{name}");
        assert_eq!(
            ds["name"], uid,
            "the provisioned datasource's name is its uid"
        );
        let input = &d["__inputs"][0];
        assert_eq!(
            (&input["name"], &input["type"], &input["pluginId"]),
            (
                &"DS_PROMETHEUS".into(),
                &"datasource".into(),
                &"prometheus".into()
            ),
            "{name}: the import input"
        );
        let reference = format!("${{{}}}", dsvar["name"].as_str().unwrap());
        let refers = |what: &str, v: &Value| {
            assert_eq!(v["type"], "prometheus", "{name}: {what}: {v}");
            assert_eq!(v["uid"], reference.as_str(), "{name}: {what}: {v}");
        };
        for v in vars.iter().filter(|v| v["type"] == "query") {
            refers(&format!("variable {}", v["name"]), &v["datasource"]);
            let q = v["query"]
                .as_str()
                .expect("query variables are PromQL strings");
            assert!(q.starts_with("label_values("), "{name}: {q}");
            if v["name"] == "tenant" {
                assert_eq!(q, TENANT_QUERY, "{name}: the tenant variable");
            }
        }

        // Every panel queries through that variable; only text panels have no query.
        let mut ids = BTreeSet::new();
        let mut queried = 0;
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or("");
            assert!(
                ids.insert(p["id"].as_u64().expect("panel id")),
                "{name}: id"
            );
            let g = &p["gridPos"];
            let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
            assert!(
                x + w <= 24 && g["h"].as_u64().unwrap() > 0,
                "{name}: {title}"
            );
            if p["type"] == "row" {
                continue;
            }
            assert!(!title.is_empty(), "{name}: a panel without a title");
            refers(&format!("panel `{title}`"), &p["datasource"]);
            let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            if p["type"] == "text" {
                assert!(targets.is_empty(), "{name}: {title}");
                continue;
            }
            assert!(
                !targets.is_empty(),
                "{name}: panel `{title}` queries nothing"
            );
            for t in targets {
                refers(&format!("panel `{title}` target"), &t["datasource"]);
                let expr = t["expr"].as_str().expect("expr");
                // Every variable used is defined here or is one of Grafana's.
                for part in expr.split('$').skip(1) {
                    let var: String = part
                        .trim_start_matches('{')
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    assert!(
                        names.contains(var.as_str()) || BUILTIN_VARS.contains(&var.as_str()),
                        "{name}: panel `{title}` uses undefined ${var}: {expr}"
                    );
                }
                queried += 1;
            }
            // Counts are whole numbers: rounded (increase() extrapolates) and shown so.
            let exprs: Vec<&str> = targets.iter().filter_map(|t| t["expr"].as_str()).collect();
            let defaults = &p["fieldConfig"]["defaults"];
            if defaults["unit"] == "short" && exprs.iter().all(|e| !e.contains("rate(")) {
                assert_eq!(
                    defaults["decimals"], 0,
                    "{name}: panel `{title}` shows a count"
                );
                for e in exprs.iter().filter(|e| e.contains("increase(")) {
                    assert!(e.contains("round("), "{name}: panel `{title}`: {e}");
                }
            }
            // Tenant bars and lines open the tenant view of the tenant clicked.
            if name != "tenant.json" && exprs.iter().any(|e| e.contains("by (tenant")) {
                let url = defaults["links"][0]["url"].as_str().unwrap_or("");
                assert!(
                    url.starts_with("/d/auditwatch-tenant?var-tenant=${__field.labels.tenant}&"),
                    "{name}: panel `{title}` has no drill-down to the tenant view: {url:?}"
                );
            }
        }
        assert!(queried >= 4, "{name}");

        // Views templated by tenant filter every query by it.
        if names.contains("tenant") {
            for (at, expr) in dashboard_exprs(&name, &d) {
                assert!(expr.contains(r#"tenant=~"$tenant""#), "{at}: {expr}");
            }
        }
    }
    // The tenant view is templated by tenant; the ESO view covers the four cadence kinds.
    let all = dashboards();
    let by_name: BTreeMap<_, _> = all.iter().map(|(n, d)| (n.as_str(), d)).collect();
    assert!(variables(by_name["tenant.json"])
        .iter()
        .any(|v| v["name"] == "tenant" && v["query"] == TENANT_QUERY));
    let eso: String = dashboard_exprs("eso-cadence.json", by_name["eso-cadence.json"])
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert!(eso.contains(r#"category="eso_cadence""#));
    for kind in ["too_frequent", "stale", "lease_race", "storm"] {
        assert!(eso.contains(&format!(r#"kind="{kind}""#)), "{kind}");
    }
}

#[test]
fn dashboards_typecheck_against_grafana_schema() {
    if !require_tool("node", "apt-get install nodejs")
        || !require_path(
            "tests/grafana/node_modules/@grafana/schema",
            "npm ci --prefix tests/grafana",
        )
        || !require_path(
            "tests/grafana/node_modules/typescript",
            "npm ci --prefix tests/grafana",
        )
    {
        return;
    }
    let out = Command::new("node")
        .current_dir(root())
        .arg("tests/grafana/check.mjs")
        .output()
        .expect("node runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the schema check failed:\n{text}");
    assert!(text.contains("4 dashboards typecheck"), "{text}");
}

#[test]
fn dashboard_queries_are_valid_promql() {
    if !require_tool("promtool", "apt-get install prometheus") {
        return;
    }
    // Grafana's variables replaced by what Grafana would put there; each query becomes a
    // recording rule, which promtool parses.
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    let mut n = 0;
    for (name, d) in dashboards() {
        for (_, expr) in dashboard_exprs(&name, &d) {
            let mut e = expr.clone();
            for v in BUILTIN_VARS {
                e = e.replace(&format!("${v}"), "5m");
            }
            for v in ["job", "instance", "tenant", "source"] {
                e = e.replace(&format!("${v}"), ".*");
            }
            n += 1;
            rules.push_str(&format!(
                "      - record: dashboard_query_{n}\n        expr: {}\n",
                serde_json::to_string(&e).unwrap()
            ));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboards.rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}\n{rules}");
    assert!(
        text.contains(&format!("SUCCESS: {n} rules found")),
        "{text}"
    );
}

#[test]
fn every_queried_metric_is_exposed_by_a_live_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario("day-on-the-platform");
    // A file source too (checkpoint writes), with a few entries already written.
    let log = dir.path().join("audit.log");
    let head: Vec<u8> = scenario
        .split_inclusive(|&b| b == b'\n')
        .take(20)
        .flatten()
        .copied()
        .collect();
    std::fs::write(&log, head).unwrap();
    let config = format!(
        "server: {{listen: 127.0.0.1:0, tick_secs: 1, checkpoint_interval_secs: 1}}
sources:
  - {{name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}}
  - {{name: vault-file, kind: file, path: '{}', checkpoint_dir: '{}', poll_millis: 50}}
",
        log.display(),
        dir.path().join("checkpoints").display()
    );
    let mut d = Daemon::start(dir.path(), &config, &[]);
    let mut s = TcpStream::connect(d.source("vault-socket")).unwrap();
    s.write_all(&scenario).unwrap();
    // A line cut short by a closed connection: a dropped fragment.
    s.write_all(b"{\"time\":\"2026-03-02T").unwrap();
    drop(s);
    d.signal("HUP");
    d.wait_log("reload accepted", Duration::from_secs(30));
    d.wait_until(
        "alerts, a fragment, a checkpoint",
        Duration::from_secs(30),
        |d| {
            let (_, body) = d.get("/metrics");
            metric_sum(&body, "auditwatch_tenant_alerts_total", &[]) >= 4.0
                && metric_sum(&body, "auditwatch_dropped_lines_total", &[]) >= 1.0
                && metric_sum(&body, "auditwatch_checkpoint_writes_total", &[]) >= 1.0
                && metric_sum(&body, "auditwatch_sink_delivered_total", &[]) >= 4.0
        },
    );
    let (_, body) = d.get("/metrics");
    let exposed: BTreeSet<String> = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    // The Kafka source's labelled series exist only in a daemon with a kafka source (which
    // needs a broker: tests/it/kafka.rs), the lag only with a partition assigned: take
    // those families from the daemon's own registry, initialised as the daemon does for a
    // kafka source (init_source) plus one partition's lag, as on an assignment.
    let mut exposed = exposed;
    let kafka = auditwatch::metrics::Metrics::new();
    kafka.init_source("fleet", auditwatch::metrics::SourceSeries::Kafka);
    kafka.kafka.lag.with_label_values(&["0"]).set(0);
    exposed.extend(
        String::from_utf8(kafka.render())
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("auditwatch_kafka_"))
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_string),
    );

    let mut queries = rule_exprs();
    for (name, dash) in dashboards() {
        queries.extend(dashboard_exprs(&name, &dash));
        for v in variables(&dash) {
            if let Some(q) = v["query"]
                .as_str()
                .filter(|q| q.starts_with("label_values("))
            {
                // label_values(METRIC{...}, label): the metric is the selector.
                let sel = &q["label_values(".len()..q.rfind(',').expect("a label")];
                queries.push((format!("{name}: variable {}", v["name"]), sel.to_string()));
            }
        }
    }
    let mut used = BTreeSet::new();
    for (at, expr) in &queries {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{at}: no metric in {expr}");
        for m in names {
            // `up` is Prometheus' own, per scrape target.
            assert!(
                m == "up" || exposed.contains(&m),
                "{at} queries `{m}`, which the daemon does not expose:\n{expr}\nexposed: {exposed:?}"
            );
            used.insert(m);
        }
    }
    // The views cover the pipeline: alerts, tenants, ingest, lag, parse errors, spool, sinks,
    // and the Kafka consumer group.
    for m in [
        "auditwatch_alerts_total",
        "auditwatch_tenant_alerts_total",
        "auditwatch_events_total",
        "auditwatch_last_event_timestamp_seconds",
        "auditwatch_parse_errors_total",
        "auditwatch_spool_bytes",
        "auditwatch_backlog_bytes",
        "auditwatch_sink_failures_total",
        "auditwatch_sink_dropped_total",
        "auditwatch_sink_backlog",
        "auditwatch_ready",
        "auditwatch_alert_latency_seconds_bucket",
        "auditwatch_sink_delivery_seconds_bucket",
        "auditwatch_kafka_consumer_lag",
        "auditwatch_kafka_assigned_partitions",
        "auditwatch_kafka_rebalances_total",
        "auditwatch_kafka_snapshots_total",
        "auditwatch_kafka_snapshot_bytes",
        "auditwatch_kafka_snapshot_timestamp_seconds",
        "auditwatch_kafka_commit_seconds",
        "auditwatch_kafka_commits_total",
        "up",
    ] {
        assert!(used.contains(m), "no query uses {m}");
    }
}
