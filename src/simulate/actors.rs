//! The clean platform: everyone who talks to Vault on a normal day (platform.md).
//!
//! Each [`Actor`] is one independent client (one ExternalSecret, one SecretStore's
//! validation loop, the Composition, one human, one CI repository, the break-glass
//! CronJob, Prometheus scraping `sys/metrics`). It yields its traffic one episode (a sync, a session, a run) at a time, each
//! episode starting after the previous one ended, so an actor's lines are in time order
//! and the merger only has to interleave actors.
//!
//! Invariants that keep the clean traffic below every rule (checked by tests):
//! - ESO reads a path once per refresh; duplicate reads, retries and re-reconciles all
//!   fall within 25 s of the sync's first read (the engine's duplicate window is 30 s),
//!   and never more than 5 reads of a path in 300 s (too_frequent needs 10).
//! - Dynamic DB credentials are refreshed every 50 min (+ at most a few seconds): below
//!   0.9 x the 1 h lease.
//! - Every ExternalSecret keeps its rhythm to the end of the window (no stale silence).
//! - Humans with admin policies act only Mon-Fri 08:05-18:30 UTC.
//! - CI identities log in and look themselves up; they never read secrets.
//! - Logins are spread out: a few distinct identities per 30 s per ten tenants.
//! - Nobody but the Composition writes tenant policies or roles; nobody touches
//!   `sys/audit/*`, `sys/auth/*`, `sys/mounts/*`, `sys/raw`, `sys/generate-root`, revokes
//!   leases or uses a root token; logins never fail; admins list a handful of paths per
//!   session (the extra detections stay quiet).

use std::rc::Rc;

use super::json::J;
use super::rng::Rng;
use super::vault::{Call, Cost, Identity, Line, MountKind, Outcome, Script, Token, World, MS, SEC};

pub const MIN: i64 = 60 * SEC;
pub const HOUR: i64 = 60 * MIN;
pub const DAY: i64 = 24 * HOUR;

/// One client of Vault.
pub trait Actor {
    /// The next episode's lines, in time order and after every earlier episode's lines;
    /// `None` when the actor has nothing more to do in the window.
    fn next_episode(&mut self, w: &World) -> Option<Vec<Line>>;
}

/// Platform naming (platform.md defaults).
pub fn namespace(tenant: &str) -> String {
    format!("bookstore-platform-{tenant}")
}

pub fn kv_path(tenant: &str, name: &str) -> String {
    format!("secret/data/bookstore-platform/{tenant}/{name}")
}

pub fn db_role(tenant: &str) -> String {
    format!("bookstore-platform-{tenant}")
}

/// A stable entity id per identity name.
pub fn entity_id(seed: u64, display_name: &str) -> String {
    Rng::derive(seed, &format!("entity/{display_name}")).uuid()
}

/// A Kubernetes service-account identity as `auth/kubernetes/login` issues it.
pub fn k8s_identity(
    seed: u64,
    ns: &str,
    sa: &str,
    role: &str,
    policies: &[&str],
    ttl_secs: i64,
) -> Rc<Identity> {
    let display = format!("kubernetes-{ns}-{sa}");
    let uid = Rng::derive(seed, &format!("sa-uid/{ns}/{sa}")).uuid();
    Rc::new(Identity::new(
        display.clone(),
        policies,
        &[
            ("role", role),
            ("service_account_name", sa),
            ("service_account_namespace", ns),
            // Bound (projected) tokens have no secret since Kubernetes 1.24.
            ("service_account_secret_name", ""),
            ("service_account_uid", &uid),
        ],
        entity_id(seed, &display),
        ttl_secs,
        MountKind::Kubernetes,
    ))
}

/// The tenant's External Secrets Operator identity.
pub fn eso_identity(seed: u64, tenant: &str) -> Rc<Identity> {
    let ns = namespace(tenant);
    let policy = format!("bookstore-platform-app-{tenant}");
    k8s_identity(
        seed,
        &ns,
        "bookstore-platform-eso",
        &ns,
        &["default", &policy],
        1200,
    )
}

/// The address of the ESO controller pod (one controller serves every tenant).
pub fn eso_address(seed: u64) -> String {
    let mut r = Rng::derive(seed, "addr/eso");
    format!("10.42.{}.{}", r.range(1, 9), r.range(2, 250))
}

/// A pod address in the cluster network.
pub fn pod_address(r: &mut Rng) -> String {
    format!("10.42.{}.{}", r.range(0, 12), r.range(2, 252))
}

/// Seconds since midnight UTC and the weekday (0 = Monday) of an instant.
pub fn clock(t: i64) -> (i64, u32) {
    let secs = t.div_euclid(SEC);
    let days = secs.div_euclid(86_400);
    // 1970-01-01 was a Thursday.
    (secs.rem_euclid(86_400), (days + 3).rem_euclid(7) as u32)
}

/// Midnight UTC of the day holding `t`.
pub fn midnight(t: i64) -> i64 {
    t.div_euclid(DAY) * DAY
}

impl World {
    /// Local seconds since midnight and weekday (0 = Monday) of an instant.
    pub fn clock(&self, t: i64) -> (i64, u32) {
        clock(t + self.utc_offset * SEC)
    }

    /// Local midnight of the day holding `t`, as a UTC instant.
    pub fn midnight(&self, t: i64) -> i64 {
        midnight(t + self.utc_offset * SEC) - self.utc_offset * SEC
    }

    /// Inside local business hours (Mon-Fri 08:00-19:00).
    pub fn business_hours(&self, t: i64) -> bool {
        let (sod, wd) = self.clock(t);
        wd < 5 && (8 * 3600..19 * 3600).contains(&sod)
    }
}

/// What one ExternalSecret syncs.
#[derive(Clone, Debug)]
pub enum Target {
    Kv {
        path: String,
        keys: Vec<&'static str>,
        version: i64,
    },
    Db {
        role: String,
    },
}

impl Target {
    pub fn path(&self) -> String {
        match self {
            Target::Kv { path, .. } => path.clone(),
            Target::Db { role } => format!("database/creds/{role}"),
        }
    }
}

/// Knobs of one ExternalSecret's behaviour.
#[derive(Clone, Debug)]
pub struct EsoOptions {
    pub interval: i64,
    /// The first sync falls in `[start + lo, start + hi)`.
    pub phase: (i64, i64),
    /// Stop after this many syncs (ESO stuck on this ExternalSecret).
    pub max_syncs: Option<u32>,
    /// Probability of a duplicate read within a sync.
    pub p_duplicate: f64,
    /// Probability of a failed read retried a few seconds later.
    pub p_retry: f64,
    /// Probability of a second reconcile seconds after the first.
    pub p_rereconcile: f64,
    /// The controller is down in `[from, to)`: no sync; on its restart it reconciles
    /// every ExternalSecret within 90 seconds.
    pub down: Option<(i64, i64)>,
}

/// One ExternalSecret: login, read, lookup-self, revoke-self every refresh interval.
pub struct EsoSync {
    rng: Rng,
    sched: Rng,
    who: Rc<Identity>,
    addr: String,
    target: Target,
    opts: EsoOptions,
    next: i64,
    syncs: u32,
    end: i64,
}

impl EsoSync {
    pub fn new(
        seed: u64,
        label: &str,
        w: &World,
        who: Rc<Identity>,
        target: Target,
        opts: EsoOptions,
    ) -> EsoSync {
        let mut sched = Rng::derive(seed, &format!("sched/{label}"));
        let next = w.start + sched.range(opts.phase.0, opts.phase.1.max(opts.phase.0 + 1));
        EsoSync {
            rng: Rng::derive(seed, label),
            sched,
            who,
            addr: eso_address(seed),
            target,
            opts,
            next,
            syncs: 0,
            end: w.end,
        }
    }

    /// The start times of the next `n` syncs (what the plan needs to place injections).
    pub fn schedule(&self, n: usize) -> Vec<i64> {
        let mut sched = self.sched.clone();
        let mut t = self.next;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(t);
            t += self.opts.interval + drift(&mut sched);
        }
        out
    }

    fn read(&mut self, s: &mut Script<'_>, tok: &Token, outcome: Outcome) -> Outcome {
        match &self.target {
            Target::Kv {
                path,
                keys,
                version,
            } => {
                s.kv_read(&mut self.rng, tok, path, keys, *version, outcome.clone());
            }
            Target::Db { role } => {
                if outcome == Outcome::Ok {
                    s.db_creds(&mut self.rng, tok, role);
                } else {
                    let call = Call::new(
                        Some(tok),
                        "read",
                        format!("database/creds/{role}"),
                        MountKind::Database,
                    )
                    .cost(Cost::DbCreds)
                    .outcome(outcome.clone());
                    s.call(&mut self.rng, call);
                }
            }
        }
        outcome
    }

    /// One reconcile: login, read (with the odd duplicate or retry), lookup, revoke.
    fn reconcile(&mut self, s: &mut Script<'_>) {
        let Some(tok) = s.k8s_login(&mut self.rng, &self.who).issued else {
            return;
        };
        if self.rng.chance(self.opts.p_retry) {
            // A transient storage error; ESO retries after a short backoff.
            self.read(s, &tok, Outcome::Failed("context deadline exceeded"));
            let backoff = self.rng.range(2 * SEC, 8 * SEC);
            s.pause(backoff);
        }
        self.read(s, &tok, Outcome::Ok);
        if self.rng.chance(self.opts.p_duplicate) {
            // The provider fetches the same secret twice (GetSecret, then GetSecretMap).
            let wait = self.rng.range(150 * MS, 3 * SEC);
            s.pause(wait);
            self.read(s, &tok, Outcome::Ok);
        }
        s.lookup_self(&mut self.rng, &tok);
        s.revoke_self(&mut self.rng, &tok);
    }
}

/// Requeue drift of one refresh: controller-runtime requeues after the interval, plus
/// the reconcile's own time.
fn drift(r: &mut Rng) -> i64 {
    r.range(40 * MS, 1_900 * MS)
}

impl Actor for EsoSync {
    fn next_episode(&mut self, w: &World) -> Option<Vec<Line>> {
        if let Some((from, to)) = self.opts.down {
            if (from..to).contains(&self.next) {
                self.next = to.saturating_add(self.sched.range(0, 90 * SEC));
            }
        }
        if self.next >= self.end || self.opts.max_syncs.is_some_and(|m| self.syncs >= m) {
            return None;
        }
        let at = self.next;
        self.syncs += 1;
        self.next += self.opts.interval + drift(&mut self.sched);
        let mut s = Script::new(w, at, self.addr.clone(), &mut self.rng);
        self.reconcile(&mut s);
        if self.rng.chance(self.opts.p_rereconcile) {
            // The status update re-queues the object: a second, identical reconcile.
            let wait = self.rng.range(SEC, 12 * SEC);
            s.pause(wait);
            self.reconcile(&mut s);
        }
        Some(s.into_lines())
    }
}

/// A SecretStore's validation loop: login, lookup-self, revoke-self every 5 minutes.
pub struct StoreValidation {
    rng: Rng,
    who: Rc<Identity>,
    addr: String,
    interval: i64,
    next: i64,
    end: i64,
    /// The controller is down in `[from, to)`: no validation.
    pub down: Option<(i64, i64)>,
}

impl StoreValidation {
    pub fn new(seed: u64, w: &World, tenant: &str, interval: i64) -> StoreValidation {
        let mut rng = Rng::derive(seed, &format!("validate/{tenant}"));
        let next = w.start + rng.range(0, interval);
        StoreValidation {
            rng,
            who: eso_identity(seed, tenant),
            addr: eso_address(seed),
            interval,
            next,
            end: w.end,
            down: None,
        }
    }
}

impl Actor for StoreValidation {
    fn next_episode(&mut self, w: &World) -> Option<Vec<Line>> {
        if let Some((from, to)) = self.down {
            if (from..to).contains(&self.next) {
                self.next = to.saturating_add(self.rng.range(0, 90 * SEC));
            }
        }
        if self.next >= self.end {
            return None;
        }
        let at = self.next;
        self.next += self.interval + self.rng.range(5 * MS, 900 * MS);
        let mut s = Script::new(w, at, self.addr.clone(), &mut self.rng);
        if let Some(tok) = s.k8s_login(&mut self.rng, &self.who).issued {
            s.lookup_self(&mut self.rng, &tok);
            s.revoke_self(&mut self.rng, &tok);
        }
        Some(s.into_lines())
    }
}

/// The Crossplane Composition (`provider-vault`): an hourly reconcile that reads every
/// tenant's policy and role, writes them when they drift or a new revision rolls out
/// (nightly at 03:00), and bootstraps tenant secrets. It holds the admin policy and works
/// at any hour.
pub struct Composition {
    rng: Rng,
    who: Rc<Identity>,
    addr: String,
    tenants: Vec<String>,
    next: i64,
    end: i64,
    last_rollout_day: i64,
}

pub fn composition_identity(seed: u64) -> Rc<Identity> {
    k8s_identity(
        seed,
        "crossplane-system",
        "provider-vault",
        "crossplane",
        &["default", "bookstore-platform-admin"],
        1800,
    )
}

impl Composition {
    pub fn new(seed: u64, w: &World) -> Composition {
        let mut rng = Rng::derive(seed, "composition");
        let addr = pod_address(&mut rng);
        // Phase within the hour, but early enough that the 03:00 rollout lands at 03:xx.
        let next = w.start + rng.range(MIN, 50 * MIN);
        Composition {
            rng,
            who: composition_identity(seed),
            addr,
            tenants: w.tenants.clone(),
            next,
            end: w.end,
            last_rollout_day: i64::MIN,
        }
    }
}

impl Actor for Composition {
    fn next_episode(&mut self, w: &World) -> Option<Vec<Line>> {
        if self.next >= self.end {
            return None;
        }
        let at = self.next;
        self.next += HOUR + self.rng.range(0, 20 * SEC);
        let (sod, _) = w.clock(at);
        let day = w.midnight(at);
        let rollout = sod >= 3 * 3600 && self.last_rollout_day != day;
        if rollout {
            self.last_rollout_day = day;
        }
        let r = &mut self.rng;
        let mut s = Script::new(w, at, self.addr.clone(), r);
        let Some(tok) = s.k8s_login(r, &self.who).issued else {
            return Some(s.into_lines());
        };
        s.lookup_self(r, &tok);
        for t in &self.tenants {
            let policy = format!("bookstore-platform-app-{t}");
            let role = db_role(t);
            let ppath = format!("sys/policies/acl/{policy}");
            let rpath = format!("auth/kubernetes/role/{role}");
            let body = policy_body(t);
            s.call(
                r,
                Call::new(Some(&tok), "read", ppath.clone(), MountKind::System).resp(J::Obj(vec![
                    ("name", w.hmac(&policy)),
                    ("policy", w.hmac(&body)),
                ])),
            );
            s.call(
                r,
                Call::new(Some(&tok), "read", rpath.clone(), MountKind::Kubernetes)
                    .resp(role_body(w, t, true)),
            );
            if rollout || r.chance(0.04) {
                s.call(
                    r,
                    Call::new(Some(&tok), "update", ppath, MountKind::System)
                        .cost(Cost::Write)
                        .data(J::Obj(vec![("policy", w.hmac(&body))])),
                );
                s.call(
                    r,
                    Call::new(Some(&tok), "update", rpath, MountKind::Kubernetes)
                        .cost(Cost::Write)
                        .data(role_body(w, t, false)),
                );
            }
            if rollout {
                // The revision also (re)writes the tenant's bootstrap secret.
                let path = kv_path(t, "bootstrap");
                let now = super::vault::go_time(s.t);
                let version = 4 + (day - w.start).div_euclid(DAY).max(0);
                s.call(
                    r,
                    Call::new(Some(&tok), "update", path, MountKind::Kv)
                        .cost(Cost::Write)
                        .data(J::Obj(vec![
                            (
                                "data",
                                J::Obj(vec![("admin_email", w.hmac(&format!("ops@{t}.example")))]),
                            ),
                            ("options", J::Obj(vec![])),
                        ]))
                        .resp(J::Obj(vec![
                            ("created_time", J::s(now)),
                            ("custom_metadata", J::Null),
                            ("deletion_time", w.hmac("")),
                            ("destroyed", J::Bool(false)),
                            ("version", J::Int(version)),
                        ])),
                );
            }
        }
        s.revoke_self(r, &tok);
        Some(s.into_lines())
    }
}

fn policy_body(t: &str) -> String {
    format!(
        "path \"secret/data/bookstore-platform/{t}/*\" {{ capabilities = [\"read\"] }}\n\
         path \"database/creds/bookstore-platform-{t}\" {{ capabilities = [\"read\"] }}\n"
    )
}

fn role_body(w: &World, t: &str, with_defaults: bool) -> J {
    let ns = namespace(t);
    let mut v = vec![
        (
            "bound_service_account_names",
            J::Arr(vec![w.hmac("bookstore-platform-eso")]),
        ),
        (
            "bound_service_account_namespaces",
            J::Arr(vec![w.hmac(&ns)]),
        ),
        (
            "token_policies",
            J::Arr(vec![w.hmac(&format!("bookstore-platform-app-{t}"))]),
        ),
        ("token_ttl", J::Int(1200)),
    ];
    if with_defaults {
        v.push(("token_type", w.hmac("default")));
    }
    J::Obj(v)
}

/// A human operator.
#[derive(Clone, Debug)]
pub struct Human {
    pub name: &'static str,
    pub method: Method,
    pub admin: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Oidc,
    Userpass,
}

pub const ADMINS: [Human; 3] = [
    Human {
        name: "alice",
        method: Method::Oidc,
        admin: true,
    },
    Human {
        name: "bob",
        method: Method::Userpass,
        admin: true,
    },
    Human {
        name: "carol",
        method: Method::Oidc,
        admin: true,
    },
];

pub const DEVELOPER: Human = Human {
    name: "dave",
    method: Method::Oidc,
    admin: false,
};

pub fn human_identity(seed: u64, h: &Human) -> Rc<Identity> {
    let policies: &[&str] = if h.admin {
        &["default", "bookstore-platform-admin"]
    } else {
        &["default", "developers"]
    };
    let (display, meta, mount): (String, Vec<(&str, &str)>, MountKind) = match h.method {
        Method::Oidc => (
            format!("oidc-{}@bookstore.example", h.name),
            vec![(
                "role",
                if h.admin {
                    "platform-admin"
                } else {
                    "developer"
                },
            )],
            MountKind::Oidc,
        ),
        Method::Userpass => (
            format!("userpass-{}", h.name),
            vec![("username", h.name)],
            MountKind::Userpass,
        ),
    };
    Rc::new(Identity::new(
        display.clone(),
        policies,
        &meta,
        entity_id(seed, &display),
        if h.admin { 8 * 3600 } else { 3600 },
        mount,
    ))
}

/// Log a human in from their laptop (OIDC browser flow or userpass).
pub fn human_login(
    s: &mut Script<'_>,
    r: &mut Rng,
    who: &Rc<Identity>,
    name: &str,
) -> Option<Token> {
    let w = s.world();
    match who.login_mount {
        MountKind::Userpass => {
            let data = J::Obj(vec![("password", w.hmac(&format!("pw-{name}")))]);
            s.call(
                r,
                Call::new(
                    None,
                    "update",
                    format!("auth/userpass/login/{name}"),
                    MountKind::Userpass,
                )
                .data(data)
                .cost(Cost::Login)
                .issue(who.clone()),
            )
            .issued
        }
        _ => {
            let role = who
                .metadata
                .iter()
                .find(|(k, _)| k == "role")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let nonce = r.hex(16);
            let url_data = J::Obj(vec![
                ("client_nonce", w.hmac(&nonce)),
                (
                    "redirect_uri",
                    w.hmac("http://localhost:8250/oidc/callback"),
                ),
                ("role", w.hmac(&role)),
            ]);
            let resp = J::Obj(vec![(
                "auth_url",
                w.hmac(&format!(
                    "https://sso.bookstore.example/authorize?n={nonce}"
                )),
            )]);
            s.call(
                r,
                Call::new(None, "update", "auth/oidc/oidc/auth_url", MountKind::Oidc)
                    .data(url_data)
                    .resp(resp),
            );
            // The user clicks through the identity provider.
            let think = r.range(3 * SEC, 25 * SEC);
            s.pause(think);
            let cb = J::Obj(vec![
                ("client_nonce", w.hmac(&nonce)),
                ("code", w.hmac(&r.hex(32))),
                ("state", w.hmac(&r.hex(24))),
            ]);
            s.call(
                r,
                Call::new(None, "read", "auth/oidc/oidc/callback", MountKind::Oidc)
                    .data(cb)
                    .cost(Cost::Oidc)
                    .issue(who.clone()),
            )
            .issued
        }
    }
}

/// LIST of the tenant policies, as the policy API answers it.
pub fn list_tenant_policies<'t>(w: &World, tok: &'t Token, tenants: &[String]) -> Call<'t> {
    let keys = tenants
        .iter()
        .map(|t| w.hmac(&format!("bookstore-platform-app-{t}")))
        .collect();
    Call::new(Some(tok), "list", "sys/policies/acl", MountKind::System)
        .resp(J::Obj(vec![("keys", J::Arr(keys))]))
}

/// A read of tenant `t`'s policy whose text is `body`.
pub fn read_tenant_policy<'t>(w: &World, tok: &'t Token, t: &str, body: &str) -> Call<'t> {
    Call::new(
        Some(tok),
        "read",
        format!("sys/policies/acl/bookstore-platform-app-{t}"),
        MountKind::System,
    )
    .resp(J::Obj(vec![
        ("name", w.hmac(&format!("bookstore-platform-app-{t}"))),
        ("policy", w.hmac(body)),
    ]))
}

/// Admin chores: reads and lists of the platform's configuration.
pub fn admin_chore(s: &mut Script<'_>, r: &mut Rng, tok: &Token, tenants: &[String], seed: u64) {
    let t = r.pick(tenants).clone();
    let w = s.world();
    let call = match r.below(8) {
        0 => Call::new(Some(tok), "read", "sys/mounts", MountKind::System).resp(J::Obj(vec![
            ("database/", J::Obj(vec![("type", w.hmac("database"))])),
            ("secret/", J::Obj(vec![("type", w.hmac("kv"))])),
        ])),
        1 => list_tenant_policies(w, tok, tenants),
        2 => read_tenant_policy(w, tok, &t, &policy_body(&t)),
        3 => Call::new(
            Some(tok),
            "list",
            "auth/kubernetes/role",
            MountKind::Kubernetes,
        )
        .resp(J::Obj(vec![(
            "keys",
            J::Arr(tenants.iter().map(|t| w.hmac(&db_role(t))).collect()),
        )])),
        4 => Call::new(
            Some(tok),
            "read",
            format!("auth/kubernetes/role/{}", db_role(&t)),
            MountKind::Kubernetes,
        )
        .resp(role_body(w, &t, true)),
        5 => Call::new(
            Some(tok),
            "list",
            format!("sys/leases/lookup/database/creds/{}/", db_role(&t)),
            MountKind::System,
        )
        .resp(J::Obj(vec![(
            "keys",
            J::Arr(vec![w.hmac(&r.hex(24)), w.hmac(&r.hex(24))]),
        )])),
        6 => {
            let id = entity_id(
                seed,
                &format!("kubernetes-{}-bookstore-platform-eso", namespace(&t)),
            );
            Call::new(
                Some(tok),
                "read",
                format!("identity/entity/id/{id}"),
                MountKind::Identity,
            )
            .resp(J::Obj(vec![
                ("id", w.hmac(&id)),
                ("name", w.hmac(&format!("entity_{}", &id[..8]))),
            ]))
        }
        _ => Call::new(Some(tok), "read", "sys/audit", MountKind::System).resp(J::Obj(vec![(
            "file/",
            J::Obj(vec![("type", w.hmac("file"))]),
        )])),
    };
    s.call(r, call);
}

/// One human's sessions over the window: admins in business hours (a morning check
/// around 10:00 by the day's on-call admin, plus ad-hoc sessions); the developer once a
/// weekday, with the one denied read of a tenant secret.
pub struct HumanActor {
    rng: Rng,
    seed: u64,
    human: Human,
    who: Rc<Identity>,
    addr: String,
    tenants: Vec<String>,
    /// Session start times still to come, ascending.
    sessions: Vec<i64>,
    next_session: usize,
}

/// A human's laptop address (office or VPN), drawn first from the human's own stream.
fn draw_human_address(rng: &mut Rng, index: usize) -> String {
    format!("192.0.2.{}", 10 + index * 7 + rng.range(0, 5) as usize)
}

/// The address a human (index in `ADMINS`, the developer after them) always works from.
pub fn human_address(seed: u64, human: &Human, index: usize) -> String {
    draw_human_address(
        &mut Rng::derive(seed, &format!("human/{}", human.name)),
        index,
    )
}

impl HumanActor {
    pub fn new(seed: u64, w: &World, human: Human, index: usize) -> HumanActor {
        let mut rng = Rng::derive(seed, &format!("human/{}", human.name));
        let addr = draw_human_address(&mut rng, index);
        let mut sessions = Vec::new();
        let mut day = w.midnight(w.start);
        while day < w.end {
            let (_, wd) = w.clock(day);
            if wd < 5 {
                if human.admin {
                    // On-call rotation by weekday: the morning check near 10:00.
                    if (wd as usize + 3 * (day / DAY) as usize) % ADMINS.len() == index {
                        sessions.push(day + 10 * HOUR + rng.range(-15 * MIN, 15 * MIN));
                    }
                    let n = *rng.pick(&[0, 1, 1, 2]);
                    for _ in 0..n {
                        sessions.push(day + rng.range(8 * HOUR + 5 * MIN, 17 * HOUR + 50 * MIN));
                    }
                } else {
                    sessions.push(day + rng.range(9 * HOUR + 40 * MIN, 10 * HOUR + 40 * MIN));
                }
            }
            day += DAY;
        }
        sessions.sort_unstable();
        // Sessions closer than 40 minutes merge into the earlier one.
        let mut kept: Vec<i64> = Vec::new();
        for t in sessions {
            if kept.last().is_none_or(|&l| t - l >= 40 * MIN) {
                kept.push(t);
            }
        }
        kept.retain(|&t| t >= w.start && t < w.end);
        HumanActor {
            rng,
            seed,
            who: human_identity(seed, &human),
            human,
            addr,
            tenants: w.tenants.clone(),
            sessions: kept,
            next_session: 0,
        }
    }
}

impl Actor for HumanActor {
    fn next_episode(&mut self, w: &World) -> Option<Vec<Line>> {
        let at = *self.sessions.get(self.next_session)?;
        self.next_session += 1;
        let r = &mut self.rng;
        let mut s = Script::new(w, at, self.addr.clone(), r);
        let Some(tok) = human_login(&mut s, r, &self.who, self.human.name) else {
            return Some(s.into_lines());
        };
        if self.human.admin {
            let n = r.range(3, 11);
            for _ in 0..n {
                let think = r.range(5 * SEC, 100 * SEC);
                s.pause(think);
                s.reconnect(r);
                admin_chore(&mut s, r, &tok, &self.tenants, self.seed);
            }
        } else {
            let n = r.range(1, 4);
            let denied_at = r.range(0, n);
            for i in 0..n {
                let think = r.range(10 * SEC, 120 * SEC);
                s.pause(think);
                s.reconnect(r);
                let shared = *r.pick(&["registry", "feature-flags", "sentry"]);
                s.kv_read(
                    r,
                    &tok,
                    &format!("secret/data/shared/{shared}"),
                    &["token"],
                    2,
                    Outcome::Ok,
                );
                if i == denied_at {
                    // The developer tries a tenant's secret once, is denied, moves on.
                    let t = r.pick(&self.tenants).clone();
                    let think = r.range(5 * SEC, 40 * SEC);
                    s.pause(think);
                    s.kv_read(r, &tok, &kv_path(&t, "db"), &[], 1, Outcome::Denied);
                }
            }
        }
        Some(s.into_lines())
    }
}

/// A CI repository's pipeline runs: JWT login and lookup-self only (the pipeline does not
/// read Vault; the cluster does).
pub struct CiRepo {
    rng: Rng,
    who: Rc<Identity>,
    next: i64,
    end: i64,
}

pub const CI_REPOS: [&str; 4] = [
    "bookstore/catalog",
    "bookstore/orders",
    "bookstore/storefront",
    "bookstore/platform-infra",
];

pub fn ci_identity(seed: u64, repo: &str, workflow: &str) -> Rc<Identity> {
    let display = format!("jwt-{repo}");
    Rc::new(Identity::new(
        display.clone(),
        &["ci-deploy", "default"],
        &[
            ("ref", "refs/heads/main"),
            ("repository", repo),
            ("role", "ci-deploy"),
            ("workflow", workflow),
        ],
        entity_id(seed, &display),
        600,
        MountKind::Jwt,
    ))
}

/// Mean time between runs at `t`: busy in business hours, sparse at night.
fn ci_mean_gap(w: &World, t: i64) -> i64 {
    if w.business_hours(t) {
        45 * MIN
    } else {
        5 * HOUR
    }
}

impl CiRepo {
    pub fn new(seed: u64, w: &World, repo: &str) -> CiRepo {
        let mut rng = Rng::derive(seed, &format!("ci/{repo}"));
        let next = w.start + rng.exp(ci_mean_gap(w, w.start));
        CiRepo {
            rng,
            who: ci_identity(seed, repo, "deploy"),
            next,
            end: w.end,
        }
    }
}

/// A CI run's JWT login.
pub fn ci_login(s: &mut Script<'_>, r: &mut Rng, who: &Rc<Identity>) -> Option<Token> {
    let w = s.world();
    let jwt = format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIs.{}", r.hex(40));
    let data = J::Obj(vec![("jwt", w.hmac(&jwt)), ("role", w.hmac("ci-deploy"))]);
    s.call(
        r,
        Call::new(None, "update", "auth/jwt/login", MountKind::Jwt)
            .data(data)
            .cost(Cost::Login)
            .issue(who.clone()),
    )
    .issued
}

/// A GitHub-hosted runner's egress address.
pub fn runner_address(r: &mut Rng) -> String {
    format!("198.51.100.{}", r.range(2, 254))
}

impl Actor for CiRepo {
    fn next_episode(&mut self, w: &World) -> Option<Vec<Line>> {
        if self.next >= self.end {
            return None;
        }
        let at = self.next;
        let r = &mut self.rng;
        self.next = at + 2 * MIN + r.exp(ci_mean_gap(w, at));
        let addr = runner_address(r);
        let mut s = Script::new(w, at, addr, r);
        if let Some(tok) = ci_login(&mut s, r, &self.who) {
            s.lookup_self(r, &tok);
        }
        Some(s.into_lines())
    }
}

/// The break-glass CronJob (`15 2 * * *`): reads every tenant's database secret to
/// refresh an offline copy. A known identity with a known cadence.
pub struct BreakGlass {
    rng: Rng,
    who: Rc<Identity>,
    tenants: Vec<String>,
    next: i64,
    end: i64,
}

impl BreakGlass {
    pub fn new(seed: u64, w: &World) -> BreakGlass {
        let mut day = w.midnight(w.start);
        while day + 2 * HOUR + 15 * MIN < w.start {
            day += DAY;
        }
        BreakGlass {
            rng: Rng::derive(seed, "breakglass"),
            who: k8s_identity(
                seed,
                "platform-ops",
                "breakglass-refresh",
                "platform-breakglass",
                &["default", "platform-breakglass"],
                600,
            ),
            tenants: w.tenants.clone(),
            next: day + 2 * HOUR + 15 * MIN,
            end: w.end,
        }
    }
}

impl Actor for BreakGlass {
    fn next_episode(&mut self, w: &World) -> Option<Vec<Line>> {
        if self.next >= self.end {
            return None;
        }
        let r = &mut self.rng;
        // Pod scheduling and image pull before the job talks to Vault.
        let at = self.next + r.range(2 * SEC, 11 * SEC);
        self.next += DAY;
        let addr = pod_address(r);
        let mut s = Script::new(w, at, addr, r);
        if let Some(tok) = s.k8s_login(r, &self.who).issued {
            for t in &self.tenants {
                s.kv_read(
                    r,
                    &tok,
                    &kv_path(t, "db"),
                    &["host", "password", "username"],
                    3,
                    Outcome::Ok,
                );
            }
            s.revoke_self(r, &tok);
        }
        Some(s.into_lines())
    }
}

/// Prometheus scraping `sys/metrics` every `interval` with a long-lived token made by
/// `token create -policy=prometheus-metrics` (no entity, display name `token`), over one
/// kept-alive connection: the steady machine cadence every real cluster's audit log
/// carries (`samples/samgabrail-vault-monitoring-sys-metrics-scrape.log`). No rule
/// matches it; it keeps the stream busy enough for the silent-stream heartbeat.
pub struct MetricsScraper {
    rng: Rng,
    tok: Token,
    addr: String,
    /// Cloned per scrape: the same source port every time (a kept-alive connection).
    conn: Rng,
    interval: i64,
    next: i64,
    end: i64,
}

impl MetricsScraper {
    pub fn new(seed: u64, w: &World, interval: i64) -> MetricsScraper {
        let mut rng = Rng::derive(seed, "prometheus");
        let who = Rc::new(Identity::new(
            "token",
            &["default", "prometheus-metrics"],
            &[],
            String::new(),
            // `token create` without -ttl: the mount's max TTL, 32 days.
            2_764_800,
            MountKind::Token,
        ));
        let issued = w.start - rng.range(2 * DAY, 20 * DAY);
        let tok = Token::mint(&mut rng, who, issued);
        let addr = pod_address(&mut rng);
        let next = w.start + rng.range(0, interval.max(1));
        MetricsScraper {
            rng,
            tok,
            addr,
            conn: Rng::derive(seed, "prometheus/conn"),
            interval,
            next,
            end: w.end,
        }
    }
}

impl Actor for MetricsScraper {
    fn next_episode(&mut self, w: &World) -> Option<Vec<Line>> {
        if self.next >= self.end {
            return None;
        }
        let at = self.next;
        let r = &mut self.rng;
        // Prometheus keeps its schedule to the millisecond.
        self.next += self.interval + r.range(-3 * MS, 3 * MS);
        let mut conn = self.conn.clone();
        let mut s = Script::new(w, at, self.addr.clone(), &mut conn);
        s.call(
            r,
            Call::new(Some(&self.tok), "read", "sys/metrics", MountKind::System)
                .data(J::Obj(vec![("format", w.hmac("prometheus"))]))
                .cost(Cost::Metrics)
                .resp(J::Obj(vec![
                    (
                        "http_content_type",
                        w.hmac("text/plain; version=0.0.4; charset=utf-8"),
                    ),
                    ("http_raw_body", w.hmac(&format!("# vault metrics at {at}"))),
                    ("http_status_code", J::Int(200)),
                ])),
        );
        Some(s.into_lines())
    }
}

/// Pre-rendered episodes (the injections).
pub struct Scripted {
    episodes: std::collections::VecDeque<Vec<Line>>,
}

impl Scripted {
    pub fn new(episodes: Vec<Vec<Line>>) -> Scripted {
        Scripted {
            episodes: episodes.into(),
        }
    }
}

impl Actor for Scripted {
    fn next_episode(&mut self, _w: &World) -> Option<Vec<Line>> {
        self.episodes.pop_front()
    }
}
