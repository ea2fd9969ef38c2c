//! The event view the rules see: an [`Entry`] plus what the engine derives from it once —
//! outcome, the acting identity and its classes, the caller's tenant (from identity) and
//! the target tenant (from the path).

use crate::config::Config;
use crate::parse::{Auth, Entry, EntryKind};
use crate::rules::condition::{strip_port, Field, Fields, IdentityClass};
use std::collections::HashMap;

/// How the request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Denied,
    Error,
    /// A request whose response never arrived, with no pre-routing error.
    Unknown,
}

impl Outcome {
    /// How an entry ended: a `permission denied` error is a denial, any other error an
    /// error; a request entry without error has no known outcome yet.
    pub fn of(entry: &Entry<'_>) -> Outcome {
        match entry.error {
            Some(e) if e.contains("permission denied") => Outcome::Denied,
            Some(_) => Outcome::Error,
            None if entry.kind == EntryKind::Request => Outcome::Unknown,
            None => Outcome::Allowed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
            Outcome::Unknown => "unknown",
        }
    }
}

/// What the path says about tenancy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathTenant<'a> {
    Tenant(&'a str),
    /// Under a tenant-scoped prefix, but no tenant could be read from it.
    ScopedUnknown,
    Outside,
}

/// Why an entry's time was refused by the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skew {
    /// The stream's time when the entry was judged (ns).
    pub stream_time: i64,
    /// Refused by the daemon's wall clock rather than by the stream's time.
    pub by_wall_clock: bool,
}

/// One event as the rules see it.
pub struct Event<'e, 'a> {
    pub entry: &'e Entry<'a>,
    pub time: i64,
    /// Set when the entry's time is clock skew ([`crate::engine::clock`]): only the
    /// time-free detectors judge it.
    pub skew: Option<Skew>,
    pub outcome: Outcome,
    pub actor: Auth<'a>,
    pub classes: u8,
    pub tenant: Option<&'a str>,
    pub tenant_source: Option<&'static str>,
    pub path_tenant: PathTenant<'a>,
    pub auth_method: Option<&'a str>,
    pub role: Option<&'a str>,
}

/// The first non-empty `tenant` capture of the first regex that matches: what
/// [`TenantCache`] gives, the plain way (the reference its test checks it against).
#[cfg(test)]
fn capture<'a>(res: &[regex::Regex], s: &'a str) -> Option<&'a str> {
    res.iter()
        .filter(|re| re.is_match(s))
        .find_map(|re| {
            re.captures(s)
                .and_then(|c| c.name("tenant"))
                .map(|m| m.as_str())
        })
        .filter(|t| !t.is_empty())
}

/// The tenancy captures of identity fields (service account namespaces, roles, policy
/// names): a platform has a few hundred distinct values, seen on every entry, so each is
/// matched against the regexes once. Paths, nearly all distinct, are not cached. Bounded:
/// a full table starts over.
#[derive(Default)]
pub struct TenantCache {
    maps: [SpanMap; 3],
    /// Per regex list (namespaces, roles, policies, paths): capture slots reused from
    /// search to search, and the `tenant` group, per regex. Made on first use; a reload
    /// starts a new cache.
    slots: [Vec<Slots>; 4],
}

type Slots = (regex::CaptureLocations, Option<usize>);

/// A value and where its tenant capture sits in it, if it has one.
type SpanMap = HashMap<Box<str>, Option<(u32, u32)>, foldhash::fast::RandomState>;

const NAMESPACE: usize = 0;
const ROLE: usize = 1;
const POLICY: usize = 2;
const PATH: usize = 3;
const CACHE_CAP: usize = 4096;

impl TenantCache {
    fn capture<'a>(&mut self, which: usize, res: &[regex::Regex], s: &'a str) -> Option<&'a str> {
        let map = &mut self.maps[which];
        let span = match map.get(s) {
            Some(span) => *span,
            None => {
                let span = search(&mut self.slots[which], res, s).map(|t| {
                    let start = t.as_ptr() as usize - s.as_ptr() as usize;
                    (start as u32, (start + t.len()) as u32)
                });
                if map.len() >= CACHE_CAP {
                    map.clear();
                }
                map.insert(s.into(), span);
                span
            }
        };
        span.map(|(a, b)| &s[a as usize..b as usize])
    }

    /// A path's tenant: not cached (paths are nearly all distinct).
    fn path<'a>(&mut self, res: &[regex::Regex], s: &'a str) -> Option<&'a str> {
        search(&mut self.slots[PATH], res, s)
    }
}

/// The first non-empty `tenant` capture of the first regex that matches `s` with one: one
/// search per regex (not a match test and then a second search for the groups), into
/// reused slots.
fn search<'a>(slots: &mut Vec<Slots>, res: &[regex::Regex], s: &'a str) -> Option<&'a str> {
    if slots.len() != res.len() {
        *slots = res
            .iter()
            .map(|re| {
                let group = re.capture_names().position(|n| n == Some("tenant"));
                (re.capture_locations(), group)
            })
            .collect();
    }
    res.iter()
        .zip(slots.iter_mut())
        .find_map(|(re, (locs, group))| {
            re.captures_read(locs, s)?;
            let (a, b) = locs.get((*group)?)?;
            s.get(a..b)
        })
        .filter(|t| !t.is_empty())
}

impl<'e, 'a> Event<'e, 'a> {
    pub fn new(
        entry: &'e Entry<'a>,
        time: i64,
        cfg: &Config,
        cache: &mut TenantCache,
    ) -> Event<'e, 'a> {
        let actor = *entry.actor();
        let md = actor.metadata;
        let ids = &cfg.identities;
        // One pass over the metadata: looking each key up walks the object again.
        let (mut sa_ns, mut sa_name, mut md_role, mut role_name) = (None, None, None, None);
        let (mut has_claim, mut has_human_key) = (false, false);
        for (k, v) in md.entries() {
            match k {
                "service_account_namespace" => sa_ns = v,
                "service_account_name" => sa_name = v,
                "role" => md_role = v,
                "role_name" => role_name = v,
                _ => {}
            }
            has_claim |= ids.ci.claim_keys.iter().any(|c| c == k);
            has_human_key |= ids.human.metadata_keys.iter().any(|h| h == k);
        }
        let role = md_role.or(role_name);
        let policies = || {
            actor
                .policies
                .iter()
                .chain(actor.token_policies.iter())
                .chain(actor.identity_policies.iter())
        };

        let t = &cfg.tenancy;
        let (tenant, tenant_source) =
            if let Some(x) = sa_ns.and_then(|ns| cache.capture(NAMESPACE, &t.namespace, ns)) {
                (Some(x), Some("service_account_namespace"))
            } else if let Some(x) = role.and_then(|r| cache.capture(ROLE, &t.role, r)) {
                (Some(x), Some("role"))
            } else if let Some(x) = policies().find_map(|p| cache.capture(POLICY, &t.policy, p)) {
                (Some(x), Some("policy"))
            } else {
                (None, None)
            };

        let dn = actor.display_name.unwrap_or("");
        let mut classes = 0u8;
        if tenant.is_some() {
            classes |= IdentityClass::Tenant.bit();
        }
        if sa_name.is_some_and(|n| ids.eso_service_accounts.iter().any(|e| e == n)) {
            classes |= IdentityClass::Eso.bit();
        }
        let ma = &ids.machine_admin;
        let machine_admin = sa_ns.is_some_and(|n| ma.namespaces.iter().any(|x| x == n))
            || sa_name.is_some_and(|n| ma.service_accounts.iter().any(|x| x == n))
            || role.is_some_and(|r| ma.roles.iter().any(|x| x == r))
            || actor
                .entity_id
                .is_some_and(|e| ma.entity_ids.iter().any(|x| x == e))
            || (!dn.is_empty() && ma.display_names.iter().any(|g| g.is_match(dn)));
        if machine_admin {
            classes |= IdentityClass::MachineAdmin.bit();
        }
        let human = ids
            .human
            .display_name_prefixes
            .iter()
            .any(|p| dn.starts_with(p.as_str()))
            || has_human_key;
        let ci_cfg = &ids.ci;
        let remote = entry.request.remote_address.map(strip_port);
        let ci = (ci_cfg
            .display_name_prefixes
            .iter()
            .any(|p| dn.starts_with(p.as_str()))
            && role.is_some_and(|r| ci_cfg.roles.iter().any(|g| g.is_match(r))))
            || has_claim
            || role_name.is_some_and(|r| ci_cfg.approle_roles.iter().any(|g| g.is_match(r)))
            || (!dn.is_empty() && ci_cfg.display_names.iter().any(|g| g.is_match(dn)))
            || (!ci_cfg.cidrs.is_empty()
                && actor.present
                && remote
                    .and_then(|r| r.parse::<std::net::IpAddr>().ok())
                    .is_some_and(|ip| ci_cfg.cidrs.iter().any(|n| n.contains(&ip))));
        if ci {
            classes |= IdentityClass::Ci.bit();
        } else if human && !machine_admin {
            classes |= IdentityClass::Human.bit();
        }
        if policies().any(|p| cfg.admin_policies.iter().any(|a| a == p)) {
            classes |= IdentityClass::Admin.bit();
        }
        if dn == "root" || policies().any(|p| p == "root") {
            classes |= IdentityClass::Root.bit();
        }
        if !actor.present
            || (actor.display_name.is_none()
                && actor.client_token.is_none()
                && policies().next().is_none())
        {
            classes |= IdentityClass::Anonymous.bit();
        }

        let path = entry.request.path.unwrap_or("");
        let path_tenant = match cache.path(&t.paths, path) {
            Some(x) => PathTenant::Tenant(x),
            None if t
                .scoped_prefixes
                .iter()
                .any(|p| path.starts_with(p.as_str())) =>
            {
                PathTenant::ScopedUnknown
            }
            None => PathTenant::Outside,
        };

        let outcome = Outcome::of(entry);

        Event {
            entry,
            time,
            skew: None,
            outcome,
            actor,
            classes,
            tenant,
            tenant_source,
            path_tenant,
            auth_method: auth_method(entry, &actor, sa_name.is_some()),
            role,
        }
    }

    pub fn has(&self, c: IdentityClass) -> bool {
        self.classes & c.bit() != 0
    }

    pub fn target_tenant(&self) -> Option<&'a str> {
        match self.path_tenant {
            PathTenant::Tenant(t) => Some(t),
            _ => None,
        }
    }

    pub fn mount_type(&self) -> Option<&'a str> {
        self.entry
            .request
            .mount_type
            .or(self.entry.response.mount_type)
    }

    /// The first value of a field (keys, templates).
    pub fn first(&self, field: &Field) -> Option<String> {
        let mut out = None;
        self.any_value(field, &mut |s| {
            out = Some(s.to_string());
            true
        });
        out
    }
}

/// The auth method: from the login's mount type, else the metadata shape, else the
/// display-name prefix (`<mount>-...`, so a renamed mount shows its own name).
fn auth_method<'a>(entry: &Entry<'a>, actor: &Auth<'a>, kubernetes_md: bool) -> Option<&'a str> {
    let path = entry.request.path.unwrap_or("");
    if path.starts_with("auth/") && path.contains("/login") && entry.response.auth.present {
        if let Some(mt) = entry.request.mount_type {
            return Some(mt);
        }
    }
    if kubernetes_md {
        return Some("kubernetes");
    }
    if actor.metadata.contains_key("role_name") {
        return Some("approle");
    }
    let dn = actor.display_name?;
    Some(dn.split('-').next().unwrap_or(dn))
}

impl Fields for Event<'_, '_> {
    fn any_value(&self, field: &Field, f: &mut dyn FnMut(&str) -> bool) -> bool {
        let e = self.entry;
        let one = |v: Option<&str>, f: &mut dyn FnMut(&str) -> bool| v.is_some_and(f);
        match field {
            Field::Type => f(e.kind.as_str()),
            Field::Operation => one(e.request.operation, f),
            Field::Path => one(e.request.path, f),
            Field::MountType => one(self.mount_type(), f),
            Field::MountPoint => one(e.request.mount_point, f),
            Field::Error => one(e.error, f),
            Field::Outcome => f(self.outcome.as_str()),
            Field::RemoteAddress => one(e.request.remote_address.map(strip_port), f),
            Field::DisplayName => one(self.actor.display_name, f),
            Field::EntityId => one(self.actor.entity_id, f),
            Field::AuthMethod => one(self.auth_method, f),
            Field::Policies => {
                let a = &self.actor;
                a.policies
                    .iter()
                    .chain(a.token_policies.iter())
                    .chain(a.identity_policies.iter())
                    .any(f)
            }
            Field::Role => one(self.role, f),
            Field::ServiceAccount => one(self.actor.metadata.get("service_account_name"), f),
            Field::Namespace => one(self.actor.metadata.get("service_account_namespace"), f),
            Field::TokenType => one(self.actor.token_type, f),
            Field::LeaseId => one(e.response.lease_id, f),
            Field::RequestId => one(e.request.id, f),
            Field::Tenant => one(self.tenant, f),
            Field::TargetTenant => one(self.target_tenant(), f),
            Field::IdentityClass => IdentityClass::ALL
                .iter()
                .filter(|c| self.has(**c))
                .any(|c| f(c.as_str())),
            Field::UserAgent => one(e.request.user_agent, f),
            Field::RawToken => f(if e.token_is_raw() { "true" } else { "false" }),
            Field::Metadata(k) => one(self.actor.metadata.get(k), f),
        }
    }

    fn classes(&self) -> u8 {
        self.classes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_cache_gives_what_the_regexes_give_and_stays_bounded() {
        let res = [regex::Regex::new(r"^bookstore-platform-(?P<tenant>t\d+)$").unwrap()];
        let mut c = TenantCache::default();
        for round in 0..2 {
            for i in 0..(CACHE_CAP + 10) {
                let ns = format!("bookstore-platform-t{i}");
                assert_eq!(
                    c.capture(NAMESPACE, &res, &ns),
                    capture(&res, &ns),
                    "round {round}"
                );
                assert!(c.maps[NAMESPACE].len() <= CACHE_CAP);
            }
            assert_eq!(c.capture(NAMESPACE, &res, "crossplane-system"), None);
        }
        // Paths: not cached, the same captures.
        let paths = [
            regex::Regex::new(r"^secret/data/(?P<tenant>[^/]*)/").unwrap(),
            regex::Regex::new(r"^(kv|db)/(?:(?P<tenant>t\d+)|x)/").unwrap(),
            regex::Regex::new(r"^(?P<other>z)/(?P<tenant>\w+)").unwrap(),
        ];
        for path in [
            "secret/data/acme/db",
            "secret/data//db",
            "kv/t7/a",
            "kv/x/a",
            "z/acme",
            "sys/mounts",
            "",
        ] {
            assert_eq!(c.path(&paths, path), capture(&paths, path), "{path}");
        }
        assert_eq!(c.path(&paths, "kv/x/a"), None);
        assert_eq!(c.path(&paths, "z/acme"), Some("acme"));
        // The same string under another field is looked up on its own.
        assert_eq!(c.capture(ROLE, &[], "bookstore-platform-t1"), None);
        assert_eq!(
            c.capture(NAMESPACE, &res, "bookstore-platform-t1"),
            Some("t1")
        );
    }
}
