//! Planning a run: the cast of clean actors ([`super::actors`]) and the findings planted
//! among them, each with its answer-key item.
//!
//! Planning happens before any line is produced: the plan decides which tenant each
//! injection hits (a seeded shuffle, so injections spread over tenants), adjusts the
//! clean actors an injection changes (the stale ExternalSecret stops, the racing one
//! refreshes every 70 minutes, the 5-second loop is later fixed to hourly), sets the
//! audit device's states (a `log_raw` window, decided first so every line rendered in it
//! is in clear; a silent gap, decided last so it swallows no other finding),
//! pre-renders one-shot episodes ([`super::extras`] for the extra detections), and
//! records what a correct detector must report.
//!
//! Invariants: every injection either fits the window with room for its detection to
//! become visible, or planning fails with a message saying what it needs; an answer
//! item's window always contains the alert time a correct detector reports; human
//! admins act in business hours only (their sessions are findings of one kind, not also
//! `after_hours_admin`); what a planted finding unavoidably causes besides (the database
//! refreshes a silent gap hides look late: `lease_race`) is in the key as a
//! `side_effect` item, required like the others.

use super::actors::{
    ci_identity, ci_login, eso_address, eso_identity, human_identity, human_login, k8s_identity,
    kv_path, list_tenant_policies, namespace, pod_address, read_tenant_policy, runner_address,
    Actor, BreakGlass, CiRepo, Composition, EsoOptions, EsoSync, HumanActor, MetricsScraper,
    Scripted, StoreValidation, Target, ADMINS, CI_REPOS, DEVELOPER, HOUR, MIN,
};
use super::extras::{self, Planted};
use super::item::{AnswerItem, Item};
use super::json::J;
use super::rng::Rng;
use super::vault::{go_time, Call, Line, MountKind, Outcome, Script, World, MS, SEC};
use super::{Injection, SimError};
use crate::alert::Severity;

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
        down: None,
    }
}

/// How long an ExternalSecret refreshed every `interval` may stay unread before the
/// default config calls it stale: 3 x the learned interval (about the interval plus the
/// requeue drift), at least 2 h.
fn stale_wait(interval: i64) -> i64 {
    (3 * (interval + 2 * SEC)).max(2 * HOUR)
}

/// When the controller goes down: four hours in (every key learned its rhythm), and for
/// how long (up to 10 h, leaving 70 minutes after it), or what it needs.
fn outage_window(
    r: &mut Rng,
    w: &World,
    inj: Injection,
    resumes: bool,
) -> Result<(i64, i64), SimError> {
    let from = w.start + 4 * HOUR + r.range(0, 20 * MIN);
    let room = if resumes { 70 * MIN } else { 10 * MIN };
    let len = (w.end - room - from).min(10 * HOUR);
    if len < 3 * HOUR + 30 * MIN {
        return Err(SimError::DoesNotFit {
            injection: inj.name(),
            needs: if resumes {
                "a window of about 9 hours: 4 h of rhythm, 3.5 h or more down, 1 h after"
            } else {
                "a window of about 8 hours: 4 h of rhythm, then 3.5 h or more of silence"
            },
        });
    }
    Ok((from, from + len))
}

/// The always-on background of the platform, as periods in ns (`None`: left out).
#[derive(Clone, Copy, Debug, Default)]
pub struct Platform {
    /// The SecretStore validation loop.
    pub validation: Option<i64>,
    /// Prometheus's `sys/metrics` scrape.
    pub scrape: Option<i64>,
}

impl Platform {
    /// Responses per 15 minutes the background alone writes, a floor: validation (3 calls
    /// per tenant per period), the scrape, ESO's syncs (about 4 per tenant; measured 4.5).
    fn entries_per_15min(&self, tenants: usize) -> i64 {
        let q = 15 * MIN;
        let n = tenants as i64;
        self.validation.map_or(0, |v| n * 3 * q / v) + self.scrape.map_or(0, |s| q / s) + 4 * n
    }
}

/// Time spans already used by planted findings; the silent gap must avoid them all,
/// and the other injections prefer free time.
#[derive(Default)]
struct Slots {
    taken: Vec<(i64, i64)>,
}

impl Slots {
    fn reserve(&mut self, span: (i64, i64)) {
        self.taken.push(span);
    }

    fn free(&self, a: i64, b: i64) -> bool {
        self.taken.iter().all(|&(x, y)| b <= x || a >= y)
    }

    /// A start for an episode of at most `len` within the `[lo, hi)` fractions of the
    /// window, ending 5 minutes before its end: random, preferring one that overlaps no
    /// planted finding; with `office`, inside business hours from start to end (a human
    /// admin's session). `None` when nothing fits.
    fn pick(
        &self,
        r: &mut Rng,
        w: &World,
        lo: f64,
        hi: f64,
        len: i64,
        office: bool,
    ) -> Option<i64> {
        let d = (w.end - w.start) as f64;
        let a = w.start + (d * lo) as i64;
        let b = (w.start + (d * hi) as i64).min(w.end - len - 5 * MIN);
        if b <= a {
            return None;
        }
        let fits = |t: i64| !office || (w.business_hours(t) && w.business_hours(t + len));
        let mut fallback = None;
        for _ in 0..256 {
            let t = r.range(a, b);
            if !fits(t) {
                continue;
            }
            if self.free(t - MIN, t + len + MIN) {
                return Some(t);
            }
            fallback.get_or_insert(t);
        }
        // Business hours may be a sliver of a long window: scan it.
        let mut t = a + r.range(0, 5 * MIN);
        while t < b {
            if fits(t) && self.free(t - MIN, t + len + MIN) {
                return Some(t);
            }
            if fits(t) {
                fallback.get_or_insert(t);
            }
            t += 5 * MIN;
        }
        fallback
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
/// injected episodes) and the answer key. `platform` is the always-on background.
pub fn plan(
    seed: u64,
    w: &World,
    injections: &[Injection],
    platform: Platform,
) -> Result<Plan, SimError> {
    let validation = platform.validation;
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
    // The ESO controller's outage (every tenant) and its look-alike (one tenant, for good).
    let outage = match has(Injection::EsoOutage) {
        true => {
            let mut r = Rng::derive(seed, "inject/eso_outage");
            Some(outage_window(&mut r, w, Injection::EsoOutage, true)?)
        }
        false => None,
    };
    let tenant_outage = match has(Injection::EsoTenantOutage) {
        true => {
            let mut r = Rng::derive(seed, "inject/eso_tenant_outage");
            let (from, _) = outage_window(&mut r, w, Injection::EsoTenantOutage, false)?;
            Some((next_tenant(), (from, i64::MAX)))
        }
        false => None,
    };
    // The first `stale` deadline the outage passes, and the keys that fall silent.
    let mut outage_due = i64::MAX;
    let mut outage_keys = 0usize;

    let mut actors: Vec<Box<dyn Actor>> = Vec::new();
    let mut items: Vec<Item> = Vec::new();
    let mut slots = Slots::default();
    // Each tenant's database refreshes (sync start times), for the silent gap.
    let mut db_syncs: Vec<(String, Vec<i64>)> = Vec::new();
    // Reads the silent gap must not swallow (sync start times).
    let mut keep_visible: Vec<i64> = Vec::new();

    // The log_raw window first: every line rendered from here on inside it, clean or
    // injected, is written in clear.
    if has(Injection::RawAuditDevice) {
        let inj = Injection::RawAuditDevice;
        let mut r = Rng::derive(seed, &format!("inject/{}", inj.name()));
        if platform.validation.is_none() && platform.scrape.is_none() {
            return Err(SimError::DoesNotFit {
                injection: inj.name(),
                needs: "traffic inside the log_raw window: the validation loop or the \
                        metrics scrape",
            });
        }
        let len = r.range(10 * MIN, 20 * MIN);
        let Some(at) = slots.pick(&mut r, w, 0.1, 0.9, len, false) else {
            return Err(SimError::DoesNotFit {
                injection: inj.name(),
                needs: "a window of about 30 minutes",
            });
        };
        w.raw.set(Some((at, at + len)));
        slots.reserve((at, at + len));
        let mut it = Item::new(inj, "audit_device_change", Severity::High, (at, at + len));
        it.evidence_kind = Some("log_raw");
        it.description = format!(
            "from {} to {} the audit device writes tokens and values in clear (log_raw, \
             switched on by a config reload: no sys/audit request)",
            go_time(at),
            go_time(at + len)
        );
        items.push(it);
    }

    for t in &tenants {
        let who = eso_identity(seed, t);
        let down = match &tenant_outage {
            Some((victim, span)) if victim == t => Some(*span),
            _ => outage,
        };
        // The last sync before the controller stops, and what a correct detector reports
        // for the key it leaves silent.
        let mut went_silent = |schedule: &[i64], interval: i64, path: String| -> Option<Item> {
            let (from, _) = down?;
            let &last = schedule.iter().rev().find(|&&s| s < from)?;
            let due = last + stale_wait(interval);
            if outage.is_some() && down == outage {
                outage_due = outage_due.min(due);
                outage_keys += 1;
                return None;
            }
            if due + 5 * MIN > w.end {
                return None;
            }
            let mut it = Item::new(
                Injection::EsoTenantOutage,
                "eso_cadence",
                Severity::Warning,
                (due - 5 * MIN, due + 5 * MIN),
            );
            it.tenant = Some(t.clone());
            it.path = Some(path.clone());
            it.evidence_kind = Some("stale");
            it.description = format!(
                "ESO of {} stops at ~{} while every other tenant's goes on: {path} is \
                 read no more",
                namespace(t),
                go_time(from)
            );
            Some(it)
        };
        for (name, keys, interval) in tenant_secrets(seed, t) {
            let mut opts = clean_options(interval);
            opts.down = down;
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
            if !stale {
                let n = ((w.end - w.start) / interval + 2) as usize;
                items.extend(went_silent(&actor.schedule(n), interval, path.clone()));
            }
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
                // The gap must not hide the reads the engine learns from; the alert
                // itself is timed at the deadline whenever the clock passes it.
                slots.reserve((w.start, last + MIN));
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
        opts.down = down;
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
            slots.reserve((w.start, second + MIN));
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
        } else {
            let n = ((w.end - w.start) / (50 * MIN) + 2) as usize;
            let schedule = actor.schedule(n);
            let silent = went_silent(&schedule, 50 * MIN, format!("database/creds/{role}"));
            items.extend(silent);
            db_syncs.push((t.clone(), schedule));
        }
        actors.push(Box::new(actor));
        if let Some(every) = validation {
            let mut v = StoreValidation::new(seed, w, t, every);
            v.down = down;
            actors.push(Box::new(v));
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
    if let Some(every) = platform.scrape {
        actors.push(Box::new(MetricsScraper::new(seed, w, every)));
    }

    for &inj in injections {
        let mut r = Rng::derive(seed, &format!("inject/{}", inj.name()));
        match inj {
            Injection::EsoStale | Injection::EsoLeaseRace | Injection::EsoTenantOutage => {}
            Injection::EsoOutage => {
                let Some((from, to)) = outage else { continue };
                if outage_due + 5 * MIN > to {
                    return Err(SimError::DoesNotFit {
                        injection: inj.name(),
                        needs: "an outage longer than the first stale deadline",
                    });
                }
                let mut it = Item::new(
                    inj,
                    "eso_cadence",
                    Severity::Warning,
                    (outage_due - 5 * MIN, outage_due + 5 * MIN),
                );
                it.evidence_kind = Some("stale");
                it.description = format!(
                    "the ESO controller is down from ~{} to ~{}: no tenant's ESO reads \
                     ({outage_keys} ExternalSecrets and credentials fall silent) while the \
                     rest of the platform carries on; one platform-wide finding, no \
                     per-key stale, no lease_race when it returns",
                    go_time(from),
                    go_time(to)
                );
                items.push(it);
                let mut it = Item::new(inj, "eso_cadence", Severity::Info, (to, to + 5 * MIN));
                it.evidence_kind = Some("resumed");
                it.side_effect = true;
                it.description = format!(
                    "the ESO controller is back at ~{}: the outage's resolving record",
                    go_time(to)
                );
                items.push(it);
            }
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
                slots.reserve((at, s.t));
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
                slots.reserve((at, end));
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
                slots.reserve((at, fixed + MIN));
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
                let fixed_actor = EsoSync::new(seed, &label, w, who, target, opts);
                // Its learned interval is the loop's (the median of 35 s intervals), so
                // the stale check waits only its 2 h floor: one hourly read lost in a
                // silent gap would make it stale. The gap keeps clear of these reads.
                let n = ((w.end - w.start) / HOUR + 2) as usize;
                keep_visible.extend(fixed_actor.schedule(n));
                actors.push(Box::new(fixed_actor));
            }
            Injection::EsoStorm => {
                let at = pick_time(&mut r, w, 0.2, 0.8, 2 * MIN);
                let lines = storm(seed, w, &mut r, at, &tenants);
                slots.reserve((at, at + MIN));
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
                slots.reserve((at, s.t));
                actors.push(Box::new(Scripted::new(vec![s.into_lines()])));
            }
            Injection::RawAuditDevice | Injection::AuditStreamSilent => {}
            // Planted after the loop (`super::learned`).
            Injection::FirstSeenAccess
            | Injection::HumanInMachineSecret
            | Injection::UnusualHour
            | Injection::NewTenant => {}
            Injection::RootTokenUse => {
                let at = pick(&slots, &mut r, w, inj, extras::ROOT_LEN, false)?;
                plant(
                    extras::root_session(w, &mut r, at),
                    &mut slots,
                    &mut items,
                    &mut actors,
                );
            }
            Injection::GenerateRoot => {
                let at = pick(&slots, &mut r, w, inj, extras::GENERATE_ROOT_LEN, false)?;
                plant(
                    extras::generate_root(w, &mut r, at),
                    &mut slots,
                    &mut items,
                    &mut actors,
                );
            }
            Injection::Enumeration => {
                let at = pick(&slots, &mut r, w, inj, extras::ENUMERATION_LEN, false)?;
                let p = extras::enumeration(seed, w, &mut r, at);
                plant(p, &mut slots, &mut items, &mut actors);
            }
            Injection::LoginFailureBurst => {
                let at = pick(&slots, &mut r, w, inj, extras::LOGIN_FAILURES_LEN, false)?;
                let p = extras::login_failures(w, &mut r, at);
                plant(p, &mut slots, &mut items, &mut actors);
            }
            Injection::TokenTheft => {
                let at = pick(&slots, &mut r, w, inj, super::tokens::THEFT_LEN, false)?;
                let p = super::tokens::token_theft(seed, w, &mut r, at);
                plant(p, &mut slots, &mut items, &mut actors);
            }
            Injection::WrappingInterception => {
                let at = pick(&slots, &mut r, w, inj, super::tokens::WRAP_LEN, false)?;
                let p = super::tokens::wrapping_interception(seed, w, &mut r, at);
                plant(p, &mut slots, &mut items, &mut actors);
            }
            Injection::AuditDeviceDisable
            | Injection::AuditDeviceEnable
            | Injection::PolicyDrift
            | Injection::AuthOrMountChange
            | Injection::SysRawAccess
            | Injection::MassRevocation => {
                let len = if inj == Injection::MassRevocation {
                    extras::MASS_REVOCATION_LEN
                } else {
                    extras::ADMIN_LEN
                };
                let at = pick(&slots, &mut r, w, inj, len, true)?;
                let planted = match inj {
                    Injection::AuditDeviceDisable => extras::audit_disable(seed, w, &mut r, at),
                    Injection::AuditDeviceEnable => extras::audit_enable(seed, w, &mut r, at),
                    Injection::PolicyDrift => {
                        let t = next_tenant();
                        extras::policy_drift(seed, w, &mut r, at, &t)
                    }
                    Injection::AuthOrMountChange => extras::auth_enable(seed, w, &mut r, at),
                    Injection::SysRawAccess => extras::sys_raw(seed, w, &mut r, at),
                    _ => {
                        let a = next_tenant();
                        let b = next_tenant();
                        extras::mass_revocation(seed, w, &mut r, at, &a, &b)
                    }
                };
                // A login always succeeds in the simulation; `None` cannot happen.
                if let Some(p) = planted {
                    plant(p, &mut slots, &mut items, &mut actors);
                }
            }
        }
    }

    for span in super::learned::plan(seed, w, injections, &mut items, &mut actors)? {
        slots.reserve(span);
    }

    // The silent gap last: it must swallow no other finding.
    if has(Injection::AuditStreamSilent) {
        let race = race_tenant.as_deref();
        let syncs: Vec<&(String, Vec<i64>)> = db_syncs
            .iter()
            .filter(|(t, _)| Some(t.as_str()) != race)
            .collect();
        silent_gap(seed, w, platform, &slots, &syncs, &keep_visible, &mut items)?;
    }

    let mut answer: Vec<AnswerItem> = items.into_iter().map(Item::done).collect();
    answer.sort_by(|a, b| (a.window_start_ns, a.injection).cmp(&(b.window_start_ns, b.injection)));
    Ok(Plan { actors, answer })
}

/// A start for an injection's episode (see [`Slots::pick`]), or what it needs.
fn pick(
    slots: &Slots,
    r: &mut Rng,
    w: &World,
    inj: Injection,
    len: i64,
    office: bool,
) -> Result<i64, SimError> {
    let (lo, hi) = if office { (0.0, 1.0) } else { (0.1, 0.9) };
    slots
        .pick(r, w, lo, hi, len, office)
        .ok_or(SimError::DoesNotFit {
            injection: inj.name(),
            needs: if office {
                "a human admin's session of about 15 minutes in business hours (Mon-Fri \
             08:00-19:00 UTC)"
            } else {
                "a window of about 30 minutes"
            },
        })
}

/// Add a pre-rendered episode to the run.
fn plant(p: Planted, slots: &mut Slots, items: &mut Vec<Item>, actors: &mut Vec<Box<dyn Actor>>) {
    slots.reserve(p.span);
    items.extend(p.items);
    actors.push(Box::new(Scripted::new(vec![p.lines])));
}

/// How long before and after each gap edge no database refresh may start: a sync (login,
/// a retried read, a re-reconcile) lasts under 30 s, so one near an edge could be cut in
/// two, and whether the engine then sees its read would be a coin toss.
const EDGE: i64 = 40 * SEC;

/// The audit stream of a busy platform goes silent: from `g0` to `g1` (21-27 minutes) the
/// device writes nothing, then resumes. The heartbeat alarm reports it once the gap
/// passes its 15 minutes (time: the last entry before the gap + 900 s); a planted stale
/// ExternalSecret whose deadline is not yet past goes stale the gap later. Database
/// refreshes that fall into the gap are invisible; each tenant's next one looks ~100
/// minutes after the previous: a `lease_race` the key lists as a side effect.
fn silent_gap(
    seed: u64,
    w: &World,
    platform: Platform,
    slots: &Slots,
    db_syncs: &[&(String, Vec<i64>)],
    keep_visible: &[i64],
    items: &mut Vec<Item>,
) -> Result<(), SimError> {
    let inj = Injection::AuditStreamSilent;
    // The alarm judges a stream that carried 60 entries in the 15 minutes before the
    // gap; ask for a quarter more, the background's floor, so it always does.
    if platform.entries_per_15min(w.tenants.len()) < 75 {
        return Err(SimError::DoesNotFit {
            injection: inj.name(),
            needs: "a busy stream (the alarm judges streams of 60+ entries in 15 minutes): \
                    the validation loop and the metrics scrape on, with 4 tenants or more",
        });
    }
    let mut r = Rng::derive(seed, &format!("inject/{}", inj.name()));
    let len = r.range(21 * MIN, 27 * MIN);
    let near = |t: i64| {
        db_syncs
            .iter()
            .any(|(_, v)| v.iter().any(|&s| (t - EDGE..=t + SEC).contains(&s)))
    };
    // A stale deadline near the gap's start would go stale before it or after it by a few
    // seconds of traffic: keep clear, so the key below says which.
    let stale_due: Vec<i64> = (items.iter())
        .filter(|it| it.injection == Injection::EsoStale)
        .map(|it| it.window.0 + 2 * MIN)
        .collect();
    let good = |g0: i64| {
        slots.free(g0 - MIN, g0 + len + MIN)
            && !near(g0)
            && !stale_due
                .iter()
                .any(|&d| (g0 - 2 * MIN..=g0 + 2 * MIN).contains(&d))
            && !near(g0 + len)
            && !keep_visible
                .iter()
                .any(|&s| (g0 - EDGE..=g0 + len + SEC).contains(&s))
    };
    let (lo, hi) = (w.start + 20 * MIN, w.end - len - 5 * MIN);
    let mut found = None;
    if hi > lo {
        for _ in 0..512 {
            let g0 = r.range(lo, hi);
            if good(g0) {
                found = Some(g0);
                break;
            }
        }
        let mut g0 = lo;
        while found.is_none() && g0 < hi {
            if good(g0) {
                found = Some(g0);
            }
            g0 += 10 * SEC;
        }
    }
    let Some(g0) = found else {
        return Err(SimError::DoesNotFit {
            injection: inj.name(),
            needs: "about 35 free minutes (20 of busy stream before a 25-minute gap) \
                    clear of the other injections",
        });
    };
    let g1 = g0 + len;
    w.silent.set(Some((g0, g1)));
    let alarm = g0 + 15 * MIN;
    let mut it = Item::new(
        inj,
        "audit_device_change",
        Severity::High,
        (alarm - 5 * MIN, alarm),
    );
    it.evidence_kind = Some("silent");
    it.description = format!(
        "the audit device writes nothing from {} to {} ({} minutes; a stalled socket \
         listener), then resumes",
        go_time(g0),
        go_time(g1),
        len / MIN
    );
    items.push(it);
    // The engine credits a silence it names to the per-key `stale` timers: a stale
    // ExternalSecret whose deadline comes after the gap begins goes stale that much later
    // (the gap, and up to a background interval on either side of it).
    for it in items.iter_mut() {
        if it.injection == Injection::EsoStale && it.window.0 + 2 * MIN > g0 {
            it.window = (it.window.0 + len, it.window.1 + len + MIN);
        }
    }
    for (t, syncs) in db_syncs {
        let hidden = syncs.iter().find(|&&s| s > g0 && s < g1);
        let prev = syncs.iter().rev().find(|&&s| s < g0 - EDGE);
        let next = syncs.iter().find(|&&s| s > g1 && s < w.end);
        let (Some(&hidden), Some(&prev), Some(&next)) = (hidden, prev, next) else {
            continue;
        };
        let role = super::actors::db_role(t);
        let mut it = Item::new(inj, "eso_cadence", Severity::High, (next, next + MIN));
        it.tenant = Some(t.clone());
        it.path = Some(format!("database/creds/{role}"));
        it.evidence_kind = Some("lease_race");
        it.side_effect = true;
        it.description = format!(
            "side effect: {t}'s database refresh at ~{} fell into the silent gap, so the \
             one at ~{} comes {} minutes after the last one seen",
            go_time(hidden),
            go_time(next),
            (next - prev) / MIN
        );
        items.push(it);
    }
    Ok(())
}

/// The first slot with 25 minutes outside business hours, preferring 03:00.
fn night_slot(w: &World) -> Option<i64> {
    let step = 15 * MIN;
    let first = w.start + 5 * MIN;
    let fits =
        |t: i64| t + 25 * MIN <= w.end && !w.business_hours(t) && !w.business_hours(t + 25 * MIN);
    let mut t = first;
    while t + 25 * MIN <= w.end {
        let (sod, _) = w.clock(t);
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
    let call = match r.below(3) {
        0 => list_tenant_policies(w, tok, tenants),
        1 => read_tenant_policy(w, tok, &t, &format!("policy of {t}")),
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
