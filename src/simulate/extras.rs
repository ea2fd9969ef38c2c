//! The traffic of the extra detections' injections (root token, audit devices, policy
//! drift, auth/mount changes, `sys/raw`, generate-root, enumeration, failed-login bursts,
//! mass revocation): each a pre-rendered episode with the answer-key items a correct
//! detector reports for it. [`super::inject::plan`] chooses the time; the silent stream
//! and the `log_raw` window are device states, planned there.
//!
//! Invariants: every episode is realistic client behaviour (a session logs in and looks
//! around before acting; attackers come from addresses the platform never uses:
//! `203.0.113.0/24`, `198.18.0.0/15`); it triggers exactly the findings its items
//! describe and nothing else (human admins act in business hours, so no
//! `after_hours_admin`; the root session only reads, so no drift or mount change; the
//! stolen token belongs to a tenant-less developer, so no `cross_tenant_read`); two
//! findings of one category in one episode are separated in time, so each item's window
//! holds its own alert only.

use std::rc::Rc;

use super::actors::{
    admin_chore, ci_identity, ci_login, human_address, human_identity, human_login, kv_path,
    runner_address, ADMINS, DEVELOPER, HOUR, MIN,
};
use super::item::Item;
use super::json::J;
use super::rng::{Rng, ALNUM};
use super::vault::{
    go_time, Call, Cost, Identity, Line, MountKind, Outcome, Script, Token, World, MS, SEC,
};
use super::Injection;
use crate::alert::Severity;

/// One planted episode: its lines (time-ordered), its answer items, the span it covers.
pub struct Planted {
    pub lines: Vec<Line>,
    pub items: Vec<Item>,
    pub span: (i64, i64),
}

impl Planted {
    /// What a script planted from `at` to where it ended.
    fn from_script(at: i64, s: Script<'_>, items: Vec<Item>) -> Planted {
        Planted {
            span: (at, s.t),
            lines: s.into_lines(),
            items,
        }
    }
}

/// Upper bounds of each episode's length, for choosing a free slot before rendering.
pub const ROOT_LEN: i64 = 9 * MIN;
pub const ADMIN_LEN: i64 = 14 * MIN;
pub const GENERATE_ROOT_LEN: i64 = 4 * MIN;
pub const ENUMERATION_LEN: i64 = 8 * MIN;
pub const LOGIN_FAILURES_LEN: i64 = 18 * MIN;
pub const MASS_REVOCATION_LEN: i64 = 16 * MIN;

/// An address off the platform: a VPN exit, a cloud VM.
fn outside_address(r: &mut Rng) -> String {
    format!("203.0.113.{}", r.range(2, 254))
}

fn item(inj: Injection, category: &'static str, min: Severity, window: (i64, i64)) -> Item {
    Item::new(inj, category, min, window)
}

/// An admin's session in business hours: log in from their usual laptop and look around
/// (one to three read-only chores) before doing what the injection is about.
fn admin_session<'w>(
    seed: u64,
    w: &'w World,
    r: &mut Rng,
    at: i64,
) -> Option<(Script<'w>, Token, Rc<Identity>)> {
    let i = r.below(ADMINS.len() as u64) as usize;
    let human = ADMINS[i].clone();
    let who = human_identity(seed, &human);
    let mut s = Script::new(w, at, human_address(seed, &human, i), r);
    let tok = human_login(&mut s, r, &who, human.name)?;
    for _ in 0..r.range(1, 3) {
        let think = r.range(5 * SEC, 40 * SEC);
        s.pause(think);
        s.reconnect(r);
        admin_chore(&mut s, r, &tok, &w.tenants, seed);
    }
    Some((s, tok, who))
}

fn think(s: &mut Script<'_>, r: &mut Rng, lo: i64, hi: i64) {
    let t = r.range(lo, hi);
    s.pause(t);
    s.reconnect(r);
}

/// The root token: no entity, no expiry, the `root` policy.
pub fn root_identity() -> Rc<Identity> {
    Rc::new(Identity::new(
        "root",
        &["root"],
        &[],
        String::new(),
        0,
        MountKind::Token,
    ))
}

/// A root token generated earlier (break-glass, never revoked) used from outside: the
/// holder looks up the token, then reads mounts, auth methods, policies and a tenant's
/// database secret. Reads only; one session, one alert.
pub fn root_session(w: &World, r: &mut Rng, at: i64) -> Planted {
    let issued = at - r.range(20 * MIN, 6 * HOUR);
    let tok = Token::mint(r, root_identity(), issued);
    let addr = outside_address(r);
    let mut s = Script::new(w, at, addr.clone(), r);
    let first = s.lookup_self(r, &tok);
    let tenant = r.pick(&w.tenants).clone();
    let steps = r.range(4, 7);
    for i in 0..steps {
        think(&mut s, r, 8 * SEC, 70 * SEC);
        let call = match i % 6 {
            0 => Call::new(Some(&tok), "read", "sys/mounts", MountKind::System).resp(J::Obj(vec![
                ("database/", J::Obj(vec![("type", w.hmac("database"))])),
                ("secret/", J::Obj(vec![("type", w.hmac("kv"))])),
            ])),
            1 => Call::new(Some(&tok), "list", "sys/policies/acl", MountKind::System).resp(J::Obj(
                vec![(
                    "keys",
                    J::Arr(
                        ["bookstore-platform-admin", "default", "root"]
                            .iter()
                            .map(|p| w.hmac(p))
                            .collect(),
                    ),
                )],
            )),
            2 => Call::new(
                Some(&tok),
                "read",
                "sys/policies/acl/bookstore-platform-admin",
                MountKind::System,
            )
            .resp(J::Obj(vec![
                ("name", w.hmac("bookstore-platform-admin")),
                ("policy", w.hmac("path \"*\" { capabilities = [\"sudo\"] }")),
            ])),
            3 => {
                let path = kv_path(&tenant, "db");
                s.kv_read(
                    r,
                    &tok,
                    &path,
                    &["host", "password", "username"],
                    3,
                    Outcome::Ok,
                );
                continue;
            }
            4 => Call::new(Some(&tok), "read", "sys/auth", MountKind::System).resp(J::Obj(vec![
                ("kubernetes/", J::Obj(vec![("type", w.hmac("kubernetes"))])),
                ("oidc/", J::Obj(vec![("type", w.hmac("oidc"))])),
            ])),
            _ => Call::new(
                Some(&tok),
                "list",
                "auth/kubernetes/role",
                MountKind::Kubernetes,
            ),
        };
        s.call(r, call);
    }
    let end = s.t;
    let mut it = item(
        Injection::RootTokenUse,
        "root_token_use",
        Severity::High,
        (first.at, first.at + 5 * SEC),
    );
    it.request_id = Some(first.request_id);
    it.description = format!(
        "a root token is used from {addr} at {}: lookup-self, then {steps} reads of the \
         platform's configuration and {tenant}'s database secret",
        go_time(at)
    );
    Planted {
        lines: s.into_lines(),
        items: vec![it],
        span: (at, end),
    }
}

/// `sys/audit` as an admin reads it: the file device auditwatch reads and the SIEM's
/// socket device (until it is disabled).
fn audit_devices(w: &World, siem: bool) -> J {
    let mut v = vec![(
        "file/".to_string(),
        J::Obj(vec![
            ("description", w.hmac("")),
            ("local", J::Bool(false)),
            (
                "options",
                J::Obj(vec![("file_path", w.hmac("/openbao/audit/audit.log"))]),
            ),
            ("path", w.hmac("file/")),
            ("type", w.hmac("file")),
        ]),
    )];
    if siem {
        v.push((
            "siem/".to_string(),
            J::Obj(vec![
                ("description", w.hmac("SIEM forwarder")),
                ("local", J::Bool(false)),
                (
                    "options",
                    J::Obj(vec![
                        ("address", w.hmac("siem-forwarder.logging.svc:9090")),
                        ("socket_type", w.hmac("tcp")),
                    ]),
                ),
                ("path", w.hmac("siem/")),
                ("type", w.hmac("socket")),
            ]),
        ));
    }
    J::Map(v)
}

/// An admin disables the SIEM's socket device: the central copy of the trail stops while
/// the local file (what auditwatch reads) keeps writing.
pub fn audit_disable(seed: u64, w: &World, r: &mut Rng, at: i64) -> Option<Planted> {
    let (mut s, tok, who) = admin_session(seed, w, r, at)?;
    think(&mut s, r, 10 * SEC, 60 * SEC);
    s.call(
        r,
        Call::new(Some(&tok), "read", "sys/audit", MountKind::System).resp(audit_devices(w, true)),
    );
    think(&mut s, r, 15 * SEC, 90 * SEC);
    let made = s.call(
        r,
        Call::new(Some(&tok), "delete", "sys/audit/siem", MountKind::System).cost(Cost::Write),
    );
    think(&mut s, r, 5 * SEC, 30 * SEC);
    s.call(
        r,
        Call::new(Some(&tok), "read", "sys/audit", MountKind::System).resp(audit_devices(w, false)),
    );
    let mut it = item(
        Injection::AuditDeviceDisable,
        "audit_device_change",
        Severity::Critical,
        (made.at, made.at + 5 * SEC),
    );
    it.request_id = Some(made.request_id);
    it.path = Some("sys/audit/siem".into());
    it.description = format!(
        "{} disables the SIEM's audit device (delete sys/audit/siem) at {}",
        who.display_name,
        go_time(made.at)
    );
    Some(Planted::from_script(at, s, vec![it]))
}

/// An admin enables a socket audit device that streams every entry to a host off the
/// platform. Vault's probe entry (`sys/audit/test`) goes to the new device only, so the
/// existing stream shows the enable request alone.
pub fn audit_enable(seed: u64, w: &World, r: &mut Rng, at: i64) -> Option<Planted> {
    let (mut s, tok, who) = admin_session(seed, w, r, at)?;
    think(&mut s, r, 10 * SEC, 60 * SEC);
    s.call(
        r,
        Call::new(Some(&tok), "read", "sys/audit", MountKind::System).resp(audit_devices(w, true)),
    );
    think(&mut s, r, 20 * SEC, 120 * SEC);
    let sink = format!("203.0.113.{}:9090", r.range(2, 254));
    let made = s.call(
        r,
        Call::new(Some(&tok), "update", "sys/audit/socket", MountKind::System)
            .cost(Cost::Write)
            .data(J::Obj(vec![
                ("description", w.hmac("")),
                ("local", J::Bool(false)),
                (
                    "options",
                    J::Obj(vec![
                        ("address", w.hmac(&sink)),
                        ("socket_type", w.hmac("tcp")),
                    ]),
                ),
                ("type", w.hmac("socket")),
            ])),
    );
    let mut it = item(
        Injection::AuditDeviceEnable,
        "audit_device_change",
        Severity::High,
        (made.at, made.at + 5 * SEC),
    );
    it.request_id = Some(made.request_id);
    it.path = Some("sys/audit/socket".into());
    it.description = format!(
        "{} enables a socket audit device streaming to {sink} at {}",
        who.display_name,
        go_time(made.at)
    );
    Some(Planted::from_script(at, s, vec![it]))
}

/// A tenant policy widened by someone other than the Composition: an admin in the UI, or
/// the infrastructure repository's Terraform job.
pub fn policy_drift(seed: u64, w: &World, r: &mut Rng, at: i64, tenant: &str) -> Option<Planted> {
    let by_ci = r.chance(0.5);
    let (mut s, tok, who) = if by_ci {
        let who = ci_identity(seed, "bookstore/platform-infra", "terraform-apply");
        let mut s = Script::new(w, at, runner_address(r), r);
        let tok = ci_login(&mut s, r, &who)?;
        s.lookup_self(r, &tok);
        (s, tok, who)
    } else {
        admin_session(seed, w, r, at)?
    };
    let name = format!("bookstore-platform-app-{tenant}");
    let path = format!("sys/policies/acl/{name}");
    let body = format!(
        "path \"secret/data/bookstore-platform/{tenant}/*\" {{ capabilities = [\"read\"] }}\n\
         path \"database/creds/bookstore-platform-{tenant}\" {{ capabilities = [\"read\"] }}\n"
    );
    think(&mut s, r, 5 * SEC, 40 * SEC);
    s.call(
        r,
        Call::new(Some(&tok), "read", path.clone(), MountKind::System).resp(J::Obj(vec![
            ("name", w.hmac(&name)),
            ("policy", w.hmac(&body)),
        ])),
    );
    think(&mut s, r, 20 * SEC, 150 * SEC);
    // The widened policy: every tenant's secrets.
    let widened = format!("{body}path \"secret/data/bookstore-platform/*\" {{ capabilities = [\"read\", \"list\"] }}\n");
    let made = s.call(
        r,
        Call::new(Some(&tok), "update", path.clone(), MountKind::System)
            .cost(Cost::Write)
            .data(J::Obj(vec![("policy", w.hmac(&widened))])),
    );
    let mut it = item(
        Injection::PolicyDrift,
        "policy_drift",
        Severity::High,
        (made.at, made.at + 5 * SEC),
    );
    it.target_tenant = Some(tenant.to_string());
    it.request_id = Some(made.request_id);
    it.path = Some(path.clone());
    it.description = format!(
        "{} rewrites {path} (widened to every tenant's secrets) at {}",
        who.display_name,
        go_time(made.at)
    );
    Some(Planted::from_script(at, s, vec![it]))
}

/// An admin enables a second userpass auth method (a way in nobody reviewed).
pub fn auth_enable(seed: u64, w: &World, r: &mut Rng, at: i64) -> Option<Planted> {
    let (mut s, tok, who) = admin_session(seed, w, r, at)?;
    let auth_table = |with_new: bool| {
        let mut v = vec![
            ("jwt/".to_string(), J::Obj(vec![("type", w.hmac("jwt"))])),
            (
                "kubernetes/".to_string(),
                J::Obj(vec![("type", w.hmac("kubernetes"))]),
            ),
            ("oidc/".to_string(), J::Obj(vec![("type", w.hmac("oidc"))])),
            (
                "token/".to_string(),
                J::Obj(vec![("type", w.hmac("token"))]),
            ),
            (
                "userpass/".to_string(),
                J::Obj(vec![("type", w.hmac("userpass"))]),
            ),
        ];
        if with_new {
            v.push((
                "userpass2/".to_string(),
                J::Obj(vec![("type", w.hmac("userpass"))]),
            ));
        }
        J::Map(v)
    };
    think(&mut s, r, 10 * SEC, 60 * SEC);
    s.call(
        r,
        Call::new(Some(&tok), "read", "sys/auth", MountKind::System).resp(auth_table(false)),
    );
    think(&mut s, r, 15 * SEC, 90 * SEC);
    // What `bao auth enable -path=userpass2 userpass` sends (real OpenBao 2.7.2 shape).
    let made = s.call(
        r,
        Call::new(
            Some(&tok),
            "update",
            "sys/auth/userpass2",
            MountKind::System,
        )
        .cost(Cost::Write)
        .data(J::Obj(vec![
            (
                "config",
                J::Obj(vec![
                    ("default_lease_ttl", w.hmac("0s")),
                    ("force_no_cache", J::Bool(false)),
                    ("max_lease_ttl", w.hmac("0s")),
                    ("options", J::Null),
                ]),
            ),
            ("description", w.hmac("")),
            ("external_entropy_access", J::Bool(false)),
            ("local", J::Bool(false)),
            ("options", J::Null),
            ("seal_wrap", J::Bool(false)),
            ("type", w.hmac("userpass")),
        ])),
    );
    think(&mut s, r, 5 * SEC, 30 * SEC);
    s.call(
        r,
        Call::new(Some(&tok), "read", "sys/auth", MountKind::System).resp(auth_table(true)),
    );
    let mut it = item(
        Injection::AuthOrMountChange,
        "auth_or_mount_change",
        Severity::High,
        (made.at, made.at + 5 * SEC),
    );
    it.request_id = Some(made.request_id);
    it.path = Some("sys/auth/userpass2".into());
    it.description = format!(
        "{} enables a second userpass auth method at sys/auth/userpass2 at {}",
        who.display_name,
        go_time(made.at)
    );
    Some(Planted::from_script(at, s, vec![it]))
}

/// An admin reads Vault's storage beneath the barrier (the platform left
/// `raw_storage_endpoint` on after a migration): a listing, then the keyring.
pub fn sys_raw(seed: u64, w: &World, r: &mut Rng, at: i64) -> Option<Planted> {
    let (mut s, tok, who) = admin_session(seed, w, r, at)?;
    think(&mut s, r, 10 * SEC, 60 * SEC);
    let keys: Vec<J> = (0..3).map(|_| w.hmac(&format!("{}/", r.uuid()))).collect();
    let first = s.call(
        r,
        Call::new(Some(&tok), "list", "sys/raw/logical/", MountKind::System)
            .resp(J::Obj(vec![("keys", J::Arr(keys))])),
    );
    think(&mut s, r, 10 * SEC, 45 * SEC);
    let value = r.hex(64);
    let last = s.call(
        r,
        Call::new(
            Some(&tok),
            "read",
            "sys/raw/core/keyring",
            MountKind::System,
        )
        .resp(J::Obj(vec![("value", w.hmac(&value))])),
    );
    let mut it = item(
        Injection::SysRawAccess,
        "sys_raw_access",
        Severity::Critical,
        (first.at, last.at + 5 * SEC),
    );
    it.description = format!(
        "{} lists sys/raw/logical/ and reads sys/raw/core/keyring at {}",
        who.display_name,
        go_time(first.at)
    );
    Some(Planted::from_script(at, s, vec![it]))
}

/// The raw HTTP headers Vault records for `sys/generate-root` responses.
fn generate_root_headers() -> J {
    let one = |v: &str| J::Arr(vec![J::s(v)]);
    J::Obj(vec![
        ("Cache-Control", one("no-store")),
        ("Content-Type", one("application/json")),
        (
            "Strict-Transport-Security",
            one("max-age=31536000; includeSubDomains"),
        ),
    ])
}

/// A generate-root attempt from outside: started (the server makes the OTP), its status
/// read, then advanced with one unseal key share (progress 1 of 3). Unauthenticated
/// endpoints: no `auth`, no mount fields (real Vault 1.17.6 shape).
pub fn generate_root(w: &World, r: &mut Rng, at: i64) -> Planted {
    let addr = outside_address(r);
    let mut s = Script::new(w, at, addr.clone(), r);
    let nonce = r.uuid();
    let otp = r.token(ALNUM, 26);
    let status = |otp: &str, otp_len: &str, progress: &str| {
        J::Obj(vec![
            ("complete", J::Bool(false)),
            ("encoded_root_token", w.hmac("")),
            ("encoded_token", w.hmac("")),
            ("nonce", w.hmac(&nonce)),
            ("otp", w.hmac(otp)),
            ("otp_length", w.hmac(otp_len)),
            ("pgp_fingerprint", w.hmac("")),
            ("progress", w.hmac(progress)),
            ("required", w.hmac("3")),
            ("started", J::Bool(true)),
        ])
    };
    let first = s.call(
        r,
        Call::new(
            None,
            "update",
            "sys/generate-root/attempt",
            MountKind::System,
        )
        .cost(Cost::Write)
        .data(J::Obj(vec![("otp", w.hmac("")), ("pgp_key", w.hmac(""))]))
        .resp(status(&otp, "26", "0"))
        .bare(generate_root_headers()),
    );
    think(&mut s, r, 4 * SEC, 30 * SEC);
    s.call(
        r,
        Call::new(None, "read", "sys/generate-root/attempt", MountKind::System)
            .resp(status("", "26", "0"))
            .bare(generate_root_headers()),
    );
    think(&mut s, r, 5 * SEC, 60 * SEC);
    let share = r.hex(66);
    let last = s.call(
        r,
        Call::new(
            None,
            "update",
            "sys/generate-root/update",
            MountKind::System,
        )
        .cost(Cost::Write)
        .data(J::Obj(vec![
            ("key", w.hmac(&share)),
            ("nonce", w.hmac(&nonce)),
        ]))
        .resp(status("", "0", "1"))
        .bare(generate_root_headers()),
    );
    let mut it = item(
        Injection::GenerateRoot,
        "generate_root",
        Severity::Critical,
        (first.at, last.at + 5 * SEC),
    );
    it.description = format!(
        "a generate-root attempt is started from {addr} at {}, its status read, then \
         advanced with one key share",
        go_time(at)
    );
    Planted {
        span: (at, s.t),
        lines: s.into_lines(),
        items: vec![it],
    }
}

const GUESS_DIRS: [&str; 8] = [
    "prod",
    "staging",
    "infra",
    "ci",
    "legacy",
    "ops",
    "backup",
    "terraform",
];
const GUESS_NAMES: [&str; 16] = [
    "db",
    "database",
    "postgres",
    "admin",
    "root",
    "aws",
    "gcp",
    "stripe",
    "github",
    "gitlab",
    "slack",
    "smtp",
    "ssh",
    "tls",
    "jwt-signing",
    "api-keys",
];
/// The shared secrets the developers' policy may read.
const SHARED: [&str; 3] = ["registry", "feature-flags", "sentry"];

/// LISTs in the storm: above the rule's 30 in 60 s.
pub const ENUM_LISTS: usize = 42;
/// Distinct paths read afterwards: above the rule's 100 in 5 minutes.
pub const ENUM_READS: usize = 120;

fn shuffle<T>(r: &mut Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = r.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// A developer's OIDC token, copied from a laptop, used from outside: first a LIST walk
/// of the KV tree (42 LISTs in under a minute), then a harvest of 120 distinct paths in
/// about three minutes (the few shared secrets it may read, guessed names that do not
/// exist, other tenants' secrets it is denied).
pub fn enumeration(seed: u64, w: &World, r: &mut Rng, at: i64) -> Planted {
    let who = human_identity(seed, &DEVELOPER);
    let issued = at - r.range(5 * MIN, 40 * MIN);
    let tok = Token::mint(r, who.clone(), issued);
    let addr = outside_address(r);
    let mut s = Script::new(w, at, addr.clone(), r);
    let tenant_dir = |t: &str| format!("secret/metadata/bookstore-platform/{t}/");
    let mut lists: Vec<(String, Outcome, Option<J>)> = vec![
        (
            "secret/metadata/".into(),
            Outcome::Ok,
            Some(J::Obj(vec![(
                "keys",
                J::Arr(vec![w.hmac("bookstore-platform/"), w.hmac("shared/")]),
            )])),
        ),
        (
            "secret/metadata/shared/".into(),
            Outcome::Ok,
            Some(J::Obj(vec![(
                "keys",
                J::Arr(SHARED.iter().map(|n| w.hmac(n)).collect()),
            )])),
        ),
        (
            "secret/metadata/bookstore-platform/".into(),
            Outcome::Denied,
            None,
        ),
    ];
    for t in &w.tenants {
        lists.push((tenant_dir(t), Outcome::Denied, None));
    }
    let mut guesses: Vec<String> = GUESS_DIRS
        .iter()
        .flat_map(|d| {
            std::iter::once(format!("secret/metadata/{d}/")).chain(
                GUESS_NAMES
                    .iter()
                    .map(move |n| format!("secret/metadata/{d}/{n}/")),
            )
        })
        .collect();
    shuffle(r, &mut guesses);
    lists.truncate(ENUM_LISTS);
    for g in guesses
        .into_iter()
        .take(ENUM_LISTS.saturating_sub(lists.len()))
    {
        lists.push((g, Outcome::Ok, None));
    }
    let p1 = s.t;
    for (path, outcome, data) in lists {
        let mut c = Call::new(Some(&tok), "list", path, MountKind::Kv).outcome(outcome);
        if let Some(d) = data {
            c = c.resp(d);
        }
        s.call(r, c);
        let wait = r.range(400 * MS, 1_100 * MS);
        s.pause(wait);
    }
    let p1_end = s.t;
    let mut list_item = item(
        Injection::Enumeration,
        "enumeration",
        Severity::Warning,
        (p1, p1_end + SEC),
    );
    list_item.description = format!(
        "{} (a stolen token, from {addr}) LISTs {ENUM_LISTS} KV paths in under a minute \
         at {}",
        who.display_name,
        go_time(p1)
    );

    think(&mut s, r, 20 * SEC, 60 * SEC);
    let mut reads: Vec<(String, Outcome)> = SHARED
        .iter()
        .map(|n| (format!("secret/data/shared/{n}"), Outcome::Ok))
        .collect();
    for t in &w.tenants {
        for n in ["db", "app"] {
            reads.push((kv_path(t, n), Outcome::Denied));
        }
    }
    let mut guessed: Vec<String> = GUESS_DIRS
        .iter()
        .chain(["shared"].iter())
        .flat_map(|d| {
            GUESS_NAMES
                .iter()
                .map(move |n| format!("secret/data/{d}/{n}"))
        })
        .collect();
    shuffle(r, &mut guessed);
    reads.truncate(ENUM_READS);
    for g in guessed
        .into_iter()
        .take(ENUM_READS.saturating_sub(reads.len()))
    {
        reads.push((g, Outcome::Ok));
    }
    shuffle(r, &mut reads);
    let p2 = s.t;
    for (path, outcome) in reads {
        if outcome == Outcome::Ok && path.starts_with("secret/data/shared/") {
            let known = SHARED.iter().any(|n| path.ends_with(n));
            if known {
                s.kv_read(r, &tok, &path, &["token"], 2, Outcome::Ok);
            } else {
                // A secret that does not exist: 404, no data.
                s.call(r, Call::new(Some(&tok), "read", path, MountKind::Kv));
            }
        } else if outcome == Outcome::Denied {
            s.kv_read(r, &tok, &path, &[], 1, Outcome::Denied);
        } else {
            s.call(r, Call::new(Some(&tok), "read", path, MountKind::Kv));
        }
        let wait = r.range(600 * MS, 1_500 * MS);
        s.pause(wait);
    }
    let p2_end = s.t;
    let mut read_item = item(
        Injection::Enumeration,
        "enumeration",
        Severity::High,
        (p2, p2_end + SEC),
    );
    read_item.description = format!(
        "the same token reads {ENUM_READS} distinct paths from {} to {}",
        go_time(p2),
        go_time(p2_end)
    );
    Planted {
        span: (at, s.t),
        lines: s.into_lines(),
        items: vec![list_item, read_item],
    }
}

const SPRAY_USERS: [&str; 16] = [
    "admin",
    "root",
    "vault",
    "ops",
    "deploy",
    "jenkins",
    "backup",
    "terraform",
    "test",
    "alice",
    "bob",
    "carol",
    "dave",
    "svc-ci",
    "monitoring",
    "support",
];

/// The userpass message OpenBao returns for a wrong user or password.
const BAD_PASSWORD: &str = "invalid username or password";

fn failed_login(s: &mut Script<'_>, r: &mut Rng, user: &str, guess: &str) -> i64 {
    let w = s.world();
    s.call(
        r,
        Call::new(
            None,
            "update",
            format!("auth/userpass/login/{user}"),
            MountKind::Userpass,
        )
        .data(J::Obj(vec![("password", w.hmac(guess))]))
        .cost(Cost::Login)
        .outcome(Outcome::Rejected(BAD_PASSWORD)),
    )
    .at
}

/// Password spraying from one address (20 userpass logins over 16 user names in about
/// two minutes), then, ten minutes later, a distributed guess at bob's password from
/// fourteen addresses (one attempt each).
pub fn login_failures(w: &World, r: &mut Rng, at: i64) -> Planted {
    let addr = outside_address(r);
    let mut spray = Script::new(w, at, addr.clone(), r);
    let mut users: Vec<&str> = SPRAY_USERS.to_vec();
    shuffle(r, &mut users);
    let extra: Vec<&str> = users[..4].to_vec();
    users.extend(extra);
    for (i, u) in users.iter().enumerate() {
        spray.reconnect(r);
        failed_login(&mut spray, r, u, &format!("Winter2026!{}", i % 3));
        let wait = r.range(3 * SEC, 8 * SEC);
        spray.pause(wait);
    }
    let spray_end = spray.t;
    let mut a = item(
        Injection::LoginFailureBurst,
        "login_failure_burst",
        Severity::High,
        (at, spray_end + SEC),
    );
    a.description = format!(
        "password spraying from {addr}: {} failed userpass logins over {} user names from \
         {}",
        users.len(),
        SPRAY_USERS.len(),
        go_time(at)
    );

    let mut lines = spray.into_lines();
    let d0 = spray_end + r.range(8 * MIN, 11 * MIN);
    let mut t = d0;
    let n = r.range(13, 16);
    let mut last = t;
    for _ in 0..n {
        let bot = format!("198.18.{}.{}", r.range(0, 256), r.range(1, 255));
        let mut s = Script::new(w, t, bot, r);
        let guess = r.hex(10);
        last = failed_login(&mut s, r, "bob", &guess);
        lines.extend(s.into_lines());
        t += r.range(8 * SEC, 18 * SEC);
    }
    lines.sort_by_key(|l| l.t);
    let mut b = item(
        Injection::LoginFailureBurst,
        "login_failure_burst",
        Severity::High,
        (d0, last + 5 * SEC),
    );
    b.path = Some("auth/userpass/login/bob".into());
    b.description = format!(
        "a distributed guess at bob's password: {n} failed logins from {n} addresses from {}",
        go_time(d0)
    );
    let end = lines.last().map_or(at, |l| l.t);
    Planted {
        lines,
        items: vec![a, b],
        span: (at, end),
    }
}

/// An admin revokes every database lease of one tenant by prefix, then, minutes later,
/// thirty leases of another one by one from a shell loop.
pub fn mass_revocation(
    seed: u64,
    w: &World,
    r: &mut Rng,
    at: i64,
    prefix_tenant: &str,
    burst_tenant: &str,
) -> Option<Planted> {
    let (mut s, tok, who) = admin_session(seed, w, r, at)?;
    let role = format!("bookstore-platform-{prefix_tenant}");
    think(&mut s, r, 10 * SEC, 60 * SEC);
    let leases: Vec<J> = (0..3).map(|_| w.hmac(&r.token(ALNUM, 24))).collect();
    s.call(
        r,
        Call::new(
            Some(&tok),
            "list",
            format!("sys/leases/lookup/database/creds/{role}/"),
            MountKind::System,
        )
        .resp(J::Obj(vec![("keys", J::Arr(leases))])),
    );
    think(&mut s, r, 15 * SEC, 60 * SEC);
    let path = format!("sys/leases/revoke-prefix/database/creds/{role}");
    let prefix = s.call(
        r,
        Call::new(Some(&tok), "update", path.clone(), MountKind::System).cost(Cost::Write),
    );
    let mut a = item(
        Injection::MassRevocation,
        "mass_revocation",
        Severity::High,
        (prefix.at, prefix.at + 5 * SEC),
    );
    a.request_id = Some(prefix.request_id);
    a.path = Some(path.clone());
    a.description = format!(
        "{} revokes every lease under database/creds/{role} at {}",
        who.display_name,
        go_time(prefix.at)
    );

    think(&mut s, r, 2 * MIN, 4 * MIN);
    let burst_start = s.t;
    for _ in 0..30 {
        let lease = format!(
            "database/creds/bookstore-platform-{burst_tenant}/{}",
            r.token(ALNUM, 24)
        );
        s.call(
            r,
            Call::new(Some(&tok), "update", "sys/leases/revoke", MountKind::System)
                .cost(Cost::Write)
                .data(J::Obj(vec![("lease_id", w.hmac(&lease))])),
        );
        let wait = r.range(200 * MS, 700 * MS);
        s.pause(wait);
    }
    let mut b = item(
        Injection::MassRevocation,
        "mass_revocation",
        Severity::High,
        (burst_start, s.t + SEC),
    );
    b.description = format!(
        "{} revokes 30 leases of {burst_tenant} one by one from {}",
        who.display_name,
        go_time(burst_start)
    );
    Some(Planted::from_script(at, s, vec![a, b]))
}
