//! Planted findings of the detections that learn (`first_seen_access`,
//! `human_in_machine_secret`, `unusual_hour`) and their look-alike, with their answer-key
//! items. They need the default 7-day learning period behind them: every one is planted on
//! the first workday after the developer (`dave`, whose clean sessions are 09:40-10:40 on
//! workdays) has a week of history, so a window of 8 days and 12 hours from a Monday is
//! the least that fits (planning fails with that message otherwise).
//!
//! - `first_seen_access`: a payroll export job (a machine identity) reads
//!   `secret/data/shared/payroll` every night from the start; after the learning period,
//!   dave reads it in his usual morning session (a warning: a person, a secret new to him).
//! - `human_in_machine_secret`: in the same morning dave reads a tenant's database secret,
//!   which only its ESO ever read (high); that read is a secret new to dave too, so a
//!   `first_seen_access` warning comes with it (a side effect).
//! - `unusual_hour`: dave logs in at 02:00-02:40 on a workday night after the learning
//!   period and reads a secret he always reads (one warning).
//! - `new_tenant` (the look-alike, no item): a tenant created after the learning period;
//!   its ESO reads its secrets hourly from 08:00 and dave reads one of them in his usual
//!   session. Every path is new to everyone: nothing fires while it learns. Dave's clean
//!   sessions on his usual days stay quiet the same way.

use super::actors::{
    eso_identity, human_address, human_identity, human_login, k8s_identity, kv_path, namespace,
    pod_address, Actor, EsoOptions, EsoSync, Scripted, Target, ADMINS, DAY, DEVELOPER, HOUR, MIN,
};
use super::item::Item;
use super::rng::Rng;
use super::vault::{go_time, Outcome, Script, World, SEC};
use super::{Injection, SimError};
use crate::alert::Severity;

/// The default learning period (`learning.period_secs`).
pub const LEARNING: i64 = 7 * DAY;

/// The planted injections and their look-alike: not part of `all` (they need 8.5 days).
pub const INJECTIONS: [Injection; 4] = [
    Injection::FirstSeenAccess,
    Injection::HumanInMachineSecret,
    Injection::UnusualHour,
    Injection::NewTenant,
];

const NEEDS: &str = "a window of 8 days and 12 hours from a Monday: the 7-day learning \
                     period, then a workday morning until 11:00";

/// The secret only the payroll job reads while the detections learn.
const PAYROLL: &str = "secret/data/shared/payroll";

/// The tenant created after the learning period (not among the simulator's names).
const NEW_TENANT: &str = "nova";

/// Midnight of the first workday (Mon-Fri, local) at or after `t`'s day.
fn workday_from(w: &World, t: i64) -> i64 {
    let mut day = w.midnight(t);
    while w.clock(day + HOUR).1 >= 5 {
        day += DAY;
    }
    day
}

/// Plant the learned injections among `injections`, appending their actors and items;
/// the time spans they use (a silent gap must keep clear of them).
pub fn plan(
    seed: u64,
    w: &World,
    injections: &[Injection],
    items: &mut Vec<Item>,
    actors: &mut Vec<Box<dyn Actor>>,
) -> Result<Vec<(i64, i64)>, SimError> {
    let wanted: Vec<Injection> = INJECTIONS
        .into_iter()
        .filter(|i| injections.contains(i))
        .collect();
    let Some(&first) = wanted.first() else {
        return Ok(Vec::new());
    };
    // Dave is past his learning period after his first session plus a week; the first
    // workday morning after that is when he acts.
    let dave_learned = workday_from(w, w.start) + 10 * HOUR + 40 * MIN + LEARNING;
    let mut morning = workday_from(w, dave_learned);
    if morning + 10 * HOUR < dave_learned {
        morning = workday_from(w, morning + DAY);
    }
    let night = w.midnight(dave_learned) + DAY + 2 * HOUR;
    if morning + 11 * HOUR + 5 * MIN > w.end || night + HOUR > w.end {
        return Err(SimError::DoesNotFit {
            injection: first.name(),
            needs: NEEDS,
        });
    }
    let mut spans = Vec::new();
    let who = human_identity(seed, &DEVELOPER);
    let addr = human_address(seed, &DEVELOPER, ADMINS.len());
    for inj in wanted {
        let mut r = Rng::derive(seed, &format!("inject/{}", inj.name()));
        match inj {
            Injection::FirstSeenAccess => {
                actors.push(Box::new(payroll_job(seed, w, &mut r)));
                let at = morning + 10 * HOUR + r.range(0, 10 * MIN);
                let mut s = Script::new(w, at, addr.clone(), &mut r);
                let Some(tok) = human_login(&mut s, &mut r, &who, DEVELOPER.name) else {
                    continue;
                };
                s.pause(r.range(10 * SEC, 60 * SEC));
                let made = s.kv_read(&mut r, &tok, PAYROLL, &["iban_export_key"], 4, Outcome::Ok);
                let mut it = Item::new(
                    inj,
                    "first_seen_access",
                    Severity::Warning,
                    (made.at, made.at + 5 * SEC),
                );
                it.request_id = Some(made.request_id);
                it.path = Some(PAYROLL.to_string());
                it.description = format!(
                    "{} reads {PAYROLL}, which only the payroll export job read for a week",
                    who.display_name
                );
                items.push(it);
                spans.push((at, s.t));
                actors.push(Box::new(Scripted::new(vec![s.into_lines()])));
            }
            Injection::HumanInMachineSecret => {
                let tenant = r.pick(&w.tenants).clone();
                let path = kv_path(&tenant, "db");
                let at = morning + 10 * HOUR + 20 * MIN + r.range(0, 10 * MIN);
                let mut s = Script::new(w, at, addr.clone(), &mut r);
                let Some(tok) = human_login(&mut s, &mut r, &who, DEVELOPER.name) else {
                    continue;
                };
                s.pause(r.range(10 * SEC, 60 * SEC));
                let made = s.kv_read(
                    &mut r,
                    &tok,
                    &path,
                    &["host", "password", "username"],
                    1 + (super::rng::hash_str(&path) % 6) as i64,
                    Outcome::Ok,
                );
                let window = (made.at, made.at + 5 * SEC);
                let mut it = Item::new(inj, "human_in_machine_secret", Severity::High, window);
                it.target_tenant = Some(tenant.clone());
                it.request_id = Some(made.request_id.clone());
                it.path = Some(path.clone());
                it.description = format!(
                    "{} reads {path}, which only the ESO of {} read for a week",
                    who.display_name,
                    namespace(&tenant)
                );
                items.push(it);
                let mut it = Item::new(inj, "first_seen_access", Severity::Warning, window);
                it.request_id = Some(made.request_id);
                it.path = Some(path.clone());
                it.side_effect = true;
                it.description = format!("{path} is a secret {} never read", who.display_name);
                items.push(it);
                spans.push((at, s.t));
                actors.push(Box::new(Scripted::new(vec![s.into_lines()])));
            }
            Injection::UnusualHour => {
                let at = night + r.range(0, 40 * MIN);
                let mut s = Script::new(w, at, addr.clone(), &mut r);
                let Some(tok) = human_login(&mut s, &mut r, &who, DEVELOPER.name) else {
                    continue;
                };
                for _ in 0..r.range(1, 4) {
                    s.pause(r.range(10 * SEC, 90 * SEC));
                    s.kv_read(
                        &mut r,
                        &tok,
                        "secret/data/shared/registry",
                        &["token"],
                        2,
                        Outcome::Ok,
                    );
                }
                let mut it = Item::new(inj, "unusual_hour", Severity::Warning, (at, s.t));
                it.description = format!(
                    "{} works at {} (a workday night), never before 09:00",
                    who.display_name,
                    go_time(at)
                );
                items.push(it);
                spans.push((at, s.t));
                actors.push(Box::new(Scripted::new(vec![s.into_lines()])));
            }
            Injection::NewTenant => {
                let from = morning + 8 * HOUR;
                let eso = eso_identity(seed, NEW_TENANT);
                for (name, keys) in [("db", vec!["host", "password"]), ("app", vec!["api_key"])] {
                    let opts = EsoOptions {
                        interval: HOUR,
                        phase: (from - w.start, from - w.start + 10 * MIN),
                        max_syncs: None,
                        p_duplicate: 0.0,
                        p_retry: 0.0,
                        p_rereconcile: 0.0,
                        down: None,
                    };
                    let target = Target::Kv {
                        path: kv_path(NEW_TENANT, name),
                        keys,
                        version: 1,
                    };
                    let label = format!("eso/{NEW_TENANT}/{name}");
                    actors.push(Box::new(EsoSync::new(
                        seed,
                        &label,
                        w,
                        eso.clone(),
                        target,
                        opts,
                    )));
                }
                let at = morning + 10 * HOUR + 35 * MIN + r.range(0, 5 * MIN);
                let mut s = Script::new(w, at, addr.clone(), &mut r);
                if let Some(tok) = human_login(&mut s, &mut r, &who, DEVELOPER.name) {
                    s.pause(r.range(10 * SEC, 60 * SEC));
                    let path = kv_path(NEW_TENANT, "db");
                    s.kv_read(&mut r, &tok, &path, &["host", "password"], 1, Outcome::Ok);
                }
                spans.push((at, s.t));
                actors.push(Box::new(Scripted::new(vec![s.into_lines()])));
            }
            _ => {}
        }
    }
    Ok(spans)
}

/// The payroll export: a CronJob in `finance` reading the payroll secret every night at
/// 01:00-01:05 for the whole window.
fn payroll_job(seed: u64, w: &World, r: &mut Rng) -> Scripted {
    let who = k8s_identity(
        seed,
        "finance",
        "payroll-export",
        "payroll-export",
        &["default", "payroll-read"],
        600,
    );
    let mut episodes = Vec::new();
    let mut day = w.midnight(w.start);
    while day < w.end {
        let at = day + HOUR + r.range(0, 5 * MIN);
        if at >= w.start && at + MIN < w.end {
            let mut s = Script::new(w, at, pod_address(r), r);
            if let Some(tok) = s.k8s_login(r, &who).issued {
                s.kv_read(r, &tok, PAYROLL, &["iban_export_key"], 4, Outcome::Ok);
                s.revoke_self(r, &tok);
            }
            episodes.push(s.into_lines());
        }
        day += DAY;
    }
    Scripted::new(episodes)
}
