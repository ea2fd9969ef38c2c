//! The daemon's HTTP endpoint secured by a web config file (exporter-toolkit's format): a
//! real Debian `prometheus` scrapes `/metrics` over TLS with basic auth (a bcrypt hash made
//! here) and reports the target up, and down with a wrong password; plain HTTP on the TLS
//! port is refused; client certificates and TLS versions are enforced; a changed password
//! and a renewed certificate are used without a restart; a peer that sends nothing is cut
//! at the deadline and the connection cap holds; `config check` reports a broken web
//! config and warns about exactly what an exposed endpoint lacks. Certificates are made at
//! test time by `openssl`. Without `prometheus` or `openssl` the tests say SKIPPED, except
//! under `CI=true`, where they fail.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

const PASSWORD: &str = "correct-horse-battery-staple";

fn have_openssl() -> bool {
    require_tool("openssl", "apt-get install openssl")
}

/// A bcrypt hash of `password`, made here as `htpasswd -B` would (a low cost keeps the
/// debug build quick; the cost is the hash's own business).
fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 6).unwrap()
}

/// Write `text` to `path` by a rename, as editors and cert-manager replace files.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A daemon on loopback serving its endpoint with the web config `web` (written to
/// DIR/web.yml): (daemon, endpoint address, web config path).
fn daemon_with(dir: &Path, web: &str) -> (Daemon, String, PathBuf) {
    let web_path = dir.join("web.yml");
    std::fs::write(&web_path, web).unwrap();
    let d = Daemon::start(
        dir,
        &format!(
            "server: {{listen: 127.0.0.1:0, web_config_file: '{}'}}
sources:
  - {{name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}}
",
            web_path.display()
        ),
        &[],
    );
    let addr = d.http.clone().expect("the daemon's http address");
    (d, addr, web_path)
}

/// Poll `f` until it holds, for at most 60 s.
#[track_caller]
fn wait(what: &str, f: impl FnMut() -> bool, context: impl Fn() -> String) {
    wait_for(what, Duration::from_secs(60), f, context)
}

fn targets(prom: &Prometheus) -> Vec<Value> {
    prom.api("/api/v1/targets")["data"]["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn target<'a>(all: &'a [Value], job: &str) -> Option<&'a Value> {
    all.iter().find(|t| t["labels"]["job"] == job)
}

#[test]
fn prometheus_scrapes_through_tls_and_basic_auth_and_a_wrong_password_is_down() {
    if !require_tool("prometheus", "apt-get install prometheus") || !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = TestCa::new(&dir.join("pki"), "test");
    ca.server("server");
    // Relative paths are relative to the web config's directory, as in exporter-toolkit.
    let (d, addr, _) = daemon_with(
        dir,
        &format!(
            "tls_server_config:
  cert_file: pki/server.pem
  key_file: pki/server.key
basic_auth_users:
  prometheus: '{}'
",
            bcrypt_hash(PASSWORD)
        ),
    );
    let config = dir.join("prometheus.yml");
    let job = |name: &str, password: &str| {
        format!(
            "  - job_name: {name}
    scheme: https
    tls_config: {{ca_file: '{}'}}
    basic_auth: {{username: prometheus, password: '{password}'}}
    static_configs: [{{targets: ['{addr}']}}]
",
            ca.cert.display()
        )
    };
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n{}{}",
            job("auditwatch", PASSWORD),
            job("auditwatch-wrong-password", "hunter2")
        ),
    )
    .unwrap();
    let prom = Prometheus::start(dir, &config);
    let context = || {
        format!(
            "prometheus log:\n{}\ndaemon log:\n{}",
            prom.log(),
            d.log_text()
        )
    };
    wait(
        "prometheus to scrape both jobs",
        || {
            let t = targets(&prom);
            target(&t, "auditwatch").is_some_and(|t| t["health"] == "up")
                && target(&t, "auditwatch-wrong-password").is_some_and(|t| t["health"] == "down")
        },
        context,
    );
    let t = targets(&prom);
    let wrong = target(&t, "auditwatch-wrong-password").unwrap();
    assert!(
        wrong["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("401")),
        "{wrong}"
    );
    assert_eq!(
        target(&t, "auditwatch").unwrap()["scrapeUrl"],
        format!("https://{addr}/metrics")
    );
    // The scraped series are in Prometheus: the daemon's own metrics, through TLS and auth.
    wait(
        "an auditwatch metric in prometheus",
        || {
            prom.query(r#"auditwatch_ready{job="auditwatch"}"#)
                .iter()
                .any(|s| s["value"][1] == "1")
        },
        context,
    );
    assert!(prom
        .query(r#"auditwatch_ready{job="auditwatch-wrong-password"}"#)
        .is_empty());

    // The same, directly: no credentials and a wrong password are 401 with a Basic
    // challenge, on every path; the right one gets the metrics.
    let https = Https::trusting(&ca.cert);
    for (basic, path) in [
        (None, "/metrics"),
        (Some(("prometheus", "hunter2")), "/metrics"),
        (Some(("nobody", PASSWORD)), "/-/ready"),
    ] {
        let r = https.get(&addr, path, basic).unwrap();
        assert_eq!(r.code, 401, "{basic:?} {r:?}");
        assert!(
            r.head
                .contains("\r\nWWW-Authenticate: Basic realm=\"auditwatch\""),
            "{r:?}"
        );
        assert!(!r.body.contains("auditwatch_"), "{r:?}");
    }
    let r = https
        .get(&addr, "/metrics", Some(("prometheus", PASSWORD)))
        .unwrap();
    assert_eq!(r.code, 200, "{r:?}");
    let refused = |reason: &str| {
        metric_sum(
            &r.body,
            "auditwatch_http_refused_total",
            &[&format!("reason=\"{reason}\"")],
        )
    };
    assert!(refused("bad_credentials") >= 3.0, "{}", r.body);
    assert_eq!(refused("no_credentials"), 1.0, "{}", r.body);
    // No password or hash is ever logged.
    let log = d.log_text();
    assert!(!log.contains("hunter2") && !log.contains(PASSWORD) && !log.contains("$2b$"));
    assert!(log.contains("reason=\"bad_credentials\""), "{log}");

    // Plain HTTP to the TLS port is told to use https, and gets no metrics.
    let (code, body) = http_get(&addr, "/metrics");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("use https://"), "{body}");
    drop(prom);
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
}

#[test]
fn client_certificates_and_the_minimum_tls_version_are_enforced() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = TestCa::new(&dir.join("pki"), "test");
    let (cert, key) = ca.server("server");
    let good = ca.client("prometheus");
    let other = TestCa::new(&dir.join("pki"), "other");
    let stranger = other.client("stranger");
    let (d, addr, _) = daemon_with(
        dir,
        &format!(
            "tls_server_config:
  cert_file: '{}'
  key_file: '{}'
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: pki/test-ca.pem
  min_version: TLS13
",
            cert.display(),
            key.display()
        ),
    );
    let with = |client: Option<&(PathBuf, PathBuf)>| Https {
        client_cert: client.cloned(),
        ..Https::trusting(&ca.cert)
    };
    let r = with(Some(&good)).get(&addr, "/-/ready", None).unwrap();
    assert_eq!((r.code, r.body.as_str()), (200, "ready\n"), "{r:?}");
    for (what, https) in [
        ("no client certificate", with(None)),
        ("a certificate of another CA", with(Some(&stranger))),
        (
            "TLS 1.2",
            Https {
                only: Some(&rustls::version::TLS12),
                ..with(Some(&good))
            },
        ),
    ] {
        let r = https.get(&addr, "/-/ready", None);
        assert!(r.is_err(), "{what}: {r:?}");
    }
    let r = with(Some(&good)).get(&addr, "/metrics", None).unwrap();
    let handshakes = metric_sum(
        &r.body,
        "auditwatch_http_refused_total",
        &["reason=\"tls_handshake\""],
    );
    assert_eq!(handshakes, 3.0, "{}", r.body);
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
}

#[test]
fn a_changed_password_and_a_renewed_certificate_are_used_without_a_restart() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = TestCa::new(&dir.join("pki"), "old");
    ca.server("server");
    let web = |hash: &str| {
        format!(
            "tls_server_config: {{cert_file: pki/server.pem, key_file: pki/server.key}}\nbasic_auth_users: {{prometheus: '{hash}'}}\n"
        )
    };
    let (d, addr, web_path) = daemon_with(dir, &web(&bcrypt_hash("old-password")));
    let old = Https::trusting(&ca.cert);
    let code = |https: &Https, password: &str| {
        https
            .get(&addr, "/-/healthy", Some(("prometheus", password)))
            .map(|r| r.code)
    };
    assert_eq!(code(&old, "old-password"), Ok(200));

    // A new password: taken from the next connection on.
    replace(&web_path, &web(&bcrypt_hash("new-password")));
    wait(
        "the new password to be taken",
        || code(&old, "new-password") == Ok(200),
        || d.log_text(),
    );
    assert_eq!(code(&old, "old-password"), Ok(401));

    // A renewed certificate from another CA, written in place (certificate, then key):
    // clients that trust only the new CA get through once both are there.
    let new_ca = TestCa::new(&dir.join("new"), "new");
    let (cert, key) = new_ca.server("server");
    std::fs::write(dir.join("pki/server.pem"), std::fs::read(cert).unwrap()).unwrap();
    std::fs::write(dir.join("pki/server.key"), std::fs::read(key).unwrap()).unwrap();
    let new = Https::trusting(&new_ca.cert);
    wait(
        "the renewed certificate to be served",
        || code(&new, "new-password") == Ok(200),
        || d.log_text(),
    );
    assert!(code(&old, "new-password").is_err());

    // A web config that would turn basic auth off is refused until a restart; a broken
    // one too; the running one stays. (The files are looked at when a connection comes.)
    let refused_after = |text: &str, log: &str| {
        replace(&web_path, text);
        wait(
            log,
            || {
                let _ = new.get(&addr, "/-/healthy", None);
                d.log_text().contains(log)
            },
            || d.log_text(),
        );
    };
    refused_after(
        "tls_server_config: {cert_file: pki/server.pem, key_file: pki/server.key}\n",
        "would change what the endpoint secures",
    );
    let r = new.get(&addr, "/metrics", None).unwrap();
    assert_eq!(r.code, 401, "{r:?}");
    refused_after(
        "basic_auth_users: [oops]\n",
        "basic_auth_users must be a mapping",
    );
    let r = new
        .get(&addr, "/metrics", Some(("prometheus", "new-password")))
        .unwrap();
    assert_eq!(r.code, 200, "{r:?}");
    let reloads = |outcome: &str| {
        metric_sum(
            &r.body,
            "auditwatch_http_web_config_reloads_total",
            &[&format!("outcome=\"{outcome}\"")],
        )
    };
    assert!(reloads("ok") >= 2.0, "{}", r.body);
    assert!(reloads("rejected") >= 2.0, "{}", r.body);
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
}

#[test]
fn a_silent_peer_is_cut_at_the_deadline_and_the_connection_cap_holds() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = TestCa::new(&dir.join("pki"), "test");
    ca.server("server");
    let (d, addr, _) = daemon_with(
        dir,
        &format!(
            "tls_server_config: {{cert_file: pki/server.pem, key_file: pki/server.key}}\nbasic_auth_users: {{prometheus: '{}'}}\n",
            bcrypt_hash(PASSWORD)
        ),
    );
    let https = Https::trusting(&ca.cert);
    // 63 peers connect and send nothing: the accept loop is not held, and the 64th
    // connection (the cap) is served.
    let connect = || {
        let s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    };
    let mut silent: Vec<TcpStream> = (0..63).map(|_| connect()).collect();
    let r = https
        .get(&addr, "/-/ready", Some(("prometheus", PASSWORD)))
        .unwrap();
    assert_eq!(r.code, 200, "{r:?}");
    // With 64 held, one more is closed at once (counted below: `connection_cap`, and not
    // among the peers cut at the deadline).
    silent.push(connect());
    let _over = connect();
    let mut buf = [0u8; 16];
    // Each silent peer is closed by the server at the deadline (a read that ends, not the
    // 30 s read timeout of the test).
    for s in &mut silent {
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("a silent peer was not closed by the server: {other:?}"),
        }
    }
    let r = https
        .get(&addr, "/metrics", Some(("prometheus", PASSWORD)))
        .unwrap();
    assert_eq!(r.code, 200, "{r:?}");
    let refused = |reason: &str| {
        metric_sum(
            &r.body,
            "auditwatch_http_refused_total",
            &[&format!("reason=\"{reason}\"")],
        )
    };
    // Each of the 65 connections was cut at the deadline or refused at the cap, and the cap
    // refused at least one. (Usually exactly one: the slot of the request served above
    // may be given back a moment after its client saw the answer, so that request can
    // still hold it when the next connections arrive.)
    let (timeouts, capped) = (refused("timeout"), refused("connection_cap"));
    assert_eq!(timeouts + capped, 65.0, "{}", r.body);
    assert!((1.0..=2.0).contains(&capped), "{}", r.body);
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
}

#[test]
fn config_check_reports_a_broken_web_config() {
    let dir = Dir::new();
    let web = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\nbasic_auth_users:\n  prometheus: not-a-hash\nbasic_auth: {}\n",
    );
    let cfg = dir.write(
        "config.yaml",
        format!(
            "server:\n  listen: 127.0.0.1:9201\n  web_config_file: '{}'\n",
            web.display()
        ),
    );
    let run = auditwatch(["config", "check", cfg.to_str().unwrap()]);
    run.assert_code(2);
    let w = web.display();
    let d = web.parent().unwrap().display();
    for want in [
        format!("{w}:2:14: cannot read cert_file {d}/missing.pem: "),
        format!("{w}:3:13: cannot read key_file {d}/missing.key: "),
        format!("{w}:4:18: `cipher_suites` is not supported by auditwatch"),
        format!("{w}:6:15: basic_auth_users.prometheus is not a bcrypt hash"),
        format!("{w}:7:1: unknown field `basic_auth` in the web config"),
    ] {
        assert!(run.stderr.contains(&want), "{want}\n{}", run.context());
    }
    assert!(!run.stderr.contains("not-a-hash"), "{}", run.context());
    // A web config that cannot be read is pointed at in the config itself.
    let cfg = dir.write(
        "gone.yaml",
        "server:\n  web_config_file: /nonexistent/web.yml\n",
    );
    let run = auditwatch(["config", "check", cfg.to_str().unwrap()]);
    run.assert_code(2);
    assert!(
        run.stderr.contains(&format!(
            "{}:2:20: server.web_config_file: cannot read /nonexistent/web.yml: ",
            cfg.display()
        )),
        "{}",
        run.context()
    );
}

#[test]
fn config_check_warns_about_what_an_exposed_endpoint_lacks_and_only_that() {
    if !have_openssl() {
        return;
    }
    let dir = Dir::new();
    let ca = TestCa::new(&dir.path().join("pki"), "test");
    ca.server("server");
    ca.client("client");
    let tls = "tls_server_config: {cert_file: pki/server.pem, key_file: pki/server.key}\n";
    let mtls = "tls_server_config: {cert_file: pki/server.pem, key_file: pki/server.key, client_auth_type: RequireAndVerifyClientCert, client_ca_file: pki/test-ca.pem}\n";
    let users = format!(
        "basic_auth_users: {{prometheus: '{}'}}\n",
        bcrypt_hash(PASSWORD)
    );
    let cases = [
        (
            "none",
            String::new(),
            Some("has no TLS and no authentication"),
        ),
        (
            "auth-only",
            users.clone(),
            Some("has no TLS: credentials and metrics cross the network in clear"),
        ),
        (
            "tls-only",
            tls.to_string(),
            Some("has no authentication: anyone who reaches it reads the metrics"),
        ),
        ("tls-and-auth", format!("{tls}{users}"), None),
        ("client-certificates", mtls.to_string(), None),
    ];
    for (name, web, want) in cases {
        let server = if web.is_empty() {
            "server: {listen: '0.0.0.0:9201'}\n".to_string()
        } else {
            let w = dir.write(&format!("{name}.web.yml"), &web);
            format!(
                "server: {{listen: '0.0.0.0:9201', web_config_file: '{}'}}\n",
                w.display()
            )
        };
        let cfg = dir.write(&format!("{name}.yaml"), &server);
        let run = auditwatch(["config", "check", cfg.to_str().unwrap()]);
        run.assert_code(0);
        match want {
            Some(w) => {
                assert!(
                    run.stderr.contains("server.listen 0.0.0.0:9201 is reachable beyond this host, and the http endpoint ")
                        && run.stderr.contains(w),
                    "{name}: {w}\n{}",
                    run.context()
                );
                assert!(
                    run.stderr.contains("set server.web_config_file"),
                    "{}",
                    run.context()
                );
            }
            None => assert!(!run.stderr.contains("warning"), "{name}: {}", run.context()),
        }
    }
}
