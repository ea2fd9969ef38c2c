//! A deterministic generator of multi-tenant platform traffic as Vault/OpenBao audit
//! lines, with planted findings and their answer key (`auditwatch simulate`, golden
//! scenarios, tests).
//!
//! The clean traffic follows `shared/docs/platform.md`: per tenant, External Secrets
//! Operator syncs (login, read, lookup-self, revoke-self at each ExternalSecret's refresh
//! interval, with duplicate reads, retries and re-reconciles), the SecretStore validation
//! loop, dynamic database credentials every 50 minutes; the Crossplane Composition at any
//! hour (a nightly rollout at 03:00); humans with the admin policy in business hours; a
//! developer's single denied read; CI pipelines that only log in; the daily break-glass
//! CronJob; Prometheus scraping `sys/metrics`. [`Injection`]s add findings on top (the
//! four headline detections and every extra one: root token, audit device changes, a
//! silent stream, a `log_raw` device, policy drift, auth/mount changes, `sys/raw`,
//! generate-root, enumeration, failed-login bursts, mass revocation) and record what a
//! correct detector reports ([`AnswerItem`]).
//!
//! Invariants:
//! - Deterministic: the same [`SimConfig`] gives the same bytes. Every actor draws from
//!   its own PRNG stream derived from the seed and a stable label; nothing reads a clock.
//! - Ordered: the output is sorted by entry time. Each actor yields its episodes in time
//!   order and a heap merges actors (ties broken by actor index, so still deterministic).
//! - Paired: every call is a `request` and a `response` entry with the same `request.id`.
//! - Quiet when clean: with no injections, the default rules and config raise no alert
//!   (measured quiet at 400 tenants, the break-glass run included: it is a
//!   `bulk_readers` exception to the enumeration rules; at 800 the steady rate of
//!   validation-loop logins crosses the storm threshold of 100 identities in 30 s, which
//!   the rule says to tune to the platform's size).

pub mod actors;
mod extras;
pub mod inject;
pub mod item;
pub mod json;
pub mod learned;
pub mod rng;
pub mod scenarios;
mod tokens;
pub mod vault;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Write};

use serde::Serialize;

pub use item::AnswerItem;
use vault::{Line, World, SEC};

/// A finding to plant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Injection {
    /// A tenant's ESO reads another tenant's secret, allowed (critical).
    CrossTenantRead,
    /// The same, denied (a probe: warning).
    CrossTenantProbe,
    /// A human uses the admin policy at night.
    AfterHoursAdmin,
    /// A 5-second refresh loop for a few minutes.
    EsoTooFrequent,
    /// An ExternalSecret read hourly stops being read.
    EsoStale,
    /// Dynamic DB credentials refreshed every 70 minutes on a 1 h lease.
    EsoLeaseRace,
    /// More than 100 identities log in within 30 s.
    EsoStorm,
    /// A CI token reads tenant KV.
    CiOriginRead,
    /// A root-token session from an unusual address.
    RootTokenUse,
    /// An admin disables the SIEM's audit device (`delete sys/audit/siem`).
    AuditDeviceDisable,
    /// An admin enables a new socket audit device pointing off the platform.
    AuditDeviceEnable,
    /// The audit stream of a busy platform stops for 20+ minutes, then resumes.
    AuditStreamSilent,
    /// For a while the device writes tokens and values in clear (`log_raw`).
    RawAuditDevice,
    /// A human or a CI job rewrites a tenant's policy (not the Composition).
    PolicyDrift,
    /// An admin enables a second userpass auth method.
    AuthOrMountChange,
    /// An admin reads Vault's storage through `sys/raw`.
    SysRawAccess,
    /// A generate-root attempt is started, then advanced with a key share.
    GenerateRoot,
    /// A stolen token LISTs 40+ paths in a minute, then reads 120 distinct paths.
    Enumeration,
    /// Password spraying from one address; a distributed guess at one user.
    LoginFailureBurst,
    /// An admin revokes a lease prefix, then 30 leases one by one.
    MassRevocation,
    /// The ESO controller is down for hours (every tenant's ESO traffic stops, the rest
    /// of the platform carries on), then comes back: one platform-wide finding.
    EsoOutage,
    /// The look-alike: one tenant's ESO stops for good while the others go on (its own
    /// `stale` per ExternalSecret).
    EsoTenantOutage,
    /// A developer's token used from outside (lookup, then a tenant secret); beside it an
    /// ESO pod rescheduled to another node and a renewal by the token's own client.
    TokenTheft,
    /// A wrapped secret unwrapped by an interceptor before its recipient; beside it one
    /// unwrapped once by its recipient.
    WrappingInterception,
    /// After the 7-day learning period, a person reads a secret only a job read
    /// ([`learned`]).
    FirstSeenAccess,
    /// After the learning period, a person reads a tenant secret only its ESO read.
    HumanInMachineSecret,
    /// After the learning period, a person works on a workday night, never before.
    UnusualHour,
    /// The look-alike: a tenant created after the learning period; its secrets, new to
    /// everyone, are read by its ESO and a person at once (quiet).
    NewTenant,
}

impl Injection {
    pub const ALL: [Injection; 22] = [
        Injection::CrossTenantRead,
        Injection::CrossTenantProbe,
        Injection::AfterHoursAdmin,
        Injection::EsoTooFrequent,
        Injection::EsoStale,
        Injection::EsoLeaseRace,
        Injection::EsoStorm,
        Injection::CiOriginRead,
        Injection::RootTokenUse,
        Injection::AuditDeviceDisable,
        Injection::AuditDeviceEnable,
        Injection::AuditStreamSilent,
        Injection::RawAuditDevice,
        Injection::PolicyDrift,
        Injection::AuthOrMountChange,
        Injection::SysRawAccess,
        Injection::GenerateRoot,
        Injection::Enumeration,
        Injection::LoginFailureBurst,
        Injection::MassRevocation,
        Injection::TokenTheft,
        Injection::WrappingInterception,
    ];

    /// Planted only when named: not part of `all`, because an outage of every tenant's
    /// ESO by design folds the per-key ESO findings (`eso_stale`, `eso_lease_race`) that
    /// fall in it, and the look-alike is the same silence for one tenant.
    pub const OPT_IN: [Injection; 2] = [Injection::EsoOutage, Injection::EsoTenantOutage];

    pub fn name(self) -> &'static str {
        match self {
            Injection::CrossTenantRead => "cross_tenant_read",
            Injection::CrossTenantProbe => "cross_tenant_probe",
            Injection::AfterHoursAdmin => "after_hours_admin",
            Injection::EsoTooFrequent => "eso_too_frequent",
            Injection::EsoStale => "eso_stale",
            Injection::EsoLeaseRace => "eso_lease_race",
            Injection::EsoStorm => "eso_storm",
            Injection::CiOriginRead => "ci_origin_read",
            Injection::RootTokenUse => "root_token_use",
            Injection::AuditDeviceDisable => "audit_device_disable",
            Injection::AuditDeviceEnable => "audit_device_enable",
            Injection::AuditStreamSilent => "audit_stream_silent",
            Injection::RawAuditDevice => "raw_audit_device",
            Injection::PolicyDrift => "policy_drift",
            Injection::AuthOrMountChange => "auth_or_mount_change",
            Injection::SysRawAccess => "sys_raw_access",
            Injection::GenerateRoot => "generate_root",
            Injection::Enumeration => "enumeration",
            Injection::LoginFailureBurst => "login_failure_burst",
            Injection::MassRevocation => "mass_revocation",
            Injection::EsoOutage => "eso_outage",
            Injection::EsoTenantOutage => "eso_tenant_outage",
            Injection::TokenTheft => "token_theft",
            Injection::WrappingInterception => "wrapping_interception",
            Injection::FirstSeenAccess => "first_seen_access",
            Injection::HumanInMachineSecret => "human_in_machine_secret",
            Injection::UnusualHour => "unusual_hour",
            Injection::NewTenant => "new_tenant",
        }
    }

    /// A name as written on the command line (`-` and `_` alike).
    pub fn parse(s: &str) -> Option<Injection> {
        let s = s.trim().replace('-', "_");
        (Injection::ALL.into_iter().chain(Injection::OPT_IN))
            .chain(learned::INJECTIONS)
            .find(|i| i.name() == s)
    }

    /// A comma-separated list, or `all`. Duplicates collapse; order is canonical.
    pub fn parse_list(s: &str) -> Result<Vec<Injection>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                out.extend(Injection::ALL);
                continue;
            }
            if part == "learned" {
                out.extend(learned::INJECTIONS);
                continue;
            }
            match Injection::parse(part) {
                Some(i) => out.push(i),
                None => {
                    let known: Vec<&str> = (Injection::ALL.iter().chain(&Injection::OPT_IN))
                        .chain(&learned::INJECTIONS)
                        .map(|i| i.name())
                        .collect();
                    return Err(format!(
                        "unknown injection `{part}` (known: {}, all, learned)",
                        known.join(", ")
                    ));
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// Why a simulation cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("at least one tenant is needed")]
    NoTenants,
    #[error("the duration must be positive")]
    EmptyWindow,
    #[error("injection `{injection}` needs at least two tenants")]
    TooFewTenants { injection: &'static str },
    #[error("injection `{injection}` does not fit the window: it needs {needs}")]
    DoesNotFit {
        injection: &'static str,
        needs: &'static str,
    },
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub tenants: usize,
    /// Start of the window, Unix ns (UTC).
    pub start: i64,
    pub duration_secs: i64,
    pub injections: Vec<Injection>,
    /// The SecretStore validation loop's period; `None` leaves the loop out (it is the
    /// bulk of the volume; long golden scenarios drop it to stay small).
    pub store_validation_secs: Option<i64>,
    /// Prometheus's `sys/metrics` scrape period; `None` leaves the scraper out (golden
    /// scenarios, to stay small).
    pub metrics_scrape_secs: Option<i64>,
    /// The platform's offset from UTC in seconds: humans keep office hours (Mon-Fri
    /// 08:00-19:00) and night rollouts run at 03:00 local time.
    pub utc_offset_secs: i64,
}

/// 2026-03-02T00:00:00Z, a Monday.
pub const DEFAULT_START: i64 = 1_772_409_600 * SEC;

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            tenants: 8,
            start: DEFAULT_START,
            duration_secs: 24 * 3600,
            injections: Vec::new(),
            store_validation_secs: Some(300),
            metrics_scrape_secs: Some(30),
            utc_offset_secs: 0,
        }
    }
}

const TENANT_NAMES: [&str; 16] = [
    "acme", "lumen", "nimbus", "orbit", "quill", "rivet", "sable", "tundra", "vesper", "willow",
    "zephyr", "borealis", "cobalt", "delta", "ember", "fable",
];

/// Tenant names: words for small platforms, `t01`.. (zero-padded) beyond sixteen.
pub fn tenant_names(n: usize) -> Vec<String> {
    if n <= TENANT_NAMES.len() {
        TENANT_NAMES[..n].iter().map(|s| s.to_string()).collect()
    } else {
        let width = n.to_string().len().max(2);
        (1..=n).map(|i| format!("t{i:0width$}")).collect()
    }
}

/// The answer key of a run.
#[derive(Clone, Debug, Serialize)]
pub struct AnswerKey {
    pub seed: u64,
    pub tenants: Vec<String>,
    pub start: String,
    pub end: String,
    pub injections: Vec<&'static str>,
    pub items: Vec<AnswerItem>,
}

/// A planned run: an iterator over audit lines (without the trailing newline).
pub struct Simulation {
    world: World,
    actors: Vec<Box<dyn actors::Actor>>,
    queues: Vec<VecDeque<Line>>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    answer: AnswerKey,
}

impl Simulation {
    pub fn new(cfg: &SimConfig) -> Result<Simulation, SimError> {
        if cfg.tenants == 0 {
            return Err(SimError::NoTenants);
        }
        if cfg.duration_secs <= 0 {
            return Err(SimError::EmptyWindow);
        }
        let tenants = tenant_names(cfg.tenants);
        let end = cfg
            .start
            .saturating_add(cfg.duration_secs.saturating_mul(SEC));
        let mut world = World::new(cfg.seed, cfg.start, end, tenants.clone());
        world.utc_offset = cfg.utc_offset_secs;
        let platform = inject::Platform {
            validation: cfg
                .store_validation_secs
                .filter(|s| *s > 0)
                .map(|s| s * SEC),
            scrape: cfg.metrics_scrape_secs.filter(|s| *s > 0).map(|s| s * SEC),
        };
        let plan = inject::plan(cfg.seed, &world, &cfg.injections, platform)?;
        let answer = AnswerKey {
            seed: cfg.seed,
            tenants,
            start: vault::go_time(cfg.start),
            end: vault::go_time(end),
            injections: cfg.injections.iter().map(|i| i.name()).collect(),
            items: plan.answer,
        };
        let n = plan.actors.len();
        let mut sim = Simulation {
            world,
            actors: plan.actors,
            queues: (0..n).map(|_| VecDeque::new()).collect(),
            heap: BinaryHeap::new(),
            answer,
        };
        for i in 0..n {
            sim.refill(i);
        }
        Ok(sim)
    }

    pub fn answer_key(&self) -> &AnswerKey {
        &self.answer
    }

    /// Pull the actor's next non-empty episode into its queue and schedule it.
    fn refill(&mut self, i: usize) {
        while self.queues[i].is_empty() {
            match self.actors[i].next_episode(&self.world) {
                Some(lines) => self.queues[i].extend(lines),
                None => return,
            }
        }
        if let Some(front) = self.queues[i].front() {
            self.heap.push(Reverse((front.t, i)));
        }
    }

    /// The next line and its time (Unix ns).
    pub fn next_line(&mut self) -> Option<(i64, String)> {
        let Reverse((_, i)) = self.heap.pop()?;
        let line = self.queues[i].pop_front()?;
        match self.queues[i].front() {
            Some(front) => {
                debug_assert!(front.t >= line.t, "an actor's lines go back in time");
                self.heap.push(Reverse((front.t, i)));
            }
            None => self.refill(i),
        }
        Some((line.t, line.text))
    }

    /// Write every line, newline-terminated; returns the number of lines.
    pub fn write_to(&mut self, out: &mut impl Write) -> io::Result<u64> {
        let mut n = 0;
        while let Some((_, line)) = self.next_line() {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
            n += 1;
        }
        Ok(n)
    }
}

impl Iterator for Simulation {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        self.next_line().map(|(_, l)| l)
    }
}

/// Generate a whole run in memory: the lines and the answer key.
pub fn generate(cfg: &SimConfig) -> Result<(Vec<String>, AnswerKey), SimError> {
    let mut sim = Simulation::new(cfg)?;
    let key = sim.answer_key().clone();
    let lines: Vec<String> = sim.by_ref().collect();
    Ok((lines, key))
}

/// Parse a duration such as `24h`, `90m`, `3600s`, `1h30m`, `2d`.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut num: Option<i64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(num.unwrap_or(0).checked_mul(10)?.checked_add(d as i64)?);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        total = total.checked_add(num.take()?.checked_mul(unit)?)?;
    }
    if num.is_some() {
        return None; // a bare number: ambiguous unit
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h"), Some(86_400));
        assert_eq!(parse_duration("90m"), Some(5400));
        assert_eq!(parse_duration("3600s"), Some(3600));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("2d"), Some(172_800));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn injection_lists() {
        assert_eq!(
            Injection::parse_list("all").map(|v| v.len()),
            Ok(Injection::ALL.len())
        );
        assert_eq!(
            Injection::parse_list("eso-stale, cross_tenant_read,eso_stale"),
            Ok(vec![Injection::CrossTenantRead, Injection::EsoStale])
        );
        assert!(Injection::parse_list("nope").is_err());
    }

    #[test]
    fn tenant_naming() {
        assert_eq!(tenant_names(2), vec!["acme", "lumen"]);
        let many = tenant_names(120);
        assert_eq!(many[0], "t001");
        assert_eq!(many[119], "t120");
    }

    #[test]
    fn output_is_ordered_paired_and_deterministic() {
        let cfg = SimConfig {
            seed: 5,
            tenants: 3,
            duration_secs: 2 * 3600,
            injections: Injection::parse_list("cross_tenant_read,eso_storm")
                .expect("known injections"),
            ..SimConfig::default()
        };
        let (a, key) = generate(&cfg).expect("plans");
        let (b, _) = generate(&cfg).expect("plans");
        assert_eq!(a, b);
        assert_eq!(key.items.len(), 2);
        assert!(a.iter().any(|l| l.contains("\"path\":\"sys/metrics\"")));
        let mut last = String::new();
        let mut open = std::collections::HashMap::new();
        for line in &a {
            let v: serde_json::Value = serde_json::from_str(line).expect("valid json");
            let t = v["time"].as_str().expect("time").to_string();
            let ts = crate::parse::time::parse_rfc3339_nanos(&t).expect("rfc3339");
            let lt = crate::parse::time::parse_rfc3339_nanos(&last).unwrap_or(i64::MIN);
            assert!(ts >= lt, "{t} after {last}");
            last = t;
            let id = v["request"]["id"].as_str().expect("id").to_string();
            match v["type"].as_str() {
                Some("request") => assert!(open.insert(id, ()).is_none()),
                Some("response") => assert!(open.remove(&id).is_some()),
                other => panic!("type {other:?}"),
            }
        }
        assert!(open.is_empty(), "every request has its response");
        let other = SimConfig { seed: 6, ..cfg };
        assert_ne!(generate(&other).expect("plans").0, a);
    }
}
