//! Audit entries the tests build, and a test rule that fires on each of them.

use serde_json::{json, Value};

// acme's ESO. These are the entries of rules/cross_tenant_read.yaml's examples: acme's
// External Secrets Operator (service account bookstore-platform-eso in namespace
// bookstore-platform-acme) reading a secret. On lumen's path that is a cross-tenant read
// (the default rules raise an alert for it); on acme's own path it is normal traffic.

/// acme's ESO identity, as Vault writes it in `auth`.
fn acme_eso_auth() -> Value {
    json!({
        "accessor": "hmac-sha256:7a1f",
        "client_token": "hmac-sha256:0c9e",
        "display_name": "kubernetes-bookstore-platform-acme-bookstore-platform-eso",
        "entity_id": "6f1c2d4e-acme",
        "metadata": {
            "role": "bookstore-platform-acme",
            "service_account_name": "bookstore-platform-eso",
            "service_account_namespace": "bookstore-platform-acme"
        },
        "policies": ["default", "bookstore-platform-app-acme"],
        "token_type": "service"
    })
}

/// Whose secret acme's ESO reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// lumen's secret: a cross-tenant read, alerted.
    Lumen,
    /// acme's own secret: normal, quiet.
    Acme,
}

/// What Vault answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed: a cross-tenant read that succeeds is critical.
    Allowed,
    /// Permission denied: a cross-tenant probe is a warning.
    Denied,
}

/// An audit entry (`"request"` or `"response"`) of acme's ESO reading `target`'s secret.
pub fn eso_read(kind: &str, id: &str, time: &str, target: Target, outcome: Outcome) -> String {
    let tenant = match target {
        Target::Lumen => "lumen",
        Target::Acme => "acme",
    };
    let mut e = json!({
        "time": time,
        "type": kind,
        "auth": acme_eso_auth(),
        "request": {
            "id": id,
            "operation": "read",
            "mount_type": "kv",
            "path": format!("secret/data/bookstore-platform/{tenant}/db"),
            "remote_address": "10.42.0.7"
        }
    });
    if kind == "response" {
        e["response"] =
            json!({"mount_type": "kv", "data": {"data": {"password": "hmac-sha256:5b2c"}}});
        if outcome == Outcome::Denied {
            e["error"] = json!("1 error occurred:\n\t* permission denied\n\n");
            e["response"] = json!({});
        }
    }
    e.to_string()
}

/// A complete cross-tenant read (one response line): a `warning` alert for `id`.
pub fn cross_tenant_denied(id: &str) -> String {
    eso_read(
        "response",
        id,
        "2026-03-02T14:07:00Z",
        Target::Lumen,
        Outcome::Denied,
    )
}

/// A complete, successful cross-tenant read (one response line): a `critical` alert.
pub fn cross_tenant_allowed(id: &str) -> String {
    eso_read(
        "response",
        id,
        "2026-03-02T14:07:00Z",
        Target::Lumen,
        Outcome::Allowed,
    )
}

/// acme reading its own secret (one response line): no alert.
pub fn own_tenant_read(id: &str) -> String {
    eso_read(
        "response",
        id,
        "2026-03-02T14:07:00Z",
        Target::Acme,
        Outcome::Allowed,
    )
}

/// A request id that is a UUID (as Vault writes them), numbered.
pub fn rid(n: u32) -> String {
    format!("c915b587-7fe5-07d0-f59b-{n:012}")
}

// ---------------------------------------------------------------------------------------
// Realistic response entries and a rule that alerts on every one (the daemon tests count
// entries by their alerts).

/// A rule that fires once per response entry under `secret/`: one alert per request, so
/// alerts count entries exactly (no loss, no duplicate).
pub const EVERY_READ_RULE: &str = r#"id: test-every-secret-request
title: Every request under secret/ (test rule)
category: test_read
severity: info
description: Test rule.
summary: '{operation} {path}'
when:
  all:
    - {field: path, prefix: [secret/]}
detector: {kind: match}
examples:
  - name: a read fires
    expect: fire
    entries:
      - {time: '2026-03-02T10:00:00Z', type: response, auth: {display_name: x, policies: [default]},
         request: {id: r-1, operation: read, path: secret/data/x}, response: {}}
  - name: other paths stay quiet
    expect: quiet
    entries:
      - {time: '2026-03-02T10:00:00Z', type: response, auth: {display_name: x, policies: [default]},
         request: {id: r-2, operation: read, path: sys/health}, response: {}}
"#;

/// A realistic response entry (~1.3 KB) with request id `id` at `time` (RFC 3339).
pub fn response_line(id: &str, time: &str) -> String {
    let e = json!({
        "time": time,
        "type": "response",
        "auth": {
            "client_token": "hmac-sha256:5b1e1c1d2f0a7c9e3b4d6f8a0c2e4a6b8d0f2a4c6e8a0b2d4f6a8c0e2a4c6e8a",
            "accessor": "hmac-sha256:0c2e4a6b8d0f2a4c6e8a0b2d4f6a8c0e2a4c6e8a5b1e1c1d2f0a7c9e3b4d6f8a",
            "display_name": "kubernetes-bookstore-platform-acme-bookstore-platform-eso",
            "policies": ["bookstore-platform-app-acme", "default"],
            "token_policies": ["bookstore-platform-app-acme", "default"],
            "metadata": {
                "role": "bookstore-platform-acme",
                "service_account_name": "bookstore-platform-eso",
                "service_account_namespace": "bookstore-platform-acme",
                "service_account_uid": "8d1c2f3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f"
            },
            "entity_id": "1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718",
            "token_type": "service",
            "token_ttl": 3600,
            "token_issue_time": "2026-03-02T09:00:00Z"
        },
        "request": {
            "id": id,
            "operation": "read",
            "mount_type": "kv",
            "mount_accessor": "kv_4a1b2c3d",
            "client_token": "hmac-sha256:5b1e1c1d2f0a7c9e3b4d6f8a0c2e4a6b8d0f2a4c6e8a0b2d4f6a8c0e2a4c6e8a",
            "client_token_accessor": "hmac-sha256:0c2e4a6b8d0f2a4c6e8a0b2d4f6a8c0e2a4c6e8a5b1e1c1d2f0a7c9e3b4d6f8a",
            "namespace": {"id": "root"},
            "path": "secret/data/bookstore-platform/acme/db",
            "remote_address": "10.42.0.17",
            "remote_port": 51334,
            "headers": {"user-agent": ["external-secrets/v0.9"]}
        },
        "response": {
            "mount_type": "kv",
            "mount_accessor": "kv_4a1b2c3d",
            "data": {
                "data": {"password": "hmac-sha256:9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"},
                "metadata": {"created_time": "hmac-sha256:1a2b3c", "version": 3}
            }
        }
    });
    e.to_string()
}

/// Unique request ids per test run.
pub fn request_id(prefix: u32, i: u64) -> String {
    format!("{prefix:08x}-0000-4000-8000-{i:012x}")
}
