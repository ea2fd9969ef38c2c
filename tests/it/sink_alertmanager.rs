//! The Alertmanager sink against Debian's real `prometheus-alertmanager` on loopback: every
//! alert the daemon writes reaches Alertmanager with its labels, annotations and times; an
//! HA pair of daemons yields one Alertmanager alert per alert; alerts raised while
//! Alertmanager is down arrive once it is up, and the failures show on /metrics. Each test
//! starts its own Alertmanager (no gossip, temp storage) and daemon on 127.0.0.1 and kills
//! them on drop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::*;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

const RESOLVE_AFTER_SECS: i64 = 3600;

fn daemon_config(am_port: u16) -> String {
    format!(
        "server: {{listen: 127.0.0.1:0, tick_secs: 0}}
sources:
  - {{name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}}
alertmanager:
  url: 'http://127.0.0.1:{am_port}'
  resolve_after_secs: {RESOLVE_AFTER_SECS}
  timeout_secs: 2
  labels: {{cluster: test}}
"
    )
}

fn sink_metric(d: &Daemon, name: &str) -> f64 {
    d.metric(name, &["sink=\"alertmanager\""])
}

fn ts(v: &Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {v}"))
}

/// The Alertmanager alert of a record: same rule, request id and start (Alertmanager keeps
/// milliseconds).
fn find<'a>(am: &'a [Value], rec: &Value) -> &'a Value {
    let start = ts(&rec["time"]);
    let hits: Vec<&Value> = am
        .iter()
        .filter(|a| {
            a["labels"]["rule"] == rec["rule"]
                && a["annotations"]["request_id"].as_str() == rec["request_id"].as_str()
                && ts(&a["startsAt"]).duration_since(start).abs() < SignedDuration::from_millis(1)
        })
        .collect();
    assert_eq!(hits.len(), 1, "one Alertmanager alert for {rec}: {hits:#?}");
    hits[0]
}

/// Every record is in Alertmanager, once, with the labels, annotations and times it must
/// carry; Alertmanager holds nothing else.
fn assert_pushed(am: &[Value], records: &[Value], pushed_from: Timestamp, pushed_to: Timestamp) {
    assert_eq!(am.len(), records.len(), "{am:#?}");
    let resolve = SignedDuration::from_secs(RESOLVE_AFTER_SECS);
    let mut keys = BTreeSet::new();
    for rec in records {
        let a = find(am, rec);
        let l = &a["labels"];
        let category = rec["category"].as_str().unwrap();
        let mut want: BTreeMap<&str, Value> = [
            ("alertname", Value::from(alert_name(category))),
            ("category", rec["category"].clone()),
            ("severity", rec["severity"].clone()),
            ("rule", rec["rule"].clone()),
            ("cluster", Value::from("test")),
            ("team", Value::from("security")),
            ("alert_key", l["alert_key"].clone()),
        ]
        .into();
        if !rec["tenant"].is_null() {
            want.insert("tenant", rec["tenant"].clone());
        }
        if let Some(k) = rec["evidence"]["kind"].as_str() {
            want.insert("kind", Value::from(k));
        }
        let got: BTreeMap<&str, Value> = l
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        assert_eq!(got, want, "labels of {rec}");
        let key = l["alert_key"].as_str().unwrap();
        assert!(
            key.len() == 16 && key.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key}"
        );
        keys.insert(key.to_string());
        let ann = &a["annotations"];
        assert_eq!(ann["summary"], rec["summary"]);
        assert!(
            ann["description"]
                .as_str()
                .is_some_and(|d| d.contains("What to do: ")),
            "{ann}"
        );
        for (field, value) in [
            ("path", &rec["path"]),
            ("target_tenant", &rec["target_tenant"]),
            ("actor", &rec["actor"]["display_name"]),
        ] {
            if value.is_null() {
                assert!(ann.get(field).is_none(), "{field} in {ann}");
            } else {
                assert_eq!(&ann[field], value, "{field}");
            }
        }
        // HMAC'd accessors and tokens are not sent.
        assert!(!a.to_string().contains("hmac-sha256"), "{a}");
        // Point events pushed months after they happened still arrive firing: endsAt counts
        // from when the sink took the alert.
        let start = ts(&rec["time"]);
        let ends = ts(&a["endsAt"]);
        let lo = start.max(pushed_from) + resolve - SignedDuration::from_secs(1);
        let hi = start.max(pushed_to) + resolve + SignedDuration::from_secs(1);
        assert!(
            lo <= ends && ends <= hi,
            "endsAt {ends} not in [{lo}, {hi}]"
        );
        assert_eq!(a["status"]["state"], "active", "{a}");
    }
    assert_eq!(keys.len(), records.len(), "alert keys are distinct");
}

#[test]
fn every_alert_reaches_alertmanager_with_labels_annotations_and_times() {
    if !require_tool(AM, "apt-get install prometheus-alertmanager") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let am = Alertmanager::start(&tmp.path().join("am"), port);
    let ddir = tmp.path().join("d");
    std::fs::create_dir_all(&ddir).unwrap();
    let from = Timestamp::now();
    let d = Daemon::start(&ddir, &daemon_config(port), &[]);
    d.send_and_wait_read("vault-socket", &scenario("day-on-the-platform"));
    // Live: what the daemon wrote so far is in Alertmanager while it runs.
    d.wait_until(
        "alerts written and delivered",
        Duration::from_secs(30),
        |d| {
            let n = d.alerts().len() as f64;
            n > 0.0 && sink_metric(d, "auditwatch_sink_delivered_total") == n
        },
    );
    am.wait_for(d.alerts().len(), Duration::from_secs(10), || d.log_text());
    assert_eq!(sink_metric(&d, "auditwatch_sink_dropped_total"), 0.0);
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    let to = Timestamp::now();
    // After the drain: everything, including what only the drain raised.
    let records = read_alerts(&ddir.join("alerts.jsonl"));
    assert!(
        records.len() >= 4,
        "the scenario raises alerts: {records:?}"
    );
    assert!(
        records.iter().any(|r| r["tenant"].is_null()),
        "a platform alert"
    );
    let got = am.wait_for(records.len(), Duration::from_secs(5), || exit.log.clone());
    assert_pushed(&got, &records, from, to);
}

#[test]
fn an_ha_pair_yields_one_alertmanager_alert_per_alert() {
    if !require_tool(AM, "apt-get install prometheus-alertmanager") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let am = Alertmanager::start(&tmp.path().join("am"), port);
    let from = Timestamp::now();
    let daemons: Vec<(PathBuf, Daemon)> = ["a", "b"]
        .into_iter()
        .map(|n| {
            let dir = tmp.path().join(n);
            std::fs::create_dir_all(&dir).unwrap();
            let d = Daemon::start(&dir, &daemon_config(port), &[]);
            (dir, d)
        })
        .collect();
    let input = scenario("day-on-the-platform");
    for (_, d) in &daemons {
        d.send_and_wait_read("vault-socket", &input);
    }
    // Both pushed every alert they raised.
    for (_, d) in &daemons {
        d.wait_until("alerts delivered", Duration::from_secs(30), |d| {
            let n = d.alerts().len() as f64;
            n > 0.0 && sink_metric(d, "auditwatch_sink_delivered_total") == n
        });
    }
    let mut records = Vec::new();
    for (dir, d) in daemons {
        let exit = d.stop();
        assert_eq!(exit.code, Some(0), "{}", exit.log);
        records.push(read_alerts(&dir.join("alerts.jsonl")));
    }
    let to = Timestamp::now();
    assert_eq!(
        records[0], records[1],
        "both detectors raise the same alerts"
    );
    assert!(records[0].len() >= 4);
    // Twice the pushes, one alert each in Alertmanager.
    let got = am.wait_for(records[0].len(), Duration::from_secs(5), || am.log_text());
    assert_pushed(&got, &records[0], from, to);
}

#[test]
fn alerts_raised_while_alertmanager_is_down_arrive_once_it_is_up() {
    if !require_tool(AM, "apt-get install prometheus-alertmanager") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let ddir = tmp.path().join("d");
    std::fs::create_dir_all(&ddir).unwrap();
    let from = Timestamp::now();
    let d = Daemon::start(&ddir, &daemon_config(port), &[]);
    d.send_and_wait_read("vault-socket", &scenario("day-on-the-platform"));
    // Nothing listens: the pushes fail and are retried, nothing is dropped.
    d.wait_until("failed pushes", Duration::from_secs(30), |d| {
        sink_metric(d, "auditwatch_sink_failures_total") > 0.0
    });
    // Every alert raised so far is written (and so queued for Alertmanager too).
    d.wait_until("alerts written", Duration::from_secs(10), |d| {
        let n = d.alerts().len() as f64;
        n > 0.0 && d.metric("auditwatch_alerts_total", &[]) == n
    });
    let raised = d.alerts().len();
    assert_eq!(sink_metric(&d, "auditwatch_sink_delivered_total"), 0.0);
    assert!(sink_metric(&d, "auditwatch_sink_backlog") > 0.0);
    let am = Alertmanager::start(&tmp.path().join("am"), port);
    // While the daemon still runs: delivered by a retry, not by the shutdown flush.
    d.wait_until("retried alerts delivered", Duration::from_secs(30), |d| {
        sink_metric(d, "auditwatch_sink_delivered_total") == raised as f64
    });
    let got = am.wait_for(raised, Duration::from_secs(5), || d.log_text());
    let (_, metrics) = d.get("/metrics");
    let failures = metric_sum(
        &metrics,
        "auditwatch_sink_failures_total",
        &["sink=\"alertmanager\""],
    );
    assert!(failures > 0.0, "{metrics}");
    assert_eq!(
        metric_sum(
            &metrics,
            "auditwatch_sink_dropped_total",
            &["sink=\"alertmanager\""]
        ),
        0.0
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "auditwatch_sink_backlog",
            &["sink=\"alertmanager\""]
        ),
        0.0
    );
    assert!(
        d.log_text()
            .contains("cannot push alerts to alertmanager; retrying"),
        "the failure is logged"
    );
    let to = Timestamp::now();
    assert_pushed(&got, &d.alerts(), from, to);
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
}

/// Alertmanager over https with a server certificate of `ca`, its web config
/// (exporter-toolkit's) ending with `extra`, storage under `tmp/am`.
fn start_tls_am(tmp: &Path, ca: &TestCa, extra: &str) -> Alertmanager {
    let (cert, key) = ca.server("am-server");
    let amdir = tmp.join("am");
    std::fs::create_dir_all(&amdir).unwrap();
    let web = amdir.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n{extra}",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    Alertmanager::start_tls(&amdir, free_port(), &web)
}

#[test]
fn https_verifies_alertmanager_against_ca_file() {
    if !require_tool(AM, "apt-get install prometheus-alertmanager")
        || !require_tool("openssl", "apt-get install openssl")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&tmp.path().join("tls"), "am");
    let am = start_tls_am(tmp.path(), &ca, "");
    let url = format!("https://{}", am.addr);
    let trusting = config_for(&url, &format!("  ca_file: '{}'\n", ca.cert.display()));
    let web_pki_only = config_for(&url, "");
    let dirs = [tmp.path().join("a"), tmp.path().join("b")];
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
    }
    let a = Daemon::start(&dirs[0], &trusting, &[]);
    let b = Daemon::start(&dirs[1], &web_pki_only, &[]);
    let input = scenario("day-on-the-platform");
    a.send_and_wait_read("vault-socket", &input);
    b.send_and_wait_read("vault-socket", &input);
    a.wait_until(
        "alerts delivered over https",
        Duration::from_secs(30),
        |d| {
            let n = d.alerts().len() as f64;
            n > 0.0 && sink_metric(d, "auditwatch_sink_delivered_total") == n
        },
    );
    assert_eq!(sink_metric(&a, "auditwatch_sink_failures_total"), 0.0);
    // Without the CA, the certificate is refused: nothing is sent, the failure is logged.
    b.wait_until("the certificate refused", Duration::from_secs(30), |d| {
        sink_metric(d, "auditwatch_sink_failures_total") > 0.0
    });
    assert_eq!(sink_metric(&b, "auditwatch_sink_delivered_total"), 0.0);
    assert!(
        b.log_text().contains("invalid peer certificate"),
        "{}",
        b.log_text()
    );
    let records = a.alerts();
    let got = am.query_tls(&ca.cert);
    assert_eq!(got.len(), records.len(), "{got:#?}");
    for r in &records {
        assert!(
            got.iter().any(|g| g["labels"]["rule"] == r["rule"]
                && g["annotations"]["summary"] == r["summary"]
                && g["labels"]["cluster"] == "test"),
            "{r} not in {got:#?}"
        );
    }
    let exit = a.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    // At shutdown, what the untrusting daemon still holds is dropped, counted and logged.
    let exit = b.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    assert!(
        exit.log.contains("alert dropped for alertmanager") && exit.log.contains("shutdown"),
        "{}",
        exit.log
    );
}

/// `daemon_config` pointed at `url` with `extra` lines added to its `alertmanager:` block.
fn config_for(url: &str, extra: &str) -> String {
    let base = daemon_config(1).replace("'http://127.0.0.1:1'", &format!("'{url}'"));
    format!("{base}{extra}")
}

/// Wait until every alert the daemon wrote is delivered (and at least one was).
#[track_caller]
fn wait_delivered(d: &Daemon, n_at_least: usize) {
    d.wait_until("alerts delivered", Duration::from_secs(30), |d| {
        let n = d.alerts().len();
        n >= n_at_least && sink_metric(d, "auditwatch_sink_delivered_total") == n as f64
    });
}

/// Alertmanager behind its own web config (exporter-toolkit, as Prometheus meets it):
/// https with a client certificate required and basic auth. The daemon that presents its
/// certificate and the password delivers; one without the certificate cannot connect, and
/// one with a wrong password is refused (401, dropped as rejected); no log shows a secret.
#[test]
fn basic_auth_and_a_client_certificate_reach_an_alertmanager_that_requires_them() {
    if !require_tool(AM, "apt-get install prometheus-alertmanager")
        || !require_tool("openssl", "apt-get install openssl")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&tmp.path().join("tls"), "am");
    let (cli_cert, cli_key) = ca.client("auditwatch");
    let password = "am-pass-7d3f1c";
    let am = start_tls_am(
        tmp.path(),
        &ca,
        &format!(
            "  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: {}
basic_auth_users:
  auditwatch: '{}'
",
            ca.cert.display(),
            bcrypt::hash(password, 6).unwrap()
        ),
    );
    let pw_file = tmp.path().join("am-password");
    std::fs::write(&pw_file, format!("{password}\n")).unwrap();
    let url = format!("https://{}", am.addr);
    let tls = format!(
        "  tls_config:\n    ca_file: '{}'\n    cert_file: '{}'\n    key_file: '{}'\n",
        ca.cert.display(),
        cli_cert.display(),
        cli_key.display()
    );
    let good = config_for(
        &url,
        &format!(
            "{tls}  basic_auth: {{username: auditwatch, password_file: '{}'}}\n",
            pw_file.display()
        ),
    );
    let no_cert = config_for(
        &url,
        &format!(
            "  tls_config: {{ca_file: '{}'}}\n  basic_auth: {{username: auditwatch, password_file: '{}'}}\n",
            ca.cert.display(),
            pw_file.display()
        ),
    );
    let wrong_pw = config_for(
        &url,
        &format!("{tls}  basic_auth: {{username: auditwatch, password: not-the-pass-9q}}\n"),
    );
    let dirs: Vec<PathBuf> = ["good", "no-cert", "wrong-pw"]
        .iter()
        .map(|n| tmp.path().join(n))
        .collect();
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
    }
    let a = Daemon::start(&dirs[0], &good, &[]);
    let b = Daemon::start(&dirs[1], &no_cert, &[]);
    let c = Daemon::start(&dirs[2], &wrong_pw, &[]);
    let input = scenario("day-on-the-platform");
    for d in [&a, &b, &c] {
        d.send_and_wait_read("vault-socket", &input);
    }
    wait_delivered(&a, 1);
    assert_eq!(sink_metric(&a, "auditwatch_sink_failures_total"), 0.0);
    b.wait_until("the connection refused", Duration::from_secs(30), |d| {
        sink_metric(d, "auditwatch_sink_failures_total") > 0.0
    });
    assert_eq!(sink_metric(&b, "auditwatch_sink_delivered_total"), 0.0);
    c.wait_until("the password refused", Duration::from_secs(30), |d| {
        d.metric(
            "auditwatch_sink_dropped_total",
            &["sink=\"alertmanager\"", "reason=\"rejected\""],
        ) == d.alerts().len() as f64
            && !d.alerts().is_empty()
    });
    assert!(c.log_text().contains("HTTP 401"), "{}", c.log_text());
    // What Alertmanager holds, read with the same certificate and password.
    let client = Https {
        ca: ca.cert.clone(),
        client_cert: Some((cli_cert.clone(), cli_key.clone())),
        only: None,
    };
    let r = client
        .get(&am.addr, "/api/v2/alerts", Some(("auditwatch", password)))
        .unwrap();
    assert_eq!(r.code, 200, "{r:?}");
    let body = r.body.trim();
    // Go may answer chunked: the JSON array is between the first '[' and the last ']'.
    let json = &body[body.find('[').unwrap()..=body.rfind(']').unwrap()];
    let got: Vec<Value> = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(got.len(), a.alerts().len(), "{got:#?}");
    for d in [a, b, c] {
        let exit = d.stop();
        assert_eq!(exit.code, Some(0), "{}", exit.log);
        for secret in [password, "not-the-pass-9q"] {
            assert!(!exit.log.contains(secret), "{}", exit.log);
        }
    }
}

/// A bearer token from a file and custom headers (`X-Scope-OrgID` for Mimir's
/// Alertmanager) are sent with every POST, and a token rotated on disk is used from the
/// next POST on, without a restart or reload; neither token is ever logged.
#[test]
fn a_bearer_token_file_and_custom_headers_are_sent_and_a_rotated_token_is_used() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = Recorder::start();
    let token = tmp.path().join("token");
    std::fs::write(&token, "tok-first-51c2\n").unwrap();
    let cfg = config_for(
        &format!("http://{}", rec.addr),
        &format!(
            "  authorization: {{credentials_file: '{}'}}
  http_headers:
    X-Scope-OrgID: {{values: [tenant-1]}}
    X-Extra: {{values: [a], secrets: [hdr-secret-0e9a]}}
",
            token.display()
        ),
    );
    let dir = tmp.path().join("d");
    std::fs::create_dir_all(&dir).unwrap();
    let d = Daemon::start(&dir, &cfg, &[]);
    d.send_and_wait_read("vault-socket", &scenario("cross-tenant-read"));
    wait_delivered(&d, 1);
    let first = rec.requests();
    assert!(!first.is_empty());
    for r in &first {
        assert!(r.line.starts_with("POST /api/v2/alerts "), "{r:?}");
        assert_eq!(
            r.header("authorization"),
            ["Bearer tok-first-51c2"],
            "{r:?}"
        );
        assert_eq!(r.header("x-scope-orgid"), ["tenant-1"], "{r:?}");
        assert_eq!(r.header("x-extra"), ["a", "hdr-secret-0e9a"], "{r:?}");
        assert_eq!(r.header("content-type"), ["application/json"], "{r:?}");
        let alerts: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
        assert!(!alerts.is_empty());
    }
    // Rotated as a secret mount does it: a new file renamed over the old.
    let tmp_token = tmp.path().join("token.new");
    std::fs::write(&tmp_token, "tok-second-8b0d\n").unwrap();
    std::fs::rename(&tmp_token, &token).unwrap();
    let before = d.alerts().len();
    d.send_and_wait_read("vault-socket", &scenario("audit-device-disabled"));
    wait_delivered(&d, before + 1);
    let later = rec.requests();
    let new = &later[first.len()..];
    assert!(!new.is_empty());
    for r in new {
        assert_eq!(
            r.header("authorization"),
            ["Bearer tok-second-8b0d"],
            "{r:?}"
        );
    }
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    for secret in ["tok-first", "tok-second", "hdr-secret"] {
        assert!(!exit.log.contains(secret), "{}", exit.log);
    }
}

/// `proxy_url` sends the POSTs through an HTTP proxy, with the proxy's credentials from
/// the URL; a host listed in `no_proxy` is reached directly; the environment's
/// `HTTP_PROXY` is ignored unless `proxy_from_environment` is set.
#[test]
fn proxy_url_carries_the_posts_and_no_proxy_hosts_are_reached_directly() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = Recorder::start();
    let proxy = ForwardProxy::start();
    let target = format!("http://{}", rec.addr);
    let proxy_url = format!("http://fwd:proxy-pass-4e1a@{}", proxy.addr);
    let start = |name: &str, extra: &str, env: &[(&str, &str)]| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        Daemon::start_env(&dir, &config_for(&target, extra), &[], env)
    };
    let input = scenario("cross-tenant-read");
    // Through the proxy.
    let d = start("via", &format!("  proxy_url: '{proxy_url}'\n"), &[]);
    d.send_and_wait_read("vault-socket", &input);
    wait_delivered(&d, 1);
    let seen = proxy.seen();
    assert!(!seen.is_empty(), "the proxy was used");
    let (line, headers) = &seen[0];
    assert_eq!(
        line,
        &format!("POST http://{}/api/v2/alerts HTTP/1.1", rec.addr)
    );
    let auth = format!("Basic {}", base64("fwd:proxy-pass-4e1a"));
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "proxy-authorization" && v == &auth),
        "{headers:?}"
    );
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    assert!(!exit.log.contains("proxy-pass"), "{}", exit.log);
    let via_proxy = rec.requests().len();
    // 127.0.0.1 in no_proxy: straight to the target, the proxy sees nothing new.
    let n_seen = proxy.seen().len();
    let d = start(
        "direct",
        &format!("  proxy_url: '{proxy_url}'\n  no_proxy: 'localhost,127.0.0.1'\n"),
        &[],
    );
    d.send_and_wait_read("vault-socket", &input);
    wait_delivered(&d, 1);
    assert!(rec.requests().len() > via_proxy);
    assert_eq!(proxy.seen().len(), n_seen, "no_proxy bypasses the proxy");
    d.stop();
    // The environment's proxy only when asked for.
    let env_proxy = format!("http://{}", proxy.addr);
    let env = [
        ("HTTP_PROXY", env_proxy.as_str()),
        ("http_proxy", env_proxy.as_str()),
    ];
    let d = start("env-ignored", "", &env);
    d.send_and_wait_read("vault-socket", &input);
    wait_delivered(&d, 1);
    assert_eq!(proxy.seen().len(), n_seen, "HTTP_PROXY ignored by default");
    d.stop();
    let d = start("env-used", "  proxy_from_environment: true\n", &env);
    d.send_and_wait_read("vault-socket", &input);
    wait_delivered(&d, 1);
    assert!(proxy.seen().len() > n_seen, "HTTP_PROXY used when asked");
    d.stop();
}

/// An https Alertmanager behind the proxy is reached through a `CONNECT` tunnel, and its
/// certificate is still verified end to end (the proxy sees only the tunnel).
#[test]
fn https_through_proxy_url_is_tunnelled_with_connect() {
    if !require_tool(AM, "apt-get install prometheus-alertmanager")
        || !require_tool("openssl", "apt-get install openssl")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&tmp.path().join("tls"), "am");
    let am = start_tls_am(tmp.path(), &ca, "");
    let proxy = ForwardProxy::start();
    let cfg = config_for(
        &format!("https://{}", am.addr),
        &format!(
            "  tls_config: {{ca_file: '{}'}}\n  proxy_url: 'http://{}'\n",
            ca.cert.display(),
            proxy.addr
        ),
    );
    let dir = tmp.path().join("d");
    std::fs::create_dir_all(&dir).unwrap();
    let d = Daemon::start(&dir, &cfg, &[]);
    d.send_and_wait_read("vault-socket", &scenario("cross-tenant-read"));
    wait_delivered(&d, 1);
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .any(|(line, _)| line == &format!("CONNECT {} HTTP/1.1", am.addr)),
        "{seen:?}"
    );
    assert_eq!(am.query_tls(&ca.cert).len(), d.alerts().len());
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
}
