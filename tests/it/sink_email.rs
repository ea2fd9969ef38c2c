//! The email sink against a real SMTP server (aiosmtpd, `tests/smtp/server.py`) on
//! 127.0.0.1, driven by the real `auditwatch run` daemon: mails arrive with the right
//! recipients, subjects and both bodies and no secret; an SMTP outage across a daemon
//! restart loses no alert and mails none twice; digests group per recipient while a
//! critical goes at once; STARTTLS with a private CA and AUTH from the environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util::*;

const SOURCES: &str = "server: {listen: 127.0.0.1:0, tick_secs: 0}
sources:
  - {name: vault-socket, kind: socket, protocol: tcp, listen: 127.0.0.1:0}
";

/// A plain SMTP server on a free port writing what it receives under `<dir>/received`;
/// `None` (and SKIPPED said) without aiosmtpd.
#[track_caller]
fn plain_server() -> Option<(tempfile::TempDir, u16, PathBuf, Smtp)> {
    if !have_aiosmtpd() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = dir.path().join("received");
    let smtp = Smtp::start(port, &out, &[], &[]);
    Some((dir, port, out, smtp))
}

/// [`plain_server`] and a daemon on it with the rule files `rules` and the email
/// settings `settings` (under `email:`): (temp dir, the server's output, the server, the
/// daemon); `None` without aiosmtpd.
#[track_caller]
fn plain_daemon(
    rules: &[(&str, &str)],
    settings: &str,
) -> Option<(tempfile::TempDir, PathBuf, Smtp, Daemon)> {
    let (dir, port, out, smtp) = plain_server()?;
    let rules = rules_dir(dir.path(), rules);
    let cfg = format!(
        "{SOURCES}{}",
        email_block(port, "smtp+plain", dir.path(), settings)
    );
    let d = Daemon::start(dir.path(), &cfg, &["--rules", rules.to_str().unwrap()]);
    Some((dir, out, smtp, d))
}

/// Poll `f` until it holds, for at most `timeout`.
#[track_caller]
fn wait(what: &str, timeout: Duration, f: impl FnMut() -> bool) {
    wait_for(what, timeout, f, String::new)
}

fn email_block(port: u16, scheme: &str, dir: &Path, extra: &str) -> String {
    format!(
        "email:\n  smtp: {scheme}://127.0.0.1:{port}\n  from: auditwatch@example.test\n  outbox_dir: '{}'\n{extra}",
        dir.join("outbox").display()
    )
}

/// A warning or critical rule for reads under `secret/data/<prefix>/`.
fn rule(prefix: &str, severity: &str) -> String {
    format!(
        r#"id: test-{prefix}-read
title: Reads under secret/data/{prefix}/ (test rule)
category: test_{prefix}
severity: {severity}
description: Test rule.
summary: '{{operation}} {{path}}'
when:
  all:
    - {{field: path, prefix: [secret/data/{prefix}/]}}
detector: {{kind: match}}
examples:
  - name: a read fires
    expect: fire
    entries:
      - {{time: '2026-03-02T10:00:00Z', type: response, auth: {{display_name: x, policies: [default]}},
         request: {{id: r-1, operation: read, path: secret/data/{prefix}/x}}, response: {{}}}}
  - name: other paths stay quiet
    expect: quiet
    entries:
      - {{time: '2026-03-02T10:00:00Z', type: response, auth: {{display_name: x, policies: [default]}},
         request: {{id: r-2, operation: read, path: sys/health}}, response: {{}}}}
"#
    )
}

/// Response lines with request ids `prefix`-`from`.. under `secret/data/<dir>/`.
fn lines(tag: u32, range: std::ops::Range<u64>, dir: &str) -> (Vec<String>, Vec<u8>) {
    let mut ids = Vec::new();
    let mut input = Vec::new();
    for i in range {
        let id = request_id(tag, i);
        let line = response_line(&id, &format!("2026-03-02T10:{:02}:{:02}Z", i / 60, i % 60))
            .replace(
                "secret/data/bookstore-platform/acme/db",
                &format!("secret/data/{dir}/db"),
            );
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
        ids.push(id);
    }
    (ids, input)
}

#[test]
fn mails_arrive_with_recipients_subjects_both_bodies_and_no_secret() {
    let Some((dir, port, out, _smtp)) = plain_server() else {
        return;
    };
    let cfg = format!(
        "{SOURCES}{}",
        email_block(
            port,
            "smtp+plain",
            dir.path(),
            "  recipients:\n    critical: [sec@example.test, oncall@example.test]\n    high: [sec@example.test]\n    warning: [ops@example.test]\n    info: [ops@example.test]\n  digest_minutes: 0\n  max_per_hour: 1000\n"
        )
    );
    let d = Daemon::start(dir.path(), &cfg, &[]);
    // A day on the platform, and a device that writes tokens in clear (`log_raw`).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios");
    let raw = std::fs::read(root.join("log-raw-device.jsonl")).unwrap();
    let secret = "s.JXCLZkyHU20y23JWhpEnbgAY";
    assert!(
        String::from_utf8_lossy(&raw).contains(secret),
        "the input carries a raw token"
    );
    let mut input = std::fs::read(root.join("day-on-the-platform.jsonl")).unwrap();
    input.extend_from_slice(&raw);
    let n_lines = input
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as f64;
    d.send("vault-socket", &input);
    d.wait_until("every entry read", Duration::from_secs(30), |d| {
        d.metric("auditwatch_events_total", &["source=\"vault-socket\""]) >= n_lines
    });
    d.wait_until("every alert mailed", Duration::from_secs(30), |d| {
        let alerts = d.metric("auditwatch_alerts_total", &[]);
        alerts >= 5.0
            && d.metric("auditwatch_sink_delivered_total", &["sink=\"email\""]) == alerts
            && d.metric("auditwatch_sink_backlog", &["sink=\"email\""]) == 0.0
    });
    let sent = d.metric("auditwatch_emails_sent_total", &["kind=\"immediate\""]);
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    assert!(!exit.log.contains(secret));

    let alerts = read_alerts(&dir.path().join("alerts.jsonl"));
    let got = mails(&out);
    assert_eq!(
        got.len() as f64,
        sent,
        "every mail the daemon counted arrived"
    );
    assert!(
        alerts.iter().any(|a| a["rule"] == "raw-audit-device"),
        "the log_raw device was found"
    );
    for a in &alerts {
        let sev = a["severity"].as_str().unwrap();
        let mut want: Vec<&str> = match sev {
            "critical" => vec!["oncall@example.test", "sec@example.test"],
            "high" => vec!["sec@example.test"],
            _ => vec!["ops@example.test"],
        };
        want.sort();
        // An alert's identity in a body: its id line.
        let marker = format!("  alert id: {}\n", a["id"].as_str().unwrap());
        let mut to: Vec<String> = Vec::new();
        for m in got.iter().filter(|m| text(m).contains(&marker)) {
            assert_eq!(text(m).matches(&marker).count(), 1);
            to.extend(rcpts(m));
        }
        to.sort();
        assert_eq!(to, want, "recipients of {a}");
    }
    for m in &got {
        let t = text(m);
        let html = m["html"].as_str().expect("a text/html part");
        assert_eq!(m["from"], "auditwatch@example.test");
        let subject = m["subject"].as_str().unwrap();
        assert!(subject.starts_with("[auditwatch] "), "{subject}");
        let n = t.matches("\n== ").count();
        assert!(n >= 1);
        if n == 1 {
            let a = alerts
                .iter()
                .find(|a| t.contains(&format!("  alert id: {}\n", a["id"].as_str().unwrap())))
                .unwrap();
            assert_eq!(
                subject,
                format!(
                    "[auditwatch] [{}] {}: {}",
                    a["severity"].as_str().unwrap().to_uppercase(),
                    a["category"].as_str().unwrap(),
                    a["summary"].as_str().unwrap()
                )
            );
        } else {
            assert!(subject.contains(&format!("{n} alerts (")), "{subject}");
        }
        for part in [t, html] {
            for want in [
                "What happened",
                "Who",
                "Where",
                "Why it matters",
                "What to do",
            ] {
                assert!(part.contains(want), "a body lacks `{want}`:\n{part}");
            }
        }
        assert!(html.contains(">Why it matters</h3>"), "{html}");
        // Automatic mail, said so (RFC 3834), with a Message-ID.
        assert_eq!(m["headers"]["auto-submitted"], "auto-generated", "{m}");
        assert!(m["message_id"]
            .as_str()
            .is_some_and(|id| id.ends_with("@auditwatch.invalid>")));
        let raw = m["data"].as_str().unwrap();
        for body in [raw, t, html] {
            assert!(!body.contains(secret), "a raw token was mailed");
            assert!(!body.contains("hvs."), "a raw token was mailed");
        }
    }
    let critical = alerts.iter().find(|a| a["severity"] == "critical").unwrap();
    let m = got
        .iter()
        .find(|m| {
            text(m).contains(&format!(
                "  alert id: {}\n",
                critical["id"].as_str().unwrap()
            ))
        })
        .unwrap();
    assert!(text(m).contains(&format!(
        "target tenant: {}",
        critical["target_tenant"].as_str().unwrap()
    )));
    assert!(text(m).contains("rotate the"), "the advice is there");
}

#[test]
fn an_smtp_outage_across_a_restart_loses_no_alert_and_mails_none_twice() {
    if !have_aiosmtpd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = dir.path().join("received");
    let rules = rules_dir(dir.path(), &[("every.yaml", EVERY_READ_RULE)]);
    let cfg = format!(
        "{SOURCES}{}",
        email_block(
            port,
            "smtp+plain",
            dir.path(),
            "  recipients: {info: [ops@example.test]}\n  digest_minutes: 0\n"
        )
    );
    let args = ["--rules", rules.to_str().unwrap()];
    let tag = std::process::id();
    let (mut ids, first) = lines(tag, 0..20, "a");

    // The server is down: the alerts wait in the outbox, the failures are counted.
    let d = Daemon::start(dir.path(), &cfg, &args);
    d.send("vault-socket", &first);
    d.wait_until("alerts held in the outbox", Duration::from_secs(30), |d| {
        d.metric("auditwatch_sink_failures_total", &["sink=\"email\""]) >= 1.0
            && d.metric("auditwatch_sink_backlog", &["sink=\"email\""]) == 20.0
    });
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    assert!(exit.log.contains("did not take a mail"), "{}", exit.log);
    let outbox = dir.path().join("outbox");
    let waiting = || {
        std::fs::read_dir(&outbox)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count()
    };
    assert_eq!(waiting(), 20);

    // Restarted while the server is still down; more alerts; then the server comes up.
    let d = Daemon::start(dir.path(), &cfg, &args);
    let (more, second) = lines(tag, 20..25, "a");
    ids.extend(more);
    d.send("vault-socket", &second);
    d.wait_until(
        "the new alerts in the outbox",
        Duration::from_secs(30),
        |d| d.metric("auditwatch_sink_backlog", &["sink=\"email\""]) == 25.0,
    );
    assert!(mails(&out).is_empty());
    let _smtp = Smtp::start(port, &out, &[], &[]);
    d.wait_until("every alert delivered", Duration::from_secs(60), |d| {
        d.metric("auditwatch_sink_delivered_total", &["sink=\"email\""]) == 25.0
            && d.metric("auditwatch_sink_backlog", &["sink=\"email\""]) == 0.0
    });
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    assert_eq!(waiting(), 0, "the outbox is empty once everything went");
    let got = mails(&out);
    let counts = id_counts(&got, Some("ops@example.test"));
    let want: BTreeMap<String, usize> = ids.iter().map(|i| (i.clone(), 1)).collect();
    assert_eq!(counts, want, "every alert exactly once");
}

#[test]
fn digests_group_per_recipient_per_window_while_a_critical_goes_at_once() {
    // A 3 s digest window.
    let Some((_dir, out, _smtp, d)) = plain_daemon(
        &[
                ("warn.yaml", &rule("warn", "warning")),
                ("crit.yaml", &rule("crit", "critical")),
            ],
        "  recipients:\n    critical: [sec@example.test]\n    warning: [ops@example.test, sec@example.test]\n  digest_minutes: 0.05\n",
    ) else {
        return;
    };
    let tag = std::process::id();
    let (w1, mut input) = lines(tag, 0..3, "warn");
    let (c, crit) = lines(tag, 3..4, "crit");
    input.extend(crit);
    d.send("vault-socket", &input);
    wait("the critical mail", Duration::from_secs(20), || {
        !mails(&out).is_empty()
    });
    let first = mails(&out);
    assert_eq!(
        first.len(),
        1,
        "only the critical goes before the window closes"
    );
    assert_eq!(rcpts(&first[0]), ["sec@example.test"]);
    assert!(first[0]["subject"]
        .as_str()
        .unwrap()
        .contains("[CRITICAL] test_crit"));
    assert_eq!(id_counts(&first, None).into_keys().collect::<Vec<_>>(), c);

    wait("the first digests", Duration::from_secs(20), || {
        mails(&out).len() >= 3
    });
    let (w2, input) = lines(tag, 4..6, "warn");
    d.send("vault-socket", &input);
    wait("the second digests", Duration::from_secs(20), || {
        mails(&out).len() >= 5
    });
    d.wait_until("everything delivered", Duration::from_secs(20), |d| {
        d.metric("auditwatch_sink_backlog", &["sink=\"email\""]) == 0.0
    });
    let immediate = d.metric("auditwatch_emails_sent_total", &["kind=\"immediate\""]);
    let digests = d.metric("auditwatch_emails_sent_total", &["kind=\"digest\""]);
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    assert_eq!((immediate, digests), (1.0, 4.0));

    let got = mails(&out);
    assert_eq!(got.len(), 5, "one critical, two digests per window");
    for (window, want) in [(&got[1..3], &w1), (&got[3..5], &w2)] {
        let mut to: Vec<String> = window.iter().flat_map(rcpts).collect();
        to.sort();
        assert_eq!(
            to,
            ["ops@example.test", "sec@example.test"],
            "one digest per recipient"
        );
        for m in window {
            assert_eq!(
                m["subject"].as_str().unwrap(),
                format!(
                    "[auditwatch] digest: {n} alerts ({n} warning)",
                    n = want.len()
                )
            );
            let ids: Vec<String> = id_counts(std::slice::from_ref(m), None)
                .into_keys()
                .collect();
            assert_eq!(&ids, want);
        }
    }
}

#[test]
fn starttls_with_a_private_ca_and_credentials_from_the_environment() {
    if !have_aiosmtpd() || !require_tool("openssl", "apt-get install openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    // A private CA and a server certificate it signed (rustls, rightly, refuses a CA
    // certificate used as the server's own).
    let ca = dir.path().join("ca.pem");
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    std::fs::write(
        dir.path().join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=auditwatch test CA",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
        ],
        vec![
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &p("key.pem"),
            "-out",
            &p("server.csr"),
        ],
        vec![
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &p("ext.cnf"),
            "-out",
            &p("cert.pem"),
        ],
    ] {
        let o = Command::new("openssl").args(&args).output().unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let port = free_port();
    let out = dir.path().join("received");
    let password = "correct-horse-battery-staple-42";
    let _smtp = Smtp::start(
        port,
        &out,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--auth-user",
            "auditwatch",
        ],
        &[("SMTP_TEST_PASSWORD", password)],
    );
    let rules = rules_dir(dir.path(), &[("every.yaml", EVERY_READ_RULE)]);
    let args = ["--rules", rules.to_str().unwrap()];
    let creds = "  username_env: AW_SMTP_USER\n  password_env: AW_SMTP_PASS\n  recipients: {info: [ops@example.test]}\n  digest_minutes: 0\n";
    let env = [("AW_SMTP_USER", "auditwatch"), ("AW_SMTP_PASS", password)];

    // A password variable that is not set is a clear startup error.
    let cfg_path = dir.path().join("nopass.yaml");
    std::fs::write(
        &cfg_path,
        format!("{SOURCES}{}", email_block(port, "smtp", dir.path(), creds)),
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["run", "--rules", rules.to_str().unwrap(), "--config"])
        .arg(&cfg_path)
        .env("AW_SMTP_USER", "auditwatch")
        .env_remove("AW_SMTP_PASS")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("environment variable `AW_SMTP_PASS`"), "{err}");

    // Without the private CA the server's certificate is refused: nothing is sent.
    let tag = std::process::id();
    let (ids, input) = lines(tag, 0..1, "a");
    let cfg = format!("{SOURCES}{}", email_block(port, "smtp", dir.path(), creds));
    let d = Daemon::start_env(dir.path(), &cfg, &args, &env);
    d.send("vault-socket", &input);
    d.wait_until("a refused TLS handshake", Duration::from_secs(30), |d| {
        d.metric("auditwatch_sink_failures_total", &["sink=\"email\""]) >= 1.0
    });
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    assert!(
        mails(&out).is_empty(),
        "a mail went over an untrusted TLS connection"
    );

    // Trusting it via ca_file: the alert left in the outbox goes, encrypted and logged in.
    let cfg = format!(
        "{SOURCES}{}",
        email_block(
            port,
            "smtp",
            dir.path(),
            &format!("  ca_file: '{}'\n{creds}", ca.display())
        )
    );
    let d = Daemon::start_env(dir.path(), &cfg, &args, &env);
    d.wait_until("the mail delivered", Duration::from_secs(30), |d| {
        d.metric("auditwatch_sink_delivered_total", &["sink=\"email\""]) == 1.0
    });
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    assert!(!exit.log.contains(password), "the password was logged");
    let got = mails(&out);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["tls"], true);
    assert_eq!(got[0]["auth"], true);
    assert_eq!(
        id_counts(&got, Some("ops@example.test"))
            .into_keys()
            .collect::<Vec<_>>(),
        ids
    );
}

#[test]
fn beyond_the_hourly_cap_mails_wait_in_the_outbox_and_nothing_is_dropped() {
    let Some((dir, out, _smtp, mut d)) = plain_daemon(
        &[("every.yaml", EVERY_READ_RULE)],
        "  recipients: {info: [ops@example.test]}\n  digest_minutes: 0\n  max_per_hour: 1\n",
    ) else {
        return;
    };
    let tag = std::process::id();
    let (first, input) = lines(tag, 0..1, "a");
    d.send("vault-socket", &input);
    wait("the first mail", Duration::from_secs(20), || {
        mails(&out).len() == 1
    });
    let (_, input) = lines(tag, 1..3, "a");
    d.send("vault-socket", &input);
    d.wait_log("hourly mail cap reached", Duration::from_secs(20));
    d.wait_until("the capped alerts held", Duration::from_secs(20), |d| {
        d.metric("auditwatch_sink_backlog", &["sink=\"email\""]) == 2.0
    });
    assert_eq!(
        d.metric("auditwatch_sink_dropped_total", &["sink=\"email\""]),
        0.0
    );
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    let got = mails(&out);
    assert_eq!(got.len(), 1, "the cap held");
    assert_eq!(id_counts(&got, None).into_keys().collect::<Vec<_>>(), first);
    let waiting = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(waiting, 2, "the capped alerts stay for later");
}

/// `rule(prefix, severity)` with another category.
fn rule_in(prefix: &str, severity: &str, category: &str) -> String {
    rule(prefix, severity).replace(
        &format!("category: test_{prefix}"),
        &format!("category: {category}"),
    )
}

/// Mail clients thread by `References`: every mail of one incident (same rule, tenant
/// and actor) names the same thread, each keeps its own Message-ID, and another
/// incident's mail is in another thread. Every mail says it is automatic.
#[test]
fn repeats_of_an_incident_are_threaded_and_mails_say_they_are_automatic() {
    let Some((_dir, out, _smtp, d)) = plain_daemon(
        &[
            ("a.yaml", &rule("inca", "critical")),
            ("b.yaml", &rule("incb", "critical")),
        ],
        "  recipients: {critical: [sec@example.test]}\n  max_per_hour: 1000\n",
    ) else {
        return;
    };
    let tag = std::process::id();
    // One at a time, so each is its own mail: two repeats of incident A, then B.
    for (i, (range, prefix)) in [(0..1, "inca"), (1..2, "inca"), (2..3, "incb")]
        .into_iter()
        .enumerate()
    {
        let (_, input) = lines(tag, range, prefix);
        d.send("vault-socket", &input);
        wait("the mail", Duration::from_secs(20), || {
            mails(&out).len() > i
        });
    }
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    let got = mails(&out);
    assert_eq!(got.len(), 3, "{got:#?}");
    let h = |m: &serde_json::Value, k: &str| m["headers"][k].as_str().unwrap_or("").to_string();
    for m in &got {
        assert_eq!(h(m, "auto-submitted"), "auto-generated");
        assert!(h(m, "references").starts_with("<incident."), "{m}");
        assert_eq!(h(m, "in-reply-to"), h(m, "references"));
    }
    assert_eq!(
        h(&got[0], "references"),
        h(&got[1], "references"),
        "one thread"
    );
    assert_ne!(h(&got[0], "message-id"), h(&got[1], "message-id"));
    assert_ne!(
        h(&got[0], "references"),
        h(&got[2], "references"),
        "another incident"
    );
}

/// A `high` root token use or audit device change (a `log_raw` device) is mailed at once
/// by default, while a `high` alert of another category waits for its digest.
#[test]
fn high_alerts_of_the_categories_that_cannot_wait_are_mailed_at_once() {
    let Some((_dir, out, _smtp, d)) = plain_daemon(
        &[
            ("root.yaml", &rule_in("rt", "high", "root_token_use")),
            ("dev.yaml", &rule_in("ad", "high", "audit_device_change")),
            ("other.yaml", &rule_in("pd", "high", "policy_drift")),
        ],
        "  recipients: {high: [sec@example.test]}\n  digest_minutes: 60\n",
    ) else {
        return;
    };
    let tag = std::process::id();
    let (rt, mut input) = lines(tag, 0..1, "rt");
    let (ad, more) = lines(tag, 1..2, "ad");
    input.extend(more);
    let (pd, more) = lines(tag, 2..3, "pd");
    input.extend(more);
    d.send("vault-socket", &input);
    d.wait_until("two mailed, one waiting", Duration::from_secs(20), |d| {
        d.metric("auditwatch_sink_delivered_total", &["sink=\"email\""]) == 2.0
            && d.metric("auditwatch_sink_backlog", &["sink=\"email\""]) == 1.0
    });
    let got = mails(&out);
    let mailed: Vec<String> = id_counts(&got, None).into_keys().collect();
    let mut want = [rt, ad].concat();
    want.sort();
    assert_eq!(mailed, want);
    assert!(
        !mailed.contains(&pd[0]),
        "policy drift waits for the digest"
    );
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
}

/// A digest whose HTML would pass Gmail's 102 KB clipping size goes out in numbered
/// parts, each under it, together carrying every alert once.
#[test]
fn a_digest_too_big_for_gmail_is_split_into_parts_under_the_clipping_size() {
    let Some((_dir, out, _smtp, d)) = plain_daemon(
        &[("warn.yaml", &rule("big", "warning"))],
        "  recipients: {warning: [ops@example.test]}\n  digest_minutes: 0.05\n",
    ) else {
        return;
    };
    let (ids, input) = lines(std::process::id(), 0..150, "big");
    d.send("vault-socket", &input);
    d.wait_until("everything mailed", Duration::from_secs(30), |d| {
        d.metric("auditwatch_sink_delivered_total", &["sink=\"email\""]) == ids.len() as f64
    });
    let exit = d.stop();
    assert_eq!(exit.code, Some(0), "{}", exit.log);
    let got = mails(&out);
    assert!(got.len() > 1, "split: {} mail(s)", got.len());
    let k = got.len();
    for (i, m) in got.iter().enumerate() {
        let html = m["html"].as_str().unwrap();
        assert!(html.len() < 102 * 1024, "part {i}: {} bytes", html.len());
        let subject = m["subject"].as_str().unwrap();
        assert!(
            subject.ends_with(&format!("(part {} of {k})", i + 1)),
            "{subject}"
        );
    }
    let counts = id_counts(&got, None);
    assert_eq!(counts.len(), ids.len());
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}
