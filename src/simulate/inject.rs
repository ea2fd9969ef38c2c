//! Planning a run: the cast of clean actors ([`super::actors`]) and the findings planted
//! among them, each with its answer-key item.
//!
//! Planning happens before any line is produced: the plan decides which tenant each
//! injection hits (a seeded shuffle, so injections spread over tenants), adjusts the
//! clean actors an injection changes (the stale ExternalSecret stops, the racing one
//! refreshes every 70 minutes, the 5-second loop is later fixed to hourly), pre-renders
//! one-shot episodes, and records what a correct detector must report. Invariants: every injection either fits the window with room for
//! its detection to become visible, or planning fails with a message saying what it
//! needs; an answer item's window always contains the alert time a correct detector
//! reports.

use serde::Serialize;

use super::actors::{
    business_hours, ci_identity, ci_login, clock, eso_address, eso_identity, human_identity,
    human_login, k8s_identity, kv_path, namespace, pod_address, runner_address, Actor, BreakGlass,
    CiRepo, Composition, EsoOptions, EsoSync, HumanActor, Scripted, StoreValidation, Target,
    ADMINS, CI_REPOS, DEVELOPER, HOUR, MIN,
};
use super::json::J;
use super::rng::Rng;
use super::vault::{go_time, Call, Line, MountKind, Outcome, Script, World, MS, SEC};
use super::{Injection, SimError};
use crate::alert::{Alert, Severity};

/// What a correct detector must report for one injection.
#[derive(Clone, Debug, Serialize)]
pub struct AnswerItem {
    pub injection: &'static str,
    pub category: &'static str,
    pub min_severity: Severity,
    pub tenant: Option<String>,
    pub target_tenant: Option<String>,
    pub request_id: Option<String>,
    pub evidence_kind: Option<&'static str>,
    pub path: Option<String>,
    /// The alert's time falls in `[window_start, window_end]`.
    pub window_start: String,
    pub window_end: String,
    pub description: String,
    #[serde(skip)]
    pub window_start_ns: i64,
    #[serde(skip)]
    pub window_end_ns: i64,
}

impl AnswerItem {
    /// True when `a` reports this item: same category, at least the severity, and every
    /// fact the item pins (tenant, target, request, evidence kind, path, time window).
    pub fn found_by(&self, a: &Alert) -> bool {
        self.explains(a) && a.severity >= self.min_severity
    }

    /// Like [`found_by`](Self::found_by) without the severity floor: the alert is about
    /// this injection.
    pub fn explains(&self, a: &Alert) -> bool {
        let same = |want: &Option<String>, got: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| got.as_deref() == Some(w.as_str()))
        };
        a.category == self.category
            && same(&self.tenant, &a.tenant)
            && same(&self.target_tenant, &a.target_tenant)
            && same(&self.request_id, &a.request_id)
            && same(&self.path, &a.path)
            && self
                .evidence_kind
                .is_none_or(|k| a.evidence.get("kind").and_then(|v| v.as_str()) == Some(k))
            && (self.window_start_ns..=self.window_end_ns).contains(&a.time_nanos)
    }
}

struct Item {
    injection: Injection,
    category: &'static str,
    min_severity: Severity,
    tenant: Option<String>,
    target_tenant: Option<String>,
    request_id: Option<String>,
    evidence_kind: Option<&'static str>,
    path: Option<String>,
    window: (i64, i64),
    description: String,
}

impl Item {
    fn new(
        injection: Injection,
        category: &'static str,
        min: Severity,
        window: (i64, i64),
    ) -> Item {
        Item {
            injection,
            category,
            min_severity: min,
            tenant: None,
            target_tenant: None,
            request_id: None,
            evidence_kind: None,
            path: None,
            window,
            description: String::new(),
        }
    }

    fn done(self) -> AnswerItem {
        AnswerItem {
            injection: self.injection.name(),
            category: self.category,
            min_severity: self.min_severity,
            tenant: self.tenant,
            target_tenant: self.target_tenant,
            request_id: self.request_id,
            evidence_kind: self.evidence_kind,
            path: self.path,
            window_start: go_time(self.window.0),
            window_end: go_time(self.window.1),
            description: self.description,
            window_start_ns: self.window.0,
            window_end_ns: self.window.1,
        }
    }
}

/// The ExternalSecrets of one tenant: always `db` and `app`, sometimes more.
fn tenant_secrets(seed: u64, tenant: &str) -> Vec<(&'static str, Vec<&'static str>, i64)> {
    let mut r = Rng::derive(seed, &format!("secrets/{tenant}"));
    let mut v = vec![
        ("db", vec!["host", "password", "username"], HOUR),
        (
            "app",
            vec!["api_key", "session_secret"],
            if r.chance(0.25) { 30 * MIN } else { HOUR },
        ),
    ];
    for (name, keys) in [
        ("smtp", vec!["password", "username"]),
        ("payments", vec!["stripe_key", "webhook_secret"]),
        ("search", vec!["api_key"]),
    ] {
        if r.chance(0.4) {
            v.push((name, keys, HOUR));
        }
    }
    v
}

fn clean_options(interval: i64) -> EsoOptions {
    EsoOptions {
        interval,
        phase: (0, interval),
        max_syncs: None,
        p_duplicate: 0.08,
        p_retry: 0.03,
        p_rereconcile: 0.05,
    }
}

/// Everything the simulation runs, and the answer key.
pub struct Plan {
    pub actors: Vec<Box<dyn Actor>>,
    pub answer: Vec<AnswerItem>,
}

/// Pick an instant in `[lo, hi)` of the window given as fractions, clamped to leave
/// `room` before the end.
fn pick_time(r: &mut Rng, w: &World, lo: f64, hi: f64, room: i64) -> i64 {
    let d = (w.end - w.start) as f64;
    let a = w.start + (d * lo) as i64;
    let b = (w.start + (d * hi) as i64).min(w.end - room);
    r.range(a, b.max(a + 1))
}

/// Build every actor of a run (the clean platform, adjusted by the injections, plus the
/// injected episodes) and the answer key. `validation` is the SecretStore validation
/// period in ns (`None`: no validation loop).
pub fn plan(
    seed: u64,
    w: &World,
    injections: &[Injection],
    validation: Option<i64>,
) -> Result<Plan, SimError> {
    let tenants = w.tenants.clone();
    let n = tenants.len();
    // Injection targets: a seeded shuffle of the tenants, taken in turn.
    let mut order = tenants.clone();
    let mut r = Rng::derive(seed, "inject/order");
    for i in (1..order.len()).rev() {
        let j = r.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let mut turn = 0usize;
    let mut next_tenant = || {
        let t = order[turn % n].clone();
        turn += 1;
        t
    };
    let has = |k: Injection| injections.contains(&k);
    let stale_tenant = has(Injection::EsoStale).then(&mut next_tenant);
    let race_tenant = has(Injection::EsoLeaseRace).then(&mut next_tenant);

    let mut actors: Vec<Box<dyn Actor>> = Vec::new();
    let mut items: Vec<Item> = Vec::new();

    for t in &tenants {
        let who = eso_identity(seed, t);
        for (name, keys, interval) in tenant_secrets(seed, t) {
            let mut opts = clean_options(interval);
            let stale = stale_tenant.as_deref() == Some(t.as_str()) && name == "db";
            if stale {
                // ESO gets stuck on this ExternalSecret after its fourth sync: three
                // intervals learned, the minimum the default config needs.
                opts.phase = (0, 10 * MIN);
                opts.max_syncs = Some(STALE_SYNCS);
            }
            let path = kv_path(t, name);
            let target = Target::Kv {
                path: path.clone(),
                keys,
                version: 1 + (super::rng::hash_str(&path) % 6) as i64,
            };
            let label = format!("eso/{t}/{name}");
            let actor = EsoSync::new(seed, &label, w, who.clone(), target, opts);
            if stale {
                let last = *actor
                    .schedule(STALE_SYNCS as usize)
                    .last()
                    .unwrap_or(&w.start);
                // The engine learns ~1 h and waits 3 intervals; the watermark then
                // needs later traffic, which runs hourly at worst.
                let due = last + 3 * (interval + 2 * SEC);
                if due + HOUR + 10 * MIN > w.end {
                    return Err(SimError::DoesNotFit {
                        injection: Injection::EsoStale.name(),
                        needs: "a window of about 7.5 h: four hourly reads, 3 h of silence, \
                                then traffic to move the clock",
                    });
                }
                let mut it = Item::new(
                    Injection::EsoStale,
                    "eso_cadence",
                    Severity::Warning,
                    (due - 2 * MIN, due + 2 * MIN),
                );
                it.tenant = Some(t.clone());
                it.path = Some(path.clone());
                it.evidence_kind = Some("stale");
                it.description = format!(
                    "ESO of {} stops reading {path} after its read at ~{}; its other \
                     ExternalSecrets continue",
                    namespace(t),
                    go_time(last)
                );
                items.push(it);
            }
            actors.push(Box::new(actor));
        }
        // Dynamic database credentials: 50 minutes on a 1 h lease (platform rule).
        let race = race_tenant.as_deref() == Some(t.as_str());
        let mut opts = clean_options(50 * MIN);
        opts.p_duplicate = 0.0;
        opts.p_retry = 0.01;
        opts.p_rereconcile = 0.02;
        if race {
            opts.interval = 70 * MIN;
            opts.phase = (0, 10 * MIN);
        }
        let role = super::actors::db_role(t);
        let label = format!("eso/{t}/database");
        let actor = EsoSync::new(
            seed,
            &label,
            w,
            who.clone(),
            Target::Db { role: role.clone() },
            opts,
        );
        if race {
            let second = actor.schedule(2)[1];
            if second + 2 * MIN > w.end {
                return Err(SimError::DoesNotFit {
                    injection: Injection::EsoLeaseRace.name(),
                    needs: "a window of about 85 minutes: two 70-minute refreshes",
                });
            }
            let mut it = Item::new(
                Injection::EsoLeaseRace,
                "eso_cadence",
                Severity::High,
                (second, second + MIN),
            );
            it.tenant = Some(t.clone());
            it.path = Some(format!("database/creds/{role}"));
            it.evidence_kind = Some("lease_race");
            it.description = format!(
                "ESO of {} refreshes database/creds/{role} every 70 min on a 1 h lease",
                namespace(t)
            );
            items.push(it);
        }
        actors.push(Box::new(actor));
        if let Some(every) = validation {
            actors.push(Box::new(StoreValidation::new(seed, w, t, every)));
        }
    }
    actors.push(Box::new(Composition::new(seed, w)));
    for (i, h) in ADMINS.iter().enumerate() {
        actors.push(Box::new(HumanActor::new(seed, w, h.clone(), i)));
    }
    actors.push(Box::new(HumanActor::new(seed, w, DEVELOPER, ADMINS.len())));
    for repo in CI_REPOS {
        actors.push(Box::new(CiRepo::new(seed, w, repo)));
    }
    actors.push(Box::new(BreakGlass::new(seed, w)));

    for &inj in injections {
        let mut r = Rng::derive(seed, &format!("inject/{}", inj.name()));
        match inj {
            Injection::EsoStale | Injection::EsoLeaseRace => {}
            Injection::CrossTenantRead | Injection::CrossTenantProbe => {
                if n < 2 {
                    return Err(SimError::TooFewTenants {
                        injection: inj.name(),
                    });
                }
                let a = next_tenant();
                let b = {
                    let i = tenants.iter().position(|t| *t == a).unwrap_or(0);
                    tenants[(i + 1 + r.below(n as u64 - 1) as usize) % n].clone()
                };
                let at = pick_time(&mut r, w, 0.15, 0.85, 2 * MIN);
                let denied = inj == Injection::CrossTenantProbe;
                let who = eso_identity(seed, &a);
                let mut s = Script::new(w, at, eso_address(seed), &mut r);
                let Some(tok) = s.k8s_login(&mut r, &who).issued else {
                    continue;
                };
                let (name, keys): (&str, &[&str]) = if denied {
                    ("payments", &["stripe_key", "webhook_secret"])
                } else {
                    ("db", &["host", "password", "username"])
                };
                let path = kv_path(&b, name);
                let outcome = if denied { Outcome::Denied } else { Outcome::Ok };
                let made = s.kv_read(&mut r, &tok, &path, keys, 2, outcome);
                s.lookup_self(&mut r, &tok);
                s.revoke_self(&mut r, &tok);
                let sev = if denied {
                    Severity::Warning
                } else {
                    Severity::Critical
                };
                let mut it = Item::new(inj, "cross_tenant_read", sev, (made.at, made.at + 5 * SEC));
                it.tenant = Some(a.clone());
                it.target_tenant = Some(b.clone());
                it.request_id = Some(made.request_id);
                it.path = Some(path.clone());
                it.description = format!(
                    "ESO of {} reads {path} ({})",
                    namespace(&a),
                    if denied {
                        "denied: a probe"
                    } else {
                        "allowed: data left the tenant"
                    }
                );
                items.push(it);
                actors.push(Box::new(Scripted::new(vec![s.into_lines()])));
            }
            Injection::AfterHoursAdmin => {
                let Some(at) = night_slot(w) else {
                    return Err(SimError::DoesNotFit {
                        injection: inj.name(),
                        needs: "25 minutes outside business hours (Mon-Fri 08:00-19:00 UTC)",
                    });
                };
                let at = at + r.range(0, 4 * MIN);
                let human = r.pick(&ADMINS).clone();
                let who = human_identity(seed, &human);
                let addr = format!("192.0.2.{}", r.range(150, 250));
                let mut s = Script::new(w, at, addr, &mut r);
                if let Some(tok) = human_login(&mut s, &mut r, &who, human.name) {
                    let n_ops = r.range(4, 9);
                    for _ in 0..n_ops {
                        let think = r.range(20 * SEC, 90 * SEC);
                        s.pause(think);
                        night_chore(&mut s, &mut r, &tok, &tenants);
                    }
                }
                let end = s.t;
                let mut it = Item::new(inj, "after_hours_admin", Severity::High, (at, end));
                it.description = format!(
                    "{} uses the admin policy at {} without a change record",
                    who.display_name,
                    go_time(at)
                );
                items.push(it);
                actors.push(Box::new(Scripted::new(vec![s.into_lines()])));
            }
            Injection::EsoTooFrequent => {
                let t = next_tenant();
                if w.end - w.start < 15 * MIN {
                    return Err(SimError::DoesNotFit {
                        injection: inj.name(),
                        needs: "15 minutes",
                    });
                }
                let at = pick_time(&mut r, w, 0.1, 0.8, 6 * MIN);
                let who = eso_identity(seed, &t);
                let path = kv_path(&t, "feature-flags");
                // A new ExternalSecret with `refreshInterval: 5s`, with ESO's token cache
                // on: one login, then a read every five seconds until someone fixes it.
                let mut s = Script::new(w, at, eso_address(seed), &mut r);
                let Some(tok) = s.k8s_login(&mut r, &who).issued else {
                    continue;
                };
                s.lookup_self(&mut r, &tok);
                let first = s.t;
                for _ in 0..LOOP_READS {
                    s.kv_read(&mut r, &tok, &path, &["flags"], 1, Outcome::Ok);
                    let next = s.t + 5 * SEC + r.range(0, 250 * MS);
                    s.pause(next - s.t);
                }
                let mut it = Item::new(inj, "eso_cadence", Severity::Warning, (first, s.t));
                it.tenant = Some(t.clone());
                it.path = Some(path.clone());
                it.evidence_kind = Some("too_frequent");
                it.description = format!(
                    "ESO of {} reads {path} every 5 s ({LOOP_READS} reads), then the \
                     ExternalSecret is fixed to refresh hourly",
                    namespace(&t)
                );
                items.push(it);
                let fixed = s.t + r.range(20 * SEC, 90 * SEC);
                actors.push(Box::new(Scripted::new(vec![s.into_lines()])));
                // Someone notices and sets `refreshInterval: 1h`: ESO syncs at once on
                // the spec change, then hourly like every other ExternalSecret.
                let mut opts = clean_options(HOUR);
                opts.phase = (fixed - w.start, fixed - w.start + 1);
                let target = Target::Kv {
                    path,
                    keys: vec!["flags"],
                    version: 1,
                };
                let label = format!("eso/{t}/feature-flags");
                actors.push(Box::new(EsoSync::new(seed, &label, w, who, target, opts)));
            }
            Injection::EsoStorm => {
                let at = pick_time(&mut r, w, 0.2, 0.8, 2 * MIN);
                let lines = storm(seed, w, &mut r, at, &tenants);
                let mut it = Item::new(inj, "eso_cadence", Severity::High, (at, at + MIN));
                it.evidence_kind = Some("storm");
                it.description = format!(
                    "{STORM_IDENTITIES} workload identities log in within 20 s at {} \
                     (Vault restart)",
                    go_time(at)
                );
                items.push(it);
                actors.push(Box::new(Scripted::new(vec![lines])));
            }
            Injection::CiOriginRead => {
                let t = next_tenant();
                let at = pick_time(&mut r, w, 0.15, 0.85, 2 * MIN);
                let repo = *r.pick(&CI_REPOS);
                let who = ci_identity(seed, repo, "deploy");
                let addr = runner_address(&mut r);
                let mut s = Script::new(w, at, addr, &mut r);
                let Some(tok) = ci_login(&mut s, &mut r, &who) else {
                    continue;
                };
                s.lookup_self(&mut r, &tok);
                let path = kv_path(&t, "db");
                let ui = format!(
                    "sys/internal/ui/mounts/{}",
                    &path.replacen("/data/", "/", 1)
                );
                let wv = s.world();
                s.call(
                    &mut r,
                    Call::new(Some(&tok), "read", ui, MountKind::System).resp(J::Obj(vec![
                        ("options", J::Obj(vec![("version", wv.hmac("2"))])),
                        ("path", wv.hmac("secret/")),
                        ("type", wv.hmac("kv")),
                    ])),
                );
                let made = s.kv_read(
                    &mut r,
                    &tok,
                    &path,
                    &["host", "password", "username"],
                    3,
                    Outcome::Ok,
                );
                let mut it = Item::new(
                    inj,
                    "ci_origin_read",
                    Severity::High,
                    (made.at, made.at + 5 * SEC),
                );
                it.target_tenant = Some(t.clone());
                it.request_id = Some(made.request_id);
                it.path = Some(path.clone());
                it.description = format!("CI job {} reads {path}", who.display_name);
                items.push(it);
                actors.push(Box::new(Scripted::new(vec![s.into_lines()])));
            }
        }
    }

    let mut answer: Vec<AnswerItem> = items.into_iter().map(Item::done).collect();
    answer.sort_by(|a, b| (a.window_start_ns, a.injection).cmp(&(b.window_start_ns, b.injection)));
    Ok(Plan { actors, answer })
}

/// The first slot with 25 minutes outside business hours, preferring 03:00.
fn night_slot(w: &World) -> Option<i64> {
    let step = 15 * MIN;
    let first = w.start + 5 * MIN;
    let fits =
        |t: i64| t + 25 * MIN <= w.end && !business_hours(t) && !business_hours(t + 25 * MIN);
    let mut t = first;
    while t + 25 * MIN <= w.end {
        let (sod, _) = clock(t);
        if (3 * 3600..4 * 3600).contains(&sod) && fits(t) {
            return Some(t);
        }
        t += step;
    }
    let mut t = first;
    while t + 25 * MIN <= w.end {
        if fits(t) {
            return Some(t);
        }
        t += step;
    }
    None
}

/// Read-only admin work at night (looking around before changing things).
fn night_chore(s: &mut Script<'_>, r: &mut Rng, tok: &super::vault::Token, tenants: &[String]) {
    let w = s.world();
    let t = r.pick(tenants).clone();
    let call =
        match r.below(3) {
            0 => Call::new(Some(tok), "list", "sys/policies/acl", MountKind::System).resp(J::Obj(
                vec![(
                    "keys",
                    J::Arr(
                        tenants
                            .iter()
                            .map(|t| w.hmac(&format!("bookstore-platform-app-{t}")))
                            .collect(),
                    ),
                )],
            )),
            1 => Call::new(
                Some(tok),
                "read",
                format!("sys/policies/acl/bookstore-platform-app-{t}"),
                MountKind::System,
            )
            .resp(J::Obj(vec![
                ("name", w.hmac(&format!("bookstore-platform-app-{t}"))),
                ("policy", w.hmac(&format!("policy of {t}"))),
            ])),
            _ => Call::new(Some(tok), "read", "sys/auth", MountKind::System).resp(J::Obj(vec![(
                "kubernetes/",
                J::Obj(vec![("type", w.hmac("kubernetes"))]),
            )])),
        };
    s.call(r, call);
}

/// Syncs of the ExternalSecret that then goes stale.
const STALE_SYNCS: u32 = 4;

/// Reads of the 5-second loop: three minutes, well past the 10 reads in 300 s.
const LOOP_READS: usize = 36;

/// Distinct identities in a storm: above the default threshold (100 in 30 s).
pub const STORM_IDENTITIES: usize = 110;

const COMPONENTS: [&str; 12] = [
    "catalog-api",
    "orders-worker",
    "payments-gateway",
    "search-indexer",
    "storefront-web",
    "inventory-sync",
    "mailer",
    "recommendations",
    "reviews-api",
    "shipping-worker",
    "pricing-engine",
    "auth-proxy",
];

/// A lease storm after a Vault restart: every workload's Vault Agent logs in again
/// within ~20 seconds. One actor with many concurrent clients: lines are sorted.
fn storm(seed: u64, w: &World, r: &mut Rng, at: i64, tenants: &[String]) -> Vec<Line> {
    let nt = tenants.len();
    let mut lines = Vec::new();
    for i in 0..STORM_IDENTITIES {
        let t = &tenants[i % nt];
        let l = i / nt;
        let mut sa = COMPONENTS[l % COMPONENTS.len()].to_string();
        if l >= COMPONENTS.len() {
            sa = format!("{sa}-{}", l / COMPONENTS.len() + 1);
        }
        let ns = namespace(t);
        let policy = format!("bookstore-platform-app-{t}");
        let who = k8s_identity(seed, &ns, &sa, &ns, &["default", &policy], 3600);
        let addr = pod_address(r);
        let when = at + r.range(0, 20 * SEC);
        let mut s = Script::new(w, when, addr, r);
        s.k8s_login(r, &who);
        lines.extend(s.into_lines());
    }
    lines.sort_by_key(|l| l.t);
    lines
}
