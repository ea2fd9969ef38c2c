//! Injections of the token detections (issue 18): a developer's token copied and used from
//! outside (`token_foreign_use`), and a response-wrapping token unwrapped by an
//! interceptor before its recipient (`wrapping_interception`), each with the look-alikes
//! that must stay quiet beside it: an ESO pod rescheduled to another node that logs in
//! again from its new address, a token renewed by the client it was issued to, and a
//! wrapping token unwrapped once by its recipient.
//!
//! The wrapping entries are written here in the shape OpenBao 2.7 writes them (checked
//! against a real server): `response.wrap_info` on the wrapped response (no data), the
//! unwrap authenticated by the wrapping token itself (`display_name: token`, policy
//! `response-wrapping`), and a failed unwrap as a request entry only, with the error
//! "wrapping token is not valid or does not exist" and no accessor.

use super::actors::{
    composition_identity, eso_identity, human_address, human_identity, human_login, kv_path,
    pod_address, DEVELOPER, MIN,
};
use super::extras::Planted;
use super::item::Item;
use super::json::J;
use super::rng::Rng;
use super::vault::{go_time, Line, MountKind, Script, World, MS, SEC};
use super::Injection;
use crate::alert::Severity;

/// Upper bounds of each episode's length.
pub const THEFT_LEN: i64 = 25 * MIN;
pub const WRAP_LEN: i64 = 12 * MIN;

/// The error both servers write for a used, expired or unknown wrapping token.
const INVALID_WRAPPING_TOKEN: &str = "wrapping token is not valid or does not exist";

fn outside_address(r: &mut Rng) -> String {
    format!("203.0.113.{}", r.range(2, 254))
}

/// The developer logs in from their laptop and works; later their token is used from
/// outside: `lookup-self` first (high), then a tenant's database secret (critical). Beside
/// it, one tenant's ESO is rescheduled to another node and logs in again from there, and
/// the developer renews their token from the laptop: both quiet.
pub fn token_theft(seed: u64, w: &World, r: &mut Rng, at: i64) -> Planted {
    let who = human_identity(seed, &DEVELOPER);
    let home = human_address(seed, &DEVELOPER, 3);
    let mut s = Script::new(w, at, home, r);
    let mut lines = Vec::new();
    let mut items = Vec::new();
    let Some(tok) = human_login(&mut s, r, &who, DEVELOPER.name) else {
        return Planted {
            lines: s.into_lines(),
            items,
            span: (at, at + SEC),
        };
    };
    s.lookup_self(r, &tok);
    s.pause(r.range(2 * MIN, 5 * MIN));
    // Renewed by the client it was issued to: quiet.
    s.call(
        r,
        super::vault::Call::new(
            Some(&tok),
            "update",
            "auth/token/renew-self",
            MountKind::Token,
        ),
    );
    let renewed = s.t;
    lines.extend(s.into_lines());

    // The copied token, from outside.
    let tenant = r.pick(&w.tenants).clone();
    let thief_at = renewed + r.range(3 * MIN, 8 * MIN);
    let mut x = Script::new(w, thief_at, outside_address(r), r);
    let first = x.lookup_self(r, &tok);
    x.pause(r.range(20 * SEC, 90 * SEC));
    let path = kv_path(&tenant, "db");
    let read = x.kv_read(
        r,
        &tok,
        &path,
        &["host", "password", "username"],
        3,
        super::vault::Outcome::Ok,
    );
    let mut it = Item::new(
        Injection::TokenTheft,
        "token_foreign_use",
        Severity::High,
        (first.at, first.at + 5 * SEC),
    );
    it.request_id = Some(first.request_id);
    it.description = format!(
        "{}'s token, issued to their laptop, is used from outside at {}: lookup-self",
        who.display_name,
        go_time(first.at)
    );
    items.push(it);
    let mut it = Item::new(
        Injection::TokenTheft,
        "token_foreign_use",
        Severity::Critical,
        (read.at, read.at + 5 * SEC),
    );
    it.request_id = Some(read.request_id);
    it.path = Some(path.clone());
    it.description = format!("the copied token reads {path}");
    items.push(it);
    let mut end = x.t;
    lines.extend(x.into_lines());

    // ESO rescheduled: the pod on its new node logs in again and reads a new
    // ExternalSecret's secret (a path no cadence has learned).
    let t = r.pick(&w.tenants).clone();
    let eso = eso_identity(seed, &t);
    let mut old_addr = pod_address(r);
    let mut new_addr = pod_address(r);
    while new_addr.rsplit_once('.').map(|p| p.0) == old_addr.rsplit_once('.').map(|p| p.0) {
        old_addr = pod_address(r);
        new_addr = pod_address(r);
    }
    let bootstrap = kv_path(&t, "bootstrap");
    for (n, addr) in [old_addr, new_addr].into_iter().enumerate() {
        let mut p = Script::new(w, at + MIN + n as i64 * 10 * MIN, addr, r);
        if let Some(tk) = p.k8s_login(r, &eso).issued {
            p.kv_read(r, &tk, &bootstrap, &["token"], 1, super::vault::Outcome::Ok);
        }
        end = end.max(p.t);
        lines.extend(p.into_lines());
    }
    lines.sort_by_key(|l| l.t);
    Planted {
        lines,
        items,
        span: (at, end),
    }
}

/// One audit entry written by hand (the wrapping entries the script does not make).
fn entry(
    w: &World,
    t: i64,
    kind: &'static str,
    auth: J,
    request: J,
    response: Option<J>,
    error: Option<&str>,
) -> Line {
    let mut e = vec![
        ("time", J::s(go_time(t))),
        ("type", J::s(kind)),
        ("auth", auth),
        ("request", request),
    ];
    if let Some(r) = response {
        e.push(("response", r));
    }
    if let Some(msg) = error {
        e.push(("error", J::s(msg)));
    }
    let salt = (!w.raw_at(t)).then_some(&w.salt);
    Line {
        t,
        text: J::Obj(e).to_line(salt),
    }
}

/// A `sys/wrapping/unwrap` request with the wrapping token in `X-Vault-Token`.
fn unwrap_request(
    w: &World,
    id: &str,
    token: &str,
    accessor: Option<&str>,
    addr: &str,
    port: u16,
) -> J {
    let sys = w.mount(MountKind::System);
    let mut q = vec![
        ("id", J::s(id)),
        ("operation", J::s("update")),
        ("mount_point", J::s(sys.point)),
        ("mount_type", J::s(sys.kind)),
        ("mount_class", J::s(sys.class)),
        ("client_token", w.hmac(token)),
    ];
    if let Some(a) = accessor {
        q.push(("client_token_accessor", w.hmac(a)));
    }
    q.extend([
        ("namespace", J::Obj(vec![("id", J::s("root"))])),
        ("path", J::s("sys/wrapping/unwrap")),
        ("remote_address", J::s(addr)),
        ("remote_port", J::Int(port as i64)),
    ]);
    J::Obj(q)
}

/// The wrapping token itself, as the `auth` of its own unwrap.
fn wrapping_auth(w: &World, token: &str, accessor: &str, created: i64) -> J {
    J::Obj(vec![
        ("accessor", w.hmac(accessor)),
        ("client_token", w.hmac(token)),
        ("display_name", J::s("token")),
        ("policies", J::Arr(vec![J::s("response-wrapping")])),
        ("policy_results", J::Obj(vec![("allowed", J::Bool(true))])),
        ("remaining_uses", J::Int(1)),
        ("token_issue_time", J::s(go_time(created))),
        ("token_policies", J::Arr(vec![J::s("response-wrapping")])),
        ("token_ttl", J::Int(300)),
        ("token_type", J::s("service")),
    ])
}

/// A wrapped read of `path` by the Composition (`X-Vault-Wrap-TTL`): its lines, the
/// wrapping token and its accessor (raw), and when the response was written.
fn wrapped_read(
    r: &mut Rng,
    s: &mut Script<'_>,
    tok: &super::vault::Token,
    path: &str,
) -> (String, String, i64) {
    let token = format!("s.{}", r.hex(12));
    let accessor = r.hex(12);
    s.call(
        r,
        super::vault::Call::new(Some(tok), "read", path, MountKind::Kv),
    );
    (token, accessor, s.t)
}

/// Put `wrap_info` on the last response line of `lines` (a read made with no data: the
/// secret is in the wrapping token's cubbyhole, not in the response).
fn add_wrap_info(w: &World, lines: &mut [Line], token: &str, accessor: &str, path: &str) {
    let Some(last) = lines
        .iter_mut()
        .rev()
        .find(|l| l.text.contains("\"type\":\"response\""))
    else {
        return;
    };
    let salt = (!w.raw_at(last.t)).then_some(&w.salt);
    let info = J::Obj(vec![
        ("ttl", J::Int(300)),
        ("token", w.hmac(token)),
        ("accessor", w.hmac(accessor)),
        ("creation_time", J::s(go_time(last.t - 40 * MS / 1000))),
        ("creation_path", J::s(path)),
    ])
    .to_line(salt);
    // The response object closes the entry: `...}}`.
    if last.text.ends_with("}}") {
        let cut = last.text.len() - 2;
        last.text = format!("{},\"wrap_info\":{info}}}}}", &last.text[..cut]);
    }
}

/// The Composition wraps a tenant's bootstrap secret for the tenant's deploy job; an
/// interceptor unwraps it first from outside, and the recipient's unwrap fails
/// (critical). Beside it, another wrapped secret is unwrapped once by its recipient:
/// quiet.
pub fn wrapping_interception(seed: u64, w: &World, r: &mut Rng, at: i64) -> Planted {
    let who = composition_identity(seed);
    let home = pod_address(r);
    let mut s = Script::new(w, at, home.clone(), r);
    let mut items = Vec::new();
    let Some(tok) = s.k8s_login(r, &who).issued else {
        return Planted {
            lines: s.into_lines(),
            items,
            span: (at, at + SEC),
        };
    };
    let tenant = r.pick(&w.tenants).clone();
    let victim = kv_path(&tenant, "bootstrap");
    let (wt1, wa1, made1) = wrapped_read(r, &mut s, &tok, &victim);
    let mut composition = s.into_lines();
    add_wrap_info(w, &mut composition, &wt1, &wa1, &victim);
    // The same pod, a little later (its token is used from where it was issued).
    let mut s = Script::new(w, made1 + r.range(5 * SEC, 20 * SEC), home, r);
    let other_tenant = r.pick(&w.tenants).clone();
    let other = kv_path(&other_tenant, "bootstrap");
    let (wt2, wa2, made2) = wrapped_read(r, &mut s, &tok, &other);
    let mut second = s.into_lines();
    add_wrap_info(w, &mut second, &wt2, &wa2, &other);
    let mut lines = composition;
    lines.extend(second);

    // The interceptor, then the recipient.
    let t1 = made1 + r.range(10 * SEC, 60 * SEC);
    let thief = outside_address(r);
    let id = r.uuid();
    let port = r.range(32_768, 61_000) as u16;
    let q = unwrap_request(w, &id, &wt1, Some(&wa1), &thief, port);
    let a = wrapping_auth(w, &wt1, &wa1, made1);
    lines.push(entry(w, t1, "request", a.clone(), q.clone(), None, None));
    lines.push(entry(
        w,
        t1 + 900_000,
        "response",
        a,
        q,
        Some(J::Obj(vec![
            ("mount_type", J::s("system")),
            (
                "data",
                J::Obj(vec![("token", w.hmac(&format!("{victim}#token#1")))]),
            ),
        ])),
        None,
    ));
    let t2 = t1 + r.range(30 * SEC, 3 * MIN);
    let pod = pod_address(r);
    let id2 = r.uuid();
    let port = r.range(32_768, 61_000) as u16;
    lines.push(entry(
        w,
        t2,
        "request",
        J::Obj(vec![
            ("client_token", w.hmac(&wt1)),
            ("token_type", J::s("default")),
        ]),
        unwrap_request(w, &id2, &wt1, None, &pod, port),
        None,
        Some(INVALID_WRAPPING_TOKEN),
    ));
    let mut it = Item::new(
        Injection::WrappingInterception,
        "wrapping_interception",
        Severity::Critical,
        (t2, t2 + 5 * SEC),
    );
    it.request_id = Some(id2);
    it.evidence_kind = Some("intercepted");
    it.description = format!(
        "the wrapped {victim} is unwrapped from {thief} at {}; the recipient's unwrap from \
         {pod} fails at {}",
        go_time(t1),
        go_time(t2)
    );
    items.push(it);

    // The look-alike: unwrapped once, by its recipient.
    let t3 = made2 + r.range(10 * SEC, 60 * SEC);
    let id3 = r.uuid();
    let pod = pod_address(r);
    let port = r.range(32_768, 61_000) as u16;
    let q = unwrap_request(w, &id3, &wt2, Some(&wa2), &pod, port);
    let a = wrapping_auth(w, &wt2, &wa2, made2);
    lines.push(entry(w, t3, "request", a.clone(), q.clone(), None, None));
    lines.push(entry(
        w,
        t3 + 800_000,
        "response",
        a,
        q,
        Some(J::Obj(vec![("mount_type", J::s("system"))])),
        None,
    ));
    let end = lines.iter().map(|l| l.t).max().unwrap_or(at) + SEC;
    lines.sort_by_key(|l| l.t);
    Planted {
        lines,
        items,
        span: (at, end),
    }
}
