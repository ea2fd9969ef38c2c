//! Configuration: the platform's conventions (tenancy, who is who, business hours, leases,
//! cadence thresholds, allow-lists) and engine bounds, as typed, validated settings.
//!
//! The built-in default is `default.yaml` beside this file; a user file is applied on top
//! of it key by key (a section you set replaces only the keys you set; lists replace whole).
//! Loading collects every problem with its `file:line:col`; nothing is bound or read
//! before a config validates.

pub mod calendar;
pub mod glob;
pub mod learning;

use std::collections::BTreeMap;

use ipnet::IpNet;
use regex::Regex;

use crate::yaml::{self, Ctx, MapReader, Node, Problem};
pub use calendar::BusinessHours;
pub use glob::Glob;

/// The built-in default configuration, as shipped.
pub const DEFAULT_YAML: &str = include_str!("default.yaml");

#[derive(Clone, Debug)]
pub struct Config {
    pub tenancy: Tenancy,
    pub identities: Identities,
    pub admin_policies: Vec<String>,
    pub business_hours: BusinessHours,
    pub leases: Leases,
    pub cadence: Cadence,
    pub allow_lists: BTreeMap<String, Vec<AllowEntry>>,
    /// The default learning period of the detectors that learn ([`learning`]).
    pub learning: learning::Learning,
    pub engine: EngineLimits,
    pub parse: ParseSettings,
}

#[derive(Clone, Debug, Default)]
pub struct Tenancy {
    pub namespace: Vec<Regex>,
    pub role: Vec<Regex>,
    pub policy: Vec<Regex>,
    pub paths: Vec<Regex>,
    pub scoped_prefixes: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Identities {
    pub eso_service_accounts: Vec<String>,
    pub machine_admin: MachineAdmin,
    pub human: Human,
    pub ci: Ci,
    /// Where workloads (tenant pods, ESO, Vault Agent) may be: the pod and node ranges. A
    /// workload's token used from outside them is foreign (`token_foreign_use`).
    pub workload_cidrs: Vec<IpNet>,
}

#[derive(Clone, Debug, Default)]
pub struct MachineAdmin {
    pub namespaces: Vec<String>,
    pub service_accounts: Vec<String>,
    pub roles: Vec<String>,
    pub entity_ids: Vec<String>,
    pub display_names: Vec<Glob>,
}

#[derive(Clone, Debug, Default)]
pub struct Human {
    pub display_name_prefixes: Vec<String>,
    pub metadata_keys: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Ci {
    pub display_name_prefixes: Vec<String>,
    pub roles: Vec<Glob>,
    pub claim_keys: Vec<String>,
    pub cidrs: Vec<IpNet>,
    pub approle_roles: Vec<Glob>,
    pub display_names: Vec<Glob>,
}

#[derive(Clone, Debug, Default)]
pub struct Leases {
    pub max_refresh_ratio: f64,
    pub ttls: Vec<(Glob, u64)>,
}

impl Leases {
    /// The configured lease TTL of a path, if any pattern matches.
    pub fn ttl_secs(&self, path: &str) -> Option<u64> {
        self.ttls
            .iter()
            .find(|(g, _)| g.is_match(path))
            .map(|(_, t)| *t)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Cadence {
    pub too_frequent_window_secs: u64,
    pub too_frequent_min_reads: u64,
    pub stale_factor: f64,
    pub stale_min_secs: u64,
    pub stale_min_intervals: u64,
    pub duplicate_within_secs: u64,
    pub max_keys: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllowAction {
    Info,
    Silence,
}

#[derive(Clone, Debug)]
pub struct AllowEntry {
    pub path: Option<Glob>,
    pub display_name: Option<Glob>,
    pub role: Option<Glob>,
    pub entity_id: Option<Glob>,
    pub namespace: Option<Glob>,
    pub action: AllowAction,
}

#[derive(Clone, Debug, Default)]
pub struct EngineLimits {
    pub lateness_secs: u64,
    pub response_timeout_secs: u64,
    pub max_pending_requests: u64,
    /// Bytes of held request lines (see [`crate::engine::pairing`]).
    pub max_pending_bytes: u64,
    /// How far ahead of the stream's time an entry may be before it is clock skew.
    pub max_future_skew_secs: u64,
}

/// The largest `parse.max_line_bytes`: the parsers address a line with 31-bit offsets.
pub const MAX_LINE_BYTES: u64 = 1 << 30;

#[derive(Clone, Debug, Default)]
pub struct ParseSettings {
    pub prefix: String,
    pub max_line_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config::from_yaml_str("<built-in default>", "")
            .expect("the built-in default configuration is valid")
    }
}

impl Config {
    pub(crate) fn empty() -> Config {
        Config {
            tenancy: Tenancy::default(),
            identities: Identities::default(),
            admin_policies: Vec::new(),
            business_hours: BusinessHours::default(),
            leases: Leases::default(),
            cadence: Cadence::default(),
            allow_lists: BTreeMap::new(),
            learning: learning::Learning::default(),
            engine: EngineLimits::default(),
            parse: ParseSettings::default(),
        }
    }

    /// The built-in default with the user's `text` (named `file`) applied on top.
    /// An empty `text` yields the default. Every problem is returned; a key that is not
    /// detection config (the daemon's `server`, `sources`, sinks, `spool`) is one of them:
    /// a whole daemon config file is read by the daemon's config, which holds this one.
    pub fn from_yaml_str(file: &str, text: &str) -> Result<Config, Vec<Problem>> {
        let mut cfg = Config::empty();
        yaml::load_parts(DEFAULT_YAML, file, text, &mut [&mut cfg])?;
        Ok(cfg)
    }

    /// Load a config file from disk on top of the default.
    pub fn load(path: &std::path::Path) -> Result<Config, Vec<Problem>> {
        let text = yaml::read_file(path)?;
        Config::from_yaml_str(&path.display().to_string(), &text)
    }
}

/// The detection config's top-level keys.
const KEYS: &[&str] = &[
    "tenancy",
    "identities",
    "admin_policies",
    "business_hours",
    "leases",
    "cadence",
    "allow_lists",
    "learning",
    "engine",
    "parse",
];

impl yaml::Section for Config {
    fn keys(&self) -> &'static [&'static str] {
        KEYS
    }

    fn apply(&mut self, ctx: &mut Ctx, key: &str, n: &Node) {
        match key {
            "tenancy" => apply_tenancy(ctx, n, &mut self.tenancy),
            "identities" => apply_identities(ctx, n, &mut self.identities),
            "admin_policies" => self.admin_policies = yaml::string_list(ctx, n, "admin_policies"),
            "business_hours" => self.business_hours.apply(ctx, n),
            "leases" => apply_leases(ctx, n, &mut self.leases),
            "cadence" => apply_cadence(ctx, n, &mut self.cadence),
            "allow_lists" => apply_allow_lists(ctx, n, &mut self.allow_lists),
            "learning" => self.learning.apply(ctx, n),
            "engine" => apply_engine(ctx, n, &mut self.engine),
            "parse" => apply_parse(ctx, n, &mut self.parse),
            other => unreachable!("`{other}` is not in KEYS"),
        }
    }
}

/// Compile a regex, reporting errors at the node; `tenant_capture` requires `(?P<tenant>…)`.
pub fn regex_at(ctx: &mut Ctx, node: &Node, what: &str, tenant_capture: bool) -> Option<Regex> {
    let s = yaml::string(ctx, node, what)?;
    match Regex::new(&s) {
        Ok(re) => {
            if tenant_capture && !re.capture_names().any(|n| n == Some("tenant")) {
                ctx.error(
                    node,
                    format!("{what} must have a named capture `(?P<tenant>...)`"),
                );
                return None;
            }
            Some(re)
        }
        Err(e) => {
            let msg = e.to_string().replace('\n', " ");
            ctx.error(node, format!("{what} is not a valid regex: {msg}"));
            None
        }
    }
}

fn regex_list(ctx: &mut Ctx, node: &Node, what: &str, tenant: bool) -> Vec<Regex> {
    if yaml::scalar_str(node).is_some() {
        return regex_at(ctx, node, what, tenant).into_iter().collect();
    }
    yaml::list(ctx, node, what)
        .iter()
        .filter_map(|n| regex_at(ctx, n, what, tenant))
        .collect()
}

pub fn glob_at(ctx: &mut Ctx, node: &Node, what: &str) -> Option<Glob> {
    let s = yaml::string(ctx, node, what)?;
    match Glob::new(&s) {
        Ok(g) => Some(g),
        Err(e) => {
            ctx.error(node, format!("{what}: {e}"));
            None
        }
    }
}

fn glob_list(ctx: &mut Ctx, node: &Node, what: &str) -> Vec<Glob> {
    if yaml::scalar_str(node).is_some() {
        return glob_at(ctx, node, what).into_iter().collect();
    }
    yaml::list(ctx, node, what)
        .iter()
        .filter_map(|n| glob_at(ctx, n, what))
        .collect()
}

fn apply_tenancy(ctx: &mut Ctx, node: &Node, t: &mut Tenancy) {
    let Some(mut m) = MapReader::new(ctx, node, "tenancy") else {
        return;
    };
    if let Some(n) = m.take("identity") {
        if let Some(mut im) = MapReader::new(ctx, n, "tenancy.identity") {
            if let Some(n) = im.take("namespace") {
                t.namespace = regex_list(ctx, n, "tenancy.identity.namespace", true);
            }
            if let Some(n) = im.take("role") {
                t.role = regex_list(ctx, n, "tenancy.identity.role", true);
            }
            if let Some(n) = im.take("policy") {
                t.policy = regex_list(ctx, n, "tenancy.identity.policy", true);
            }
            im.finish(ctx, "tenancy.identity");
        }
    }
    if let Some(n) = m.take("paths") {
        t.paths = regex_list(ctx, n, "tenancy.paths", true);
    }
    if let Some(n) = m.take("scoped_prefixes") {
        t.scoped_prefixes = yaml::string_list(ctx, n, "tenancy.scoped_prefixes");
    }
    m.finish(ctx, "tenancy");
}

fn apply_identities(ctx: &mut Ctx, node: &Node, ids: &mut Identities) {
    let Some(mut m) = MapReader::new(ctx, node, "identities") else {
        return;
    };
    if let Some(n) = m.take("eso_service_accounts") {
        ids.eso_service_accounts = yaml::string_list(ctx, n, "eso_service_accounts");
    }
    if let Some(n) = m.take("machine_admin") {
        if let Some(mut mm) = MapReader::new(ctx, n, "identities.machine_admin") {
            let ma = &mut ids.machine_admin;
            if let Some(n) = mm.take("namespaces") {
                ma.namespaces = yaml::string_list(ctx, n, "namespaces");
            }
            if let Some(n) = mm.take("service_accounts") {
                ma.service_accounts = yaml::string_list(ctx, n, "service_accounts");
            }
            if let Some(n) = mm.take("roles") {
                ma.roles = yaml::string_list(ctx, n, "roles");
            }
            if let Some(n) = mm.take("entity_ids") {
                ma.entity_ids = yaml::string_list(ctx, n, "entity_ids");
            }
            if let Some(n) = mm.take("display_names") {
                ma.display_names = glob_list(ctx, n, "display_names");
            }
            mm.finish(ctx, "identities.machine_admin");
        }
    }
    if let Some(n) = m.take("human") {
        if let Some(mut hm) = MapReader::new(ctx, n, "identities.human") {
            if let Some(n) = hm.take("display_name_prefixes") {
                ids.human.display_name_prefixes =
                    yaml::string_list(ctx, n, "display_name_prefixes");
            }
            if let Some(n) = hm.take("metadata_keys") {
                ids.human.metadata_keys = yaml::string_list(ctx, n, "metadata_keys");
            }
            hm.finish(ctx, "identities.human");
        }
    }
    if let Some(n) = m.take("ci") {
        if let Some(mut cm) = MapReader::new(ctx, n, "identities.ci") {
            let ci = &mut ids.ci;
            if let Some(n) = cm.take("display_name_prefixes") {
                ci.display_name_prefixes = yaml::string_list(ctx, n, "display_name_prefixes");
            }
            if let Some(n) = cm.take("roles") {
                ci.roles = glob_list(ctx, n, "roles");
            }
            if let Some(n) = cm.take("claim_keys") {
                ci.claim_keys = yaml::string_list(ctx, n, "claim_keys");
            }
            if let Some(n) = cm.take("cidrs") {
                ci.cidrs = cidr_list(ctx, n, "cidrs");
            }
            if let Some(n) = cm.take("approle_roles") {
                ci.approle_roles = glob_list(ctx, n, "approle_roles");
            }
            if let Some(n) = cm.take("display_names") {
                ci.display_names = glob_list(ctx, n, "display_names");
            }
            cm.finish(ctx, "identities.ci");
        }
    }
    if let Some(n) = m.take("workload_cidrs") {
        ids.workload_cidrs = cidr_list(ctx, n, "workload_cidrs");
    }
    m.finish(ctx, "identities");
}

pub fn cidr_at(ctx: &mut Ctx, node: &Node, what: &str) -> Option<IpNet> {
    let s = yaml::string(ctx, node, what)?;
    match s.parse::<IpNet>() {
        Ok(n) => Some(n),
        Err(_) => match s.parse::<std::net::IpAddr>() {
            Ok(ip) => Some(IpNet::from(ip)),
            Err(_) => {
                ctx.error(
                    node,
                    format!("{what}: `{s}` is not a CIDR (e.g. 10.0.0.0/8)"),
                );
                None
            }
        },
    }
}

pub fn cidr_list(ctx: &mut Ctx, node: &Node, what: &str) -> Vec<IpNet> {
    if yaml::scalar_str(node).is_some() {
        return cidr_at(ctx, node, what).into_iter().collect();
    }
    yaml::list(ctx, node, what)
        .iter()
        .filter_map(|n| cidr_at(ctx, n, what))
        .collect()
}

fn apply_leases(ctx: &mut Ctx, node: &Node, l: &mut Leases) {
    let Some(mut m) = MapReader::new(ctx, node, "leases") else {
        return;
    };
    if let Some(n) = m.take("max_refresh_ratio") {
        if let Some(v) = yaml::number(ctx, n, "max_refresh_ratio") {
            if v > 0.0 && v <= 1.0 {
                l.max_refresh_ratio = v;
            } else {
                ctx.error(n, "max_refresh_ratio must be in (0, 1]");
            }
        }
    }
    if let Some(n) = m.take("ttls") {
        l.ttls.clear();
        for item in yaml::list(ctx, n, "leases.ttls") {
            let Some(mut im) = MapReader::new(ctx, item, "a lease TTL") else {
                continue;
            };
            let path = im
                .require(ctx, "path", "a lease TTL")
                .and_then(|n| glob_at(ctx, n, "path"));
            let ttl = im
                .require(ctx, "ttl_secs", "a lease TTL")
                .and_then(|n| yaml::positive(ctx, n, "ttl_secs"));
            im.finish(ctx, "a lease TTL");
            if let (Some(p), Some(t)) = (path, ttl) {
                l.ttls.push((p, t));
            }
        }
    }
    m.finish(ctx, "leases");
}

fn apply_cadence(ctx: &mut Ctx, node: &Node, c: &mut Cadence) {
    let Some(mut m) = MapReader::new(ctx, node, "cadence") else {
        return;
    };
    if let Some(n) = m.take("too_frequent") {
        if let Some(mut tm) = MapReader::new(ctx, n, "cadence.too_frequent") {
            if let Some(n) = tm.take("window_secs") {
                c.too_frequent_window_secs =
                    yaml::positive(ctx, n, "window_secs").unwrap_or(c.too_frequent_window_secs);
            }
            if let Some(n) = tm.take("min_reads") {
                c.too_frequent_min_reads =
                    yaml::positive(ctx, n, "min_reads").unwrap_or(c.too_frequent_min_reads);
            }
            tm.finish(ctx, "cadence.too_frequent");
        }
    }
    if let Some(n) = m.take("stale") {
        if let Some(mut sm) = MapReader::new(ctx, n, "cadence.stale") {
            if let Some(n) = sm.take("factor") {
                match yaml::number(ctx, n, "factor") {
                    Some(v) if v >= 1.0 => c.stale_factor = v,
                    Some(_) => ctx.error(n, "factor must be at least 1"),
                    None => {}
                }
            }
            if let Some(n) = sm.take("min_secs") {
                c.stale_min_secs = yaml::positive(ctx, n, "min_secs").unwrap_or(c.stale_min_secs);
            }
            if let Some(n) = sm.take("min_intervals") {
                c.stale_min_intervals =
                    yaml::positive(ctx, n, "min_intervals").unwrap_or(c.stale_min_intervals);
            }
            sm.finish(ctx, "cadence.stale");
        }
    }
    if let Some(n) = m.take("duplicate_within_secs") {
        c.duplicate_within_secs =
            yaml::uint(ctx, n, "duplicate_within_secs").unwrap_or(c.duplicate_within_secs);
    }
    if let Some(n) = m.take("max_keys") {
        c.max_keys = yaml::positive(ctx, n, "max_keys").unwrap_or(c.max_keys);
    }
    m.finish(ctx, "cadence");
}

fn apply_allow_lists(ctx: &mut Ctx, node: &Node, lists: &mut BTreeMap<String, Vec<AllowEntry>>) {
    let Some(m) = MapReader::new(ctx, node, "allow_lists") else {
        return;
    };
    for (_, name, value) in m.keys() {
        let mut entries = Vec::new();
        for item in yaml::list(ctx, value, "an allow-list") {
            let Some(mut im) = MapReader::new(ctx, item, "an allow-list entry") else {
                continue;
            };
            let g = |im: &mut MapReader, ctx: &mut Ctx, k: &'static str| {
                im.take(k).and_then(|n| glob_at(ctx, n, k))
            };
            let path = g(&mut im, ctx, "path");
            let display_name = g(&mut im, ctx, "display_name");
            let role = g(&mut im, ctx, "role");
            let entity_id = g(&mut im, ctx, "entity_id");
            let namespace = g(&mut im, ctx, "namespace");
            let action = match im.take("action") {
                None => Some(AllowAction::Silence),
                Some(n) => match yaml::string(ctx, n, "action").as_deref() {
                    Some("info") => Some(AllowAction::Info),
                    Some("silence") => Some(AllowAction::Silence),
                    Some(other) => {
                        ctx.error(
                            n,
                            format!("action must be `info` or `silence`, found `{other}`"),
                        );
                        None
                    }
                    None => None,
                },
            };
            if path.is_none()
                && display_name.is_none()
                && role.is_none()
                && entity_id.is_none()
                && namespace.is_none()
            {
                ctx.error(item, "an allow-list entry must set at least one of path, display_name, role, entity_id, namespace");
            }
            im.finish(ctx, "an allow-list entry");
            if let Some(action) = action {
                entries.push(AllowEntry {
                    path,
                    display_name,
                    role,
                    entity_id,
                    namespace,
                    action,
                });
            }
        }
        lists.insert(name.to_string(), entries);
    }
    // Every key was consumed above.
}

fn apply_engine(ctx: &mut Ctx, node: &Node, e: &mut EngineLimits) {
    let Some(mut m) = MapReader::new(ctx, node, "engine") else {
        return;
    };
    if let Some(n) = m.take("lateness_secs") {
        e.lateness_secs = yaml::uint(ctx, n, "lateness_secs").unwrap_or(e.lateness_secs);
    }
    if let Some(n) = m.take("response_timeout_secs") {
        e.response_timeout_secs =
            yaml::positive(ctx, n, "response_timeout_secs").unwrap_or(e.response_timeout_secs);
    }
    if let Some(n) = m.take("max_pending_requests") {
        e.max_pending_requests =
            yaml::positive(ctx, n, "max_pending_requests").unwrap_or(e.max_pending_requests);
    }
    if let Some(n) = m.take("max_pending_bytes") {
        e.max_pending_bytes =
            yaml::positive(ctx, n, "max_pending_bytes").unwrap_or(e.max_pending_bytes);
    }
    if let Some(n) = m.take("max_future_skew_secs") {
        e.max_future_skew_secs =
            yaml::positive(ctx, n, "max_future_skew_secs").unwrap_or(e.max_future_skew_secs);
    }
    m.finish(ctx, "engine");
}

fn apply_parse(ctx: &mut Ctx, node: &Node, p: &mut ParseSettings) {
    let Some(mut m) = MapReader::new(ctx, node, "parse") else {
        return;
    };
    if let Some(n) = m.take("prefix") {
        p.prefix = yaml::string(ctx, n, "prefix").unwrap_or_default();
    }
    if let Some(n) = m.take("max_line_bytes") {
        match yaml::positive(ctx, n, "max_line_bytes") {
            Some(v) if (4096..=MAX_LINE_BYTES).contains(&v) => p.max_line_bytes = v,
            Some(_) => ctx.error(
                n,
                format!("max_line_bytes must be between 4096 and {MAX_LINE_BYTES}"),
            ),
            None => {}
        }
    }
    m.finish(ctx, "parse");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_loads() {
        let c = Config::default();
        assert_eq!(c.admin_policies, vec!["bookstore-platform-admin", "root"]);
        assert_eq!(
            c.leases.ttl_secs("database/creds/bookstore-platform-acme"),
            Some(3600)
        );
        assert_eq!(c.engine.response_timeout_secs, 60);
        assert!(c.business_hours.days[0]);
    }

    #[test]
    fn user_file_overrides_keys_only() {
        let c = Config::from_yaml_str("u.yaml", "business_hours:\n  time_zone: Europe/Berlin\n")
            .unwrap();
        assert_eq!(c.business_hours.time_zone_name, "Europe/Berlin");
        assert_eq!(c.business_hours.ranges, vec![(8 * 60, 19 * 60)]);
    }

    #[test]
    fn every_problem_is_reported_with_position() {
        let text = "tenancy:\n  paths: ['^secret/(?P<x>.*)$']\nbusiness_hours:\n  time_zone: Mars/Base\n  days: [mon, funday]\nbogus: 1\nleases:\n  max_refresh_ratio: 2\n";
        let problems = Config::from_yaml_str("u.yaml", text).unwrap_err();
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 5, "{lines:#?}");
        assert!(
            lines[0].starts_with("u.yaml:2:11: tenancy.paths must have a named capture"),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("u.yaml:4:14:") && l.contains("Mars/Base")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("u.yaml:5:15:") && l.contains("funday")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("u.yaml:6:1: unknown field `bogus`")),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("u.yaml:8:22:")),
            "{lines:#?}"
        );
    }
}
