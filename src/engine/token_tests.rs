//! The token rules (`token-foreign-use`, `wrapping-interception`) through the whole
//! engine: workloads judged by `identities.workload_cidrs`, escalation, and their state
//! kept across a snapshot (a restart between the issue and the use of a token, or between
//! an interceptor's unwrap and the recipient's).

use std::sync::Arc;

use crate::alert::{Alert, Severity};
use crate::config::Config;
use crate::parse::Parser;
use crate::rules::RuleSet;

use super::Engine;

fn rules() -> Arc<RuleSet> {
    let all = RuleSet::embedded();
    Arc::new(RuleSet {
        rules: (all.rules.iter())
            .filter(|r| r.id == "token-foreign-use" || r.id == "wrapping-interception")
            .cloned()
            .collect(),
        origin: all.origin.clone(),
    })
}

fn workload_config() -> Arc<Config> {
    Arc::new(
        Config::from_yaml_str(
            "t.yaml",
            "identities:\n  workload_cidrs: [10.42.0.0/16, 10.0.0.0/24]\n",
        )
        .expect("a valid config"),
    )
}

fn feed(e: &mut Engine, lines: &[String]) -> Vec<Alert> {
    let mut out = Vec::new();
    let mut p = Parser::new("");
    for l in lines {
        p.parse(l.as_bytes(), |_, r| {
            e.process(&r.expect("a test entry"), Some(l.as_bytes()), &mut out)
        });
    }
    out
}

fn at(s: u32) -> String {
    crate::parse::time::format_rfc3339((1_772_445_600 + s as i64) * 1_000_000_000)
}

const ESO_AUTH: &str = r#""display_name":"kubernetes-bookstore-platform-acme-bookstore-platform-eso","metadata":{"role":"bookstore-platform-acme","service_account_name":"bookstore-platform-eso","service_account_namespace":"bookstore-platform-acme"},"policies":["default","bookstore-platform-app-acme"]"#;

fn eso_login(s: u32, acc: &str, addr: &str) -> String {
    format!(
        r#"{{"time":"{}","type":"response","auth":{{"accessor":"{acc}",{ESO_AUTH}}},"request":{{"id":"login-{s}","operation":"update","mount_type":"kubernetes","path":"auth/kubernetes/login","remote_address":"{addr}"}},"response":{{"auth":{{"accessor":"{acc}",{ESO_AUTH}}}}}}}"#,
        at(s)
    )
}

fn eso_use(s: u32, acc: &str, addr: &str, path: &str) -> String {
    let mount = if path.starts_with("auth/token/") {
        "token"
    } else {
        "kv"
    };
    format!(
        r#"{{"time":"{}","type":"response","auth":{{"accessor":"{acc}",{ESO_AUTH}}},"request":{{"id":"use-{s}","operation":"read","mount_type":"{mount}","path":"{path}","remote_address":"{addr}"}},"response":{{}}}}"#,
        at(s)
    )
}

/// With the workload networks configured, an ESO token goes anywhere inside them (another
/// node's pod range, a node address behind SNAT) and nowhere outside: its first use from
/// outside is high, the first that reads a secret critical, and nothing after.
#[test]
fn a_workload_token_is_foreign_only_outside_the_workload_networks() {
    let mut e = Engine::new(workload_config(), rules());
    let lookup = "auth/token/lookup-self";
    let secret = "secret/data/bookstore-platform/acme/db";
    let mut lines = vec![
        eso_login(0, "hmac-sha256:eso", "10.42.3.17"),
        eso_use(1, "hmac-sha256:eso", "10.42.3.17", secret),
        // Rescheduled to another node, and behind a node's SNAT: inside.
        eso_use(60, "hmac-sha256:eso", "10.42.9.4", secret),
        eso_use(61, "hmac-sha256:eso", "10.0.0.11", secret),
    ];
    assert!(feed(&mut e, &lines).is_empty());
    lines = vec![
        eso_use(120, "hmac-sha256:eso", "203.0.113.5", lookup),
        eso_use(121, "hmac-sha256:eso", "203.0.113.5", lookup),
        eso_use(122, "hmac-sha256:eso", "203.0.113.5", secret),
        eso_use(123, "hmac-sha256:eso", "203.0.113.5", secret),
    ];
    let got = feed(&mut e, &lines);
    let sev: Vec<(Severity, &str)> = got
        .iter()
        .map(|a| (a.severity, a.request_id.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        sev,
        [(Severity::High, "use-120"), (Severity::Critical, "use-122")]
    );
    let ev = &got[0].evidence;
    assert_eq!(ev["reason"], "outside_workload_cidrs");
    assert_eq!(ev["issued_from"], "10.42.3.0/24");
    assert_eq!(ev["used_from"], "203.0.113.0/24");
    assert_eq!(ev["first_foreign_request"]["path"], lookup);
    assert_eq!(got[0].category, "token_foreign_use");
    // Without the workload networks the same reschedule is another network.
    let mut e = Engine::new(Arc::new(Config::default()), rules());
    let got = feed(
        &mut e,
        &[
            eso_login(0, "hmac-sha256:eso", "10.42.3.17"),
            eso_use(60, "hmac-sha256:eso", "10.42.9.4", secret),
        ],
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].evidence["reason"], "other_network");
}

fn snapshot_round_trip(first: &Engine) -> Engine {
    let bytes = postcard::to_stdvec(&first.save_state()).expect("encodes");
    let mut second = Engine::new(first.config().clone(), first.rules().clone());
    let r = second.restore_state(postcard::from_bytes(&bytes).expect("decodes"));
    assert_eq!(r.rules_kept, 2, "{r:?}");
    second
}

/// A restart between a token's issue and its foreign use, and between an interceptor's
/// unwrap and the recipient's failed one, loses neither finding.
#[test]
fn what_the_token_rules_learned_survives_a_snapshot() {
    let cfg = Arc::new(Config::default());
    let human = r#""display_name":"userpass-alice","metadata":{"username":"alice"},"policies":["default","app"]"#;
    let before = [
        format!(
            r#"{{"time":"{}","type":"response","auth":{{"accessor":"hmac-sha256:a1",{human}}},"request":{{"id":"l1","operation":"update","mount_type":"userpass","path":"auth/userpass/login/alice","remote_address":"198.51.100.7"}},"response":{{"auth":{{"accessor":"hmac-sha256:a1",{human}}}}}}}"#,
            at(0)
        ),
        format!(
            r#"{{"time":"{}","type":"response","auth":{{"accessor":"hmac-sha256:root","display_name":"root","policies":["root"]}},"request":{{"id":"w1","operation":"read","mount_type":"kv","path":"secret/data/app/db","remote_address":"10.0.5.5"}},"response":{{"wrap_info":{{"token":"hmac-sha256:wt","accessor":"hmac-sha256:wa","creation_path":"secret/data/app/db"}}}}}}"#,
            at(1)
        ),
        format!(
            r#"{{"time":"{}","type":"response","auth":{{"accessor":"hmac-sha256:wa","display_name":"token","policies":["response-wrapping"]}},"request":{{"id":"u1","operation":"update","mount_type":"system","path":"sys/wrapping/unwrap","client_token":"hmac-sha256:wt","remote_address":"10.66.6.6"}},"response":{{}}}}"#,
            at(2)
        ),
    ];
    let after = [
        format!(
            r#"{{"time":"{}","type":"response","auth":{{"accessor":"hmac-sha256:a1",{human}}},"request":{{"id":"r1","operation":"read","mount_type":"kv","path":"secret/data/app/db","remote_address":"203.0.113.9"}},"response":{{}}}}"#,
            at(600)
        ),
        format!(
            r#"{{"time":"{}","type":"request","error":"wrapping token is not valid or does not exist","auth":{{"client_token":"hmac-sha256:wt"}},"request":{{"id":"u2","operation":"update","mount_type":"system","path":"sys/wrapping/unwrap","client_token":"hmac-sha256:wt","remote_address":"10.1.2.3"}}}}"#,
            at(601)
        ),
    ];
    let mut first = Engine::new(cfg, rules());
    assert!(feed(&mut first, &before).is_empty());
    // Three tokens (alice's, root's, the wrapping token's own accessor) and a wrapping token.
    assert_eq!(first.table_sizes().token_keys, 4);
    let mut second = snapshot_round_trip(&first);
    let mut got = feed(&mut second, &after);
    second.finish(&mut got);
    let found: Vec<(&str, Severity)> = got
        .iter()
        .map(|a| (a.category.as_str(), a.severity))
        .collect();
    assert_eq!(
        found,
        [
            ("token_foreign_use", Severity::Critical),
            ("wrapping_interception", Severity::Critical)
        ],
        "{got:#?}"
    );
    let w = &got[1].evidence;
    assert_eq!(w["kind"], "intercepted");
    assert_eq!(w["creation_path"], "secret/data/app/db");
    assert_eq!(w["unwrapped_from"], "10.66.6.6");
    assert_eq!(w["failed_from"], "10.1.2.3");
    // The engine that forgot (no snapshot) finds neither.
    let mut fresh = Engine::new(first.config().clone(), rules());
    let mut none = feed(&mut fresh, &after);
    fresh.finish(&mut none);
    assert!(none.is_empty(), "{none:?}");
}

/// Tokens are bounded: past `max_keys` the least recently used half goes, counted.
#[test]
fn the_token_table_stays_within_its_cap_and_counts_evictions() {
    let mut rs = (*rules()).clone();
    for r in &mut rs.rules {
        if let crate::rules::Detector::TokenOrigin(s) = &mut r.detector {
            s.max_keys = 100;
        }
    }
    let mut e = Engine::new(Arc::new(Config::default()), Arc::new(rs));
    let lines: Vec<String> = (0..1000)
        .map(|i| {
            eso_use(
                i,
                &format!("hmac-sha256:t{i}"),
                "10.42.3.17",
                "auth/token/lookup-self",
            )
        })
        .collect();
    feed(&mut e, &lines);
    let kept = e.table_sizes().token_keys;
    assert!(kept <= 100, "{kept}");
    assert_eq!(e.stats().evicted_keys, 1000 - kept as u64);
}

/// The state a tracked token costs, in memory (the table's entry) and in a snapshot:
/// `cargo test --lib state_of_a_tracked_token -- --nocapture` prints both.
#[test]
fn the_state_of_a_tracked_token_is_small() {
    use super::detect::token_origin::Origin;
    let entry = std::mem::size_of::<(u128, Origin)>();
    let mut e = Engine::new(Arc::new(Config::default()), rules());
    let n = 10_000;
    let lines: Vec<String> = (0..n)
        .map(|i| eso_login(i, &format!("hmac-sha256:t{i:064}"), "10.42.3.17"))
        .collect();
    let saved = |e: &Engine| {
        let d = e.state.rules.iter().find_map(|r| match &r.detector {
            super::detect::Detector::TokenOrigin(d) => Some(d.state()),
            _ => None,
        });
        postcard::to_stdvec(d.expect("the rule")).unwrap().len()
    };
    let empty = saved(&e);
    feed(&mut e, &lines);
    assert_eq!(e.table_sizes().token_keys, n as usize);
    let per_token = (saved(&e) - empty) as f64 / n as f64;
    println!(
        "token_origin: {entry} bytes a table entry (plus the hash table's control byte and \
         load factor), {per_token:.1} bytes a token in a snapshot"
    );
    assert!(entry <= 64, "{entry}");
    assert!(per_token < 64.0, "{per_token}");
}
