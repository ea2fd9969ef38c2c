//! How one API call looks in the audit log: the simulated server.
//!
//! A [`Script`] is one client's sequence of calls (an ESO sync, a human session). Every
//! call becomes a `request` entry and a `response` entry with the same `request.id`, in
//! OpenBao 2.x shape and key order (`time, type, auth, request, response, error`), with
//! tokens, accessors and every string in `data` HMAC'd as the audit device does.
//!
//! Shape details taken from real OpenBao 2.7.2 and Vault 1.17-1.21 logs
//! (`shared/vault-audit/samples`, pinned by `tests/it/sim_shape.rs`):
//! - the request entry carries `request.mount_accessor` only for `create`/`update`
//!   (routing resolves the accessor in the existence check, which only writes run); the
//!   response entry always does, unless the ACL denied the call;
//! - an ACL denial carries Vault's multierror text on both entries, `policy_results`
//!   `{"allowed": false}`, and no mount accessor anywhere (the request never reached
//!   the router);
//! - a failed login (`invalid username or password`) carries the bare message, and its
//!   response entry has no `auth` at all;
//! - unauthenticated `sys/` endpoints (`sys/generate-root/*`) have no `auth` and no
//!   mount fields.
//!
//! Invariants: within a script, times only move forward (a client waits for each
//! response before its next call), so a script's lines are already in time order; the
//! response of a call comes after its request by a latency drawn per operation kind.
//! The world's device windows apply per call: a call whose request or response falls in
//! the silent window is not written at all (both entries, so pairs stay whole), and a
//! call whose request falls in the `log_raw` window is written with every HMAC'd value
//! in clear.

use std::cell::Cell;
use std::rc::Rc;

use super::json::J;
use super::rng::{Rng, Salt, ALNUM};

/// Nanoseconds per second / millisecond / microsecond.
pub const SEC: i64 = 1_000_000_000;
pub const MS: i64 = 1_000_000;
pub const US: i64 = 1_000;

/// The plugin version string OpenBao 2.7.2 prints for built-in mounts.
const VERSION: &str = "v2.7.2+builtin.bao";

/// Vault's multierror rendering of an ACL denial, as response entries carry it.
pub const DENIED_RESPONSE: &str = "1 error occurred:\n\t* permission denied\n\n";

/// One mounted backend.
#[derive(Clone, Debug)]
pub struct Mount {
    pub point: &'static str,
    pub kind: &'static str,
    pub accessor: String,
    pub class: &'static str,
}

/// The mounts of the simulated server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountKind {
    Kubernetes,
    Jwt,
    Oidc,
    Userpass,
    Token,
    Kv,
    Database,
    System,
    Identity,
}

/// Everything that is fixed for one simulated server: salt, mounts, the time window,
/// and what happens to the audit device itself.
pub struct World {
    pub salt: Salt,
    mounts: Vec<(MountKind, Mount)>,
    pub start: i64,
    pub end: i64,
    pub tenants: Vec<String>,
    /// `[from, to)`: the device writes nothing (the audit stream went silent).
    pub silent: Cell<Option<(i64, i64)>>,
    /// `[from, to)`: the device writes tokens and values in clear (`log_raw`).
    pub raw: Cell<Option<(i64, i64)>>,
    /// The platform's offset from UTC in seconds: people keep local office hours.
    pub utc_offset: i64,
}

impl World {
    pub fn new(seed: u64, start: i64, end: i64, tenants: Vec<String>) -> World {
        let mut r = Rng::derive(seed, "mounts");
        let mut m = |kind, point, name: &str, class| {
            let accessor = format!("{name}_{}", r.hex(8));
            (
                kind,
                Mount {
                    point,
                    kind: match kind {
                        MountKind::Kubernetes => "kubernetes",
                        MountKind::Jwt => "jwt",
                        MountKind::Oidc => "oidc",
                        MountKind::Userpass => "userpass",
                        MountKind::Token => "token",
                        MountKind::Kv => "kv",
                        MountKind::Database => "database",
                        MountKind::System => "system",
                        MountKind::Identity => "identity",
                    },
                    accessor,
                    class,
                },
            )
        };
        let mounts = vec![
            m(
                MountKind::Kubernetes,
                "auth/kubernetes/",
                "auth_kubernetes",
                "auth",
            ),
            m(MountKind::Jwt, "auth/jwt/", "auth_jwt", "auth"),
            m(MountKind::Oidc, "auth/oidc/", "auth_oidc", "auth"),
            m(
                MountKind::Userpass,
                "auth/userpass/",
                "auth_userpass",
                "auth",
            ),
            m(MountKind::Token, "auth/token/", "auth_token", "auth"),
            m(MountKind::Kv, "secret/", "kv", "secret"),
            m(MountKind::Database, "database/", "database", "secret"),
            m(MountKind::System, "sys/", "system", "secret"),
            m(MountKind::Identity, "identity/", "identity", "secret"),
        ];
        World {
            salt: Salt::new(seed),
            mounts,
            start,
            end,
            tenants,
            silent: Cell::new(None),
            raw: Cell::new(None),
            utc_offset: 0,
        }
    }

    fn in_window(w: &Cell<Option<(i64, i64)>>, t: i64) -> bool {
        w.get().is_some_and(|(a, b)| (a..b).contains(&t))
    }

    /// The device writes nothing at `t`.
    pub fn silent_at(&self, t: i64) -> bool {
        World::in_window(&self.silent, t)
    }

    /// The device writes values in clear at `t`.
    pub fn raw_at(&self, t: i64) -> bool {
        World::in_window(&self.raw, t)
    }

    pub fn mount(&self, kind: MountKind) -> &Mount {
        // Every kind is registered in `new`.
        &self
            .mounts
            .iter()
            .find(|(k, _)| *k == kind)
            .expect("every mount kind is registered")
            .1
    }

    /// A value the audit device HMACs (rendered when the line is written).
    pub fn hmac(&self, s: &str) -> J {
        J::H(s.to_string())
    }
}

/// Who a token belongs to: what the auth method wrote into the token at login.
#[derive(Clone, Debug)]
pub struct Identity {
    pub display_name: String,
    /// Sorted, as Vault prints them.
    pub policies: Vec<String>,
    /// Sorted by key (Go map order).
    pub metadata: Vec<(String, String)>,
    pub entity_id: String,
    pub token_ttl: i64,
    pub login_mount: MountKind,
    /// The policy that grants this identity's everyday requests (`policy_results`).
    pub granting: String,
}

impl Identity {
    pub fn new(
        display_name: impl Into<String>,
        policies: &[&str],
        metadata: &[(&str, &str)],
        entity_id: String,
        token_ttl: i64,
        login_mount: MountKind,
    ) -> Identity {
        let mut policies: Vec<String> = policies.iter().map(|p| p.to_string()).collect();
        policies.sort();
        let granting = policies
            .iter()
            .find(|p| *p != "default")
            .cloned()
            .unwrap_or_else(|| "default".into());
        let mut metadata: Vec<(String, String)> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        metadata.sort();
        Identity {
            display_name: display_name.into(),
            policies,
            metadata,
            entity_id,
            token_ttl,
            login_mount,
            granting,
        }
    }

    /// A token with no expiry (the root token): `token_ttl` 0.
    pub fn is_root_like(&self) -> bool {
        self.token_ttl == 0
    }

    /// `request.client_id`: the entity, or for a token without one (root, a token made
    /// with `token create`) a hash of its policies, as Vault's `CreateClientID` does.
    pub fn client_id(&self) -> String {
        if !self.entity_id.is_empty() {
            return self.entity_id.clone();
        }
        let mut bytes = Vec::with_capacity(32);
        let mut h = super::rng::hash_str(&self.policies.join(","));
        for _ in 0..4 {
            h = super::rng::mix64(h);
            bytes.extend_from_slice(&h.to_be_bytes());
        }
        crate::util::base64::encode(&bytes)
    }
}

/// An issued token. Raw values never leave this module: entries carry their HMACs.
#[derive(Clone, Debug)]
pub struct Token {
    raw: String,
    raw_accessor: String,
    pub issued_at: i64,
    pub who: Rc<Identity>,
}

impl Token {
    /// A token issued at `at` outside the simulated stream (before the window, or by a
    /// call nobody sees): the root token, a long-lived scrape token, a stolen token.
    pub fn mint(rng: &mut Rng, who: Rc<Identity>, at: i64) -> Token {
        Token::issue(rng, who, at)
    }

    fn issue(rng: &mut Rng, who: Rc<Identity>, at: i64) -> Token {
        Token {
            raw: format!("s.{}", rng.token(ALNUM, 24)),
            raw_accessor: rng.token(ALNUM, 24),
            issued_at: at,
            who,
        }
    }
}

/// How a call ends.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Ok,
    Denied,
    /// A post-routing failure; the text is the bare message (wrapped like Vault does).
    Failed(&'static str),
    /// A backend's logical error response (`logical.ErrorResponse`): the bare message,
    /// and for a login no `auth` on the response entry (a failed login).
    Rejected(&'static str),
}

/// Latency classes (server side), in microseconds: (min, max).
#[derive(Clone, Copy, Debug)]
pub enum Cost {
    /// KV reads, lookups, revokes: in-memory or one storage read.
    Fast,
    /// Writes: a storage write.
    Write,
    /// Kubernetes login: a TokenReview round trip to the API server.
    K8sLogin,
    /// JWT/userpass login: signature or bcrypt check.
    Login,
    /// OIDC callback: a round trip to the identity provider.
    Oidc,
    /// Database creds: CREATE ROLE on Postgres.
    DbCreds,
    /// `sys/metrics`: gathering every metric (tens of milliseconds to a few hundred).
    Metrics,
}

impl Cost {
    fn range_us(self) -> (i64, i64) {
        match self {
            Cost::Fast => (180, 2_400),
            Cost::Write => (900, 7_500),
            Cost::K8sLogin => (6_000, 42_000),
            Cost::Login => (2_500, 16_000),
            Cost::Oidc => (80_000, 310_000),
            Cost::DbCreds => (24_000, 170_000),
            Cost::Metrics => (20_000, 140_000),
        }
    }
}

/// One call to make.
pub struct Call<'a> {
    pub token: Option<&'a Token>,
    pub op: &'static str,
    pub path: String,
    pub mount: MountKind,
    pub data: Option<J>,
    pub outcome: Outcome,
    pub resp_data: Option<J>,
    pub lease_id: Option<String>,
    /// A login: the identity the new token is issued to.
    pub issue: Option<Rc<Identity>>,
    pub cost: Cost,
    /// An unauthenticated `sys/` endpoint (`sys/generate-root/*`): no `auth`, no mount
    /// fields, and raw HTTP headers on the response.
    pub bare: bool,
    pub resp_headers: Option<J>,
}

impl<'a> Call<'a> {
    pub fn new(
        token: Option<&'a Token>,
        op: &'static str,
        path: impl Into<String>,
        mount: MountKind,
    ) -> Call<'a> {
        Call {
            token,
            op,
            path: path.into(),
            mount,
            data: None,
            outcome: Outcome::Ok,
            resp_data: None,
            lease_id: None,
            issue: None,
            cost: Cost::Fast,
            bare: false,
            resp_headers: None,
        }
    }

    /// An unauthenticated endpoint answered with raw HTTP headers (see [`Call::bare`]).
    pub fn bare(mut self, headers: J) -> Self {
        self.bare = true;
        self.resp_headers = Some(headers);
        self
    }

    pub fn data(mut self, d: J) -> Self {
        self.data = Some(d);
        self
    }

    pub fn resp(mut self, d: J) -> Self {
        self.resp_data = Some(d);
        self
    }

    pub fn outcome(mut self, o: Outcome) -> Self {
        self.outcome = o;
        self
    }

    pub fn cost(mut self, c: Cost) -> Self {
        self.cost = c;
        self
    }

    pub fn lease(mut self, id: String) -> Self {
        self.lease_id = Some(id);
        self
    }

    pub fn issue(mut self, who: Rc<Identity>) -> Self {
        self.issue = Some(who);
        self
    }
}

/// What a made call left behind.
pub struct Made {
    pub request_id: String,
    /// Time of the request entry (ns).
    pub at: i64,
    pub issued: Option<Token>,
}

/// One line of output with its time, for ordering.
#[derive(Clone, Debug)]
pub struct Line {
    pub t: i64,
    pub text: String,
}

/// One client's sequence of calls, from one address and (keep-alive) source port.
pub struct Script<'w> {
    w: &'w World,
    pub t: i64,
    addr: String,
    port: u16,
    lines: Vec<Line>,
}

impl<'w> Script<'w> {
    pub fn new(w: &'w World, t: i64, addr: impl Into<String>, rng: &mut Rng) -> Script<'w> {
        Script {
            w,
            t,
            addr: addr.into(),
            port: rng.range(32_768, 61_000) as u16,
            lines: Vec::new(),
        }
    }

    /// A new TCP connection (Go's client drops idle ones after 90 s).
    pub fn reconnect(&mut self, rng: &mut Rng) {
        self.port = rng.range(32_768, 61_000) as u16;
    }

    /// Client-side think time before the next call.
    pub fn pause(&mut self, ns: i64) {
        self.t += ns.max(0);
    }

    /// A short client-side gap (marshalling the next request).
    pub fn gap(&mut self, rng: &mut Rng) {
        self.t += rng.range(300 * US, 9 * MS);
    }

    /// The server this script talks to (not tied to the borrow of the script).
    pub fn world(&self) -> &'w World {
        self.w
    }

    pub fn into_lines(self) -> Vec<Line> {
        self.lines
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Make a call: append its request and response entries; the clock moves past the
    /// response.
    pub fn call(&mut self, rng: &mut Rng, c: Call<'_>) -> Made {
        let w = self.w;
        let id = rng.uuid();
        let (lo, hi) = c.cost.range_us();
        let latency = rng.range(lo * US, hi * US) + rng.range(0, 1_000);
        let t_req = self.t;
        let t_resp = t_req + latency;
        let mount = w.mount(c.mount);
        let allowed = c.outcome != Outcome::Denied;

        let issued = c
            .issue
            .as_ref()
            .filter(|_| c.outcome == Outcome::Ok)
            .map(|who| Token::issue(rng, who.clone(), t_resp));

        // Routing resolves the mount accessor in the existence check, which only writes
        // run; a denied call never reaches the router.
        let write = matches!(c.op, "create" | "update");
        let request_in = self.request_json(&id, &c, mount, allowed && write);
        let request_out = self.request_json(&id, &c, mount, allowed);
        let auth_req = match c.token {
            Some(tok) => token_auth(w, tok, Some((allowed, granting_for(&c, tok)))),
            None => J::Obj(vec![
                ("policy_results", J::Obj(vec![("allowed", J::Bool(true))])),
                ("token_type", J::s("default")),
            ]),
        };

        let mut req_entry = vec![("time", J::s(go_time(t_req))), ("type", J::s("request"))];
        if !c.bare {
            req_entry.push(("auth", auth_req.clone()));
        }
        req_entry.push(("request", request_in));
        if !allowed {
            req_entry.push(("error", J::s(DENIED_RESPONSE)));
        }

        // The response entry's top-level auth: for a login, the new token (the caller
        // had none); for a failed login nothing; otherwise the caller's token, as in the
        // request entry.
        let auth_resp = match (&issued, &c.outcome) {
            (Some(tok), _) => Some(token_auth(w, tok, None)),
            (None, Outcome::Rejected(_)) if c.token.is_none() => None,
            _ => Some(auth_req),
        };
        let mut response = Vec::new();
        if let Some(tok) = &issued {
            response.push(("auth", token_auth(w, tok, None)));
        }
        if !c.bare {
            response.push(("mount_point", J::s(mount.point)));
            response.push(("mount_type", J::s(mount.kind)));
            if allowed {
                response.push(("mount_accessor", J::s(mount.accessor.clone())));
            }
            response.push(("mount_running_plugin_version", J::s(VERSION)));
            response.push(("mount_class", J::s(mount.class)));
        }
        let error = match &c.outcome {
            Outcome::Ok => {
                if let Some(lease) = &c.lease_id {
                    response.push(("secret", J::Obj(vec![("lease_id", J::s(lease.clone()))])));
                }
                if let Some(d) = c.resp_data {
                    response.push(("data", d));
                }
                None
            }
            Outcome::Denied => {
                response.push(("data", J::Obj(vec![("error", w.hmac("permission denied"))])));
                Some(DENIED_RESPONSE.to_string())
            }
            Outcome::Failed(msg) => {
                response.push(("data", J::Obj(vec![("error", w.hmac(msg))])));
                Some(format!("1 error occurred:\n\t* {msg}\n\n"))
            }
            Outcome::Rejected(msg) => {
                response.push(("data", J::Obj(vec![("error", w.hmac(msg))])));
                Some(msg.to_string())
            }
        };
        if let Some(h) = c.resp_headers {
            response.push(("headers", h));
        }
        let mut resp_entry = vec![("time", J::s(go_time(t_resp))), ("type", J::s("response"))];
        if let Some(a) = auth_resp.filter(|_| !c.bare) {
            resp_entry.push(("auth", a));
        }
        resp_entry.push(("request", request_out));
        resp_entry.push(("response", J::Obj(response)));
        if let Some(e) = error {
            resp_entry.push(("error", J::Str(e)));
        }

        // The device: silent (nothing written, both entries alike) or log_raw (values
        // in clear), judged at the request's arrival.
        if !w.silent_at(t_req) && !w.silent_at(t_resp) {
            let salt = (!w.raw_at(t_req)).then_some(&w.salt);
            self.lines.push(Line {
                t: t_req,
                text: J::Obj(req_entry).to_line(salt),
            });
            self.lines.push(Line {
                t: t_resp,
                text: J::Obj(resp_entry).to_line(salt),
            });
        }
        self.t = t_resp;
        self.gap(rng);
        Made {
            request_id: id,
            at: t_req,
            issued,
        }
    }

    fn request_json(&self, id: &str, c: &Call<'_>, mount: &Mount, accessor: bool) -> J {
        let mut r: Vec<(&'static str, J)> = vec![("id", J::s(id))];
        if let Some(tok) = c.token {
            r.push(("client_id", J::s(tok.who.client_id())));
        }
        r.push(("operation", J::s(c.op)));
        if !c.bare {
            r.push(("mount_point", J::s(mount.point)));
            r.push(("mount_type", J::s(mount.kind)));
            if accessor {
                r.push(("mount_accessor", J::s(mount.accessor.clone())));
            }
            r.push(("mount_running_version", J::s(VERSION)));
            r.push(("mount_class", J::s(mount.class)));
        }
        if let Some(tok) = c.token {
            r.push(("client_token", self.w.hmac(&tok.raw)));
            r.push(("client_token_accessor", self.w.hmac(&tok.raw_accessor)));
        }
        r.push(("namespace", J::Obj(vec![("id", J::s("root"))])));
        r.push(("path", J::s(c.path.clone())));
        if let Some(d) = &c.data {
            r.push(("data", d.clone()));
        }
        r.push(("remote_address", J::s(self.addr.clone())));
        r.push(("remote_port", J::Int(self.port as i64)));
        J::Obj(r)
    }

    /// `auth/token/lookup-self`: what Vault returns, every string HMAC'd except (on
    /// OpenBao) RFC 3339 timestamps.
    pub fn lookup_self(&mut self, rng: &mut Rng, tok: &Token) -> Made {
        let w = self.w;
        let who = &tok.who;
        let ttl_left = (who.token_ttl - (self.t - tok.issued_at) / SEC).max(0);
        let meta = J::Map(
            who.metadata
                .iter()
                .map(|(k, v)| (k.clone(), w.hmac(v)))
                .collect(),
        );
        let login_path = format!("{}login", w.mount(who.login_mount).point);
        let data = if who.is_root_like() {
            // The root token: no expiry, no metadata, not renewable, created at the
            // token store's root path.
            J::Obj(vec![
                ("accessor", w.hmac(&tok.raw_accessor)),
                ("creation_time", J::Int(tok.issued_at / SEC)),
                ("creation_ttl", J::Int(0)),
                ("display_name", w.hmac(&who.display_name)),
                ("entity_id", w.hmac(&who.entity_id)),
                ("expire_time", J::Null),
                ("explicit_max_ttl", J::Int(0)),
                ("id", w.hmac(&tok.raw)),
                ("meta", J::Null),
                ("num_uses", J::Int(0)),
                ("orphan", J::Bool(true)),
                ("path", w.hmac("auth/token/root")),
                (
                    "policies",
                    J::Arr(who.policies.iter().map(|p| w.hmac(p)).collect()),
                ),
                ("ttl", J::Int(0)),
                ("type", w.hmac("service")),
            ])
        } else {
            J::Obj(vec![
                ("accessor", w.hmac(&tok.raw_accessor)),
                ("creation_time", J::Int(tok.issued_at / SEC)),
                ("creation_ttl", J::Int(who.token_ttl)),
                ("display_name", w.hmac(&who.display_name)),
                ("entity_id", w.hmac(&who.entity_id)),
                // Computed a few microseconds before `issue_time` is stamped, as the
                // token store does.
                (
                    "expire_time",
                    J::s(go_time(tok.issued_at + who.token_ttl * SEC - 4_284)),
                ),
                ("explicit_max_ttl", J::Int(0)),
                ("id", w.hmac(&tok.raw)),
                ("issue_time", J::s(go_time(tok.issued_at))),
                ("meta", meta),
                ("num_uses", J::Int(0)),
                ("orphan", J::Bool(true)),
                ("path", w.hmac(&login_path)),
                (
                    "policies",
                    J::Arr(who.policies.iter().map(|p| w.hmac(p)).collect()),
                ),
                ("renewable", J::Bool(true)),
                ("ttl", J::Int(ttl_left)),
                ("type", w.hmac("service")),
            ])
        };
        self.call(
            rng,
            Call::new(
                Some(tok),
                "read",
                "auth/token/lookup-self",
                MountKind::Token,
            )
            .resp(data),
        )
    }

    /// `auth/token/revoke-self` (204: no data).
    pub fn revoke_self(&mut self, rng: &mut Rng, tok: &Token) -> Made {
        self.call(
            rng,
            Call::new(
                Some(tok),
                "update",
                "auth/token/revoke-self",
                MountKind::Token,
            ),
        )
    }

    /// `auth/kubernetes/login` with a fresh projected service-account JWT.
    pub fn k8s_login(&mut self, rng: &mut Rng, who: &Rc<Identity>) -> Made {
        let w = self.w;
        let role = who
            .metadata
            .iter()
            .find(|(k, _)| k == "role")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let jwt = format!("eyJhbGciOiJSUzI1NiIs.{}", rng.hex(48));
        let data = J::Obj(vec![("jwt", w.hmac(&jwt)), ("role", w.hmac(role))]);
        self.call(
            rng,
            Call::new(
                None,
                "update",
                "auth/kubernetes/login",
                MountKind::Kubernetes,
            )
            .data(data)
            .cost(Cost::K8sLogin)
            .issue(who.clone()),
        )
    }

    /// A KV v2 read; `version` and the key names shape the response.
    pub fn kv_read(
        &mut self,
        rng: &mut Rng,
        tok: &Token,
        path: &str,
        keys: &[&str],
        version: i64,
        outcome: Outcome,
    ) -> Made {
        let w = self.w;
        let mut call = Call::new(Some(tok), "read", path, MountKind::Kv).outcome(outcome.clone());
        if outcome == Outcome::Ok {
            let data = J::Map(
                keys.iter()
                    .map(|k| (k.to_string(), w.hmac(&format!("{path}#{k}#{version}"))))
                    .collect(),
            );
            // A stable "created" time per version, a few days before the window.
            let created = w.start - (version * 7_919 + 86_400) * SEC;
            call = call.resp(J::Obj(vec![
                ("data", data),
                (
                    "metadata",
                    J::Obj(vec![
                        ("created_time", J::s(go_time(created + 123_456_789))),
                        ("custom_metadata", J::Null),
                        ("deletion_time", w.hmac("")),
                        ("destroyed", J::Bool(false)),
                        ("version", J::Int(version)),
                    ]),
                ),
            ]));
        }
        self.call(rng, call)
    }

    /// A dynamic database credential: a new Postgres role and its lease.
    pub fn db_creds(&mut self, rng: &mut Rng, tok: &Token, role: &str) -> Made {
        let w = self.w;
        let lease = format!("database/creds/{role}/{}", rng.token(ALNUM, 24));
        let user = format!(
            "v-kubernet-{}-{}-{}",
            &role.chars().take(8).collect::<String>(),
            rng.token(ALNUM, 20),
            self.t / SEC
        );
        let pass = rng.token(ALNUM, 20);
        self.call(
            rng,
            Call::new(
                Some(tok),
                "read",
                format!("database/creds/{role}"),
                MountKind::Database,
            )
            .cost(Cost::DbCreds)
            .lease(lease)
            .resp(J::Obj(vec![
                ("password", w.hmac(&pass)),
                ("username", w.hmac(&user)),
            ])),
        )
    }
}

/// The granting policy printed in `policy_results` for a call; `None` for the UI's
/// mount lookups, which every token may make and whose result names no policy (real
/// OpenBao 2.7.2 and Vault 1.21 print `{"allowed": true}` alone).
fn granting_for(c: &Call<'_>, tok: &Token) -> Option<String> {
    match (c.mount, c.path.as_str()) {
        (MountKind::Token, p) if p.ends_with("-self") && !tok.who.is_root_like() => {
            Some("default".into())
        }
        (MountKind::System, p) if p.starts_with("sys/internal/ui/") => None,
        _ => Some(tok.who.granting.clone()),
    }
}

/// A token's `auth` block. `check` is `(allowed, granting policy)` for request-side
/// blocks, which carry `policy_results`; issued-token blocks carry none.
fn token_auth(w: &World, tok: &Token, check: Option<(bool, Option<String>)>) -> J {
    let who = &tok.who;
    let pols = J::Arr(who.policies.iter().map(|p| J::s(p.clone())).collect());
    let mut a: Vec<(&'static str, J)> = vec![
        ("client_token", w.hmac(&tok.raw)),
        ("accessor", w.hmac(&tok.raw_accessor)),
        ("display_name", J::s(who.display_name.clone())),
        ("policies", pols.clone()),
        ("token_policies", pols),
    ];
    let requesting = check.is_some();
    if let Some((allowed, granting)) = check {
        let mut pr = vec![("allowed", J::Bool(allowed))];
        if let Some(granting) = granting.filter(|_| allowed) {
            pr.push((
                "granting_policies",
                J::Arr(vec![J::Obj(vec![
                    ("name", J::Str(granting)),
                    ("namespace_id", J::s("root")),
                    ("type", J::s("acl")),
                ])]),
            ));
        }
        a.push(("policy_results", J::Obj(pr)));
    }
    if !who.metadata.is_empty() {
        a.push((
            "metadata",
            J::Map(
                who.metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), J::s(v.clone())))
                    .collect(),
            ),
        ));
    }
    // Tokens without an entity (root, `token create`) and without a TTL (root) omit
    // the fields (`omitempty`).
    if !who.entity_id.is_empty() {
        a.push(("entity_id", J::s(who.entity_id.clone())));
    }
    a.push(("token_type", J::s("service")));
    if who.token_ttl != 0 {
        a.push(("token_ttl", J::Int(who.token_ttl)));
    }
    if requesting {
        a.push(("token_issue_time", J::s(go_time_secs(tok.issued_at))));
    }
    J::Obj(a)
}

/// Go's `time.RFC3339Nano` in UTC: trailing zeros of the fraction dropped.
pub fn go_time(nanos: i64) -> String {
    let secs = nanos.div_euclid(SEC);
    let frac = nanos.rem_euclid(SEC);
    let mut s = go_time_secs(secs * SEC);
    if frac != 0 {
        s.pop(); // the `Z`
        let digits = format!("{frac:09}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
        s.push('Z');
    }
    s
}

/// RFC 3339 at whole seconds, UTC (`token_issue_time`, `expire_time`).
pub fn go_time_secs(nanos: i64) -> String {
    let secs = nanos.div_euclid(SEC);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = crate::parse::time::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::time::parse_rfc3339_nanos;

    #[test]
    fn go_time_trims_like_rfc3339nano() {
        let t = parse_rfc3339_nanos("2026-03-02T03:00:00.120000Z").expect("valid");
        assert_eq!(go_time(t), "2026-03-02T03:00:00.12Z");
        let t = parse_rfc3339_nanos("2026-03-02T03:00:00Z").expect("valid");
        assert_eq!(go_time(t), "2026-03-02T03:00:00Z");
        let t = parse_rfc3339_nanos("2026-03-02T03:00:00.000000001Z").expect("valid");
        assert_eq!(go_time(t), "2026-03-02T03:00:00.000000001Z");
    }

    #[test]
    fn a_denied_read_has_both_errors_and_one_id() {
        let w = World::new(1, 0, 3600 * SEC, vec!["acme".into()]);
        let mut rng = Rng::new(1);
        let who = Rc::new(Identity::new(
            "kubernetes-bookstore-platform-acme-bookstore-platform-eso",
            &["default", "bookstore-platform-app-acme"],
            &[("role", "bookstore-platform-acme")],
            rng.uuid(),
            600,
            MountKind::Kubernetes,
        ));
        let mut s = Script::new(&w, 10 * SEC, "10.42.0.7", &mut rng);
        let login = s.k8s_login(&mut rng, &who);
        let tok = login.issued.expect("login issues a token");
        let made = s.kv_read(
            &mut rng,
            &tok,
            "secret/data/bookstore-platform/lumen/db",
            &["password"],
            1,
            Outcome::Denied,
        );
        let lines = s.into_lines();
        assert_eq!(lines.len(), 4);
        assert!(lines.windows(2).all(|p| p[0].t <= p[1].t));
        let req: serde_json::Value = serde_json::from_str(&lines[2].text).expect("json");
        let resp: serde_json::Value = serde_json::from_str(&lines[3].text).expect("json");
        assert_eq!(req["request"]["id"], made.request_id.as_str());
        assert_eq!(resp["request"]["id"], made.request_id.as_str());
        assert_eq!(req["error"], DENIED_RESPONSE);
        assert_eq!(resp["error"], DENIED_RESPONSE);
        assert_eq!(req["auth"]["policy_results"]["allowed"], false);
        // The request never reached the router: no mount accessor.
        assert!(req["request"].get("mount_accessor").is_none());
        assert!(resp["request"].get("mount_accessor").is_none());
        assert!(resp["response"].get("mount_accessor").is_none());
        assert!(resp["auth"]["client_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("hmac-sha256:") && t.len() == 76));
        // The login response names the new token's owner.
        let login_resp: serde_json::Value = serde_json::from_str(&lines[1].text).expect("json");
        assert_eq!(
            login_resp["response"]["auth"]["display_name"],
            "kubernetes-bookstore-platform-acme-bookstore-platform-eso"
        );
        assert_eq!(
            login_resp["request"]["data"]["role"],
            w.salt.hmac("bookstore-platform-acme")
        );
    }
}
