//! Conditions: the non-Turing-complete predicate language of rules.
//!
//! A condition is `all`/`any`/`not` over tests, a test is a field from a fixed set and one
//! operator (`equals`, `in`, `prefix`, `glob`, `regex` with named captures, `cidr`,
//! `exists`), or an `identity` class test. Multi-valued fields (policies, identity
//! classes) match when any value matches.

use ipnet::IpNet;
use regex::Regex;

use crate::config::yaml::{self, Ctx, MapReader, Node};
use crate::config::{cidr_list, glob_at, Glob};

/// The fields a condition or a key can name. The set is fixed; `metadata.<key>` reads one
/// auth-metadata entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    Type,
    Operation,
    Path,
    MountType,
    MountPoint,
    Error,
    Outcome,
    RemoteAddress,
    DisplayName,
    EntityId,
    AuthMethod,
    Policies,
    Role,
    ServiceAccount,
    Namespace,
    TokenType,
    LeaseId,
    RequestId,
    Tenant,
    TargetTenant,
    IdentityClass,
    UserAgent,
    RawToken,
    Metadata(String),
}

pub const FIELD_NAMES: &[&str] = &[
    "type",
    "operation",
    "path",
    "mount_type",
    "mount_point",
    "error",
    "outcome",
    "remote_address",
    "display_name",
    "entity_id",
    "auth_method",
    "policies",
    "role",
    "service_account",
    "namespace",
    "token_type",
    "lease_id",
    "request_id",
    "tenant",
    "target_tenant",
    "identity_class",
    "user_agent",
    "raw_token",
    "metadata.<key>",
];

impl Field {
    pub fn parse(s: &str) -> Option<Field> {
        Some(match s {
            "type" => Field::Type,
            "operation" => Field::Operation,
            "path" => Field::Path,
            "mount_type" => Field::MountType,
            "mount_point" => Field::MountPoint,
            "error" => Field::Error,
            "outcome" => Field::Outcome,
            "remote_address" => Field::RemoteAddress,
            "display_name" => Field::DisplayName,
            "entity_id" => Field::EntityId,
            "auth_method" => Field::AuthMethod,
            "policies" => Field::Policies,
            "role" => Field::Role,
            "service_account" => Field::ServiceAccount,
            "namespace" => Field::Namespace,
            "token_type" => Field::TokenType,
            "lease_id" => Field::LeaseId,
            "request_id" => Field::RequestId,
            "tenant" => Field::Tenant,
            "target_tenant" => Field::TargetTenant,
            "identity_class" => Field::IdentityClass,
            "user_agent" => Field::UserAgent,
            "raw_token" => Field::RawToken,
            _ => match s.strip_prefix("metadata.") {
                Some(k) if !k.is_empty() => Field::Metadata(k.to_string()),
                _ => return None,
            },
        })
    }

    pub fn name(&self) -> String {
        match self {
            Field::Metadata(k) => format!("metadata.{k}"),
            other => FIELD_NAMES[other.index()].to_string(),
        }
    }

    fn index(&self) -> usize {
        match self {
            Field::Type => 0,
            Field::Operation => 1,
            Field::Path => 2,
            Field::MountType => 3,
            Field::MountPoint => 4,
            Field::Error => 5,
            Field::Outcome => 6,
            Field::RemoteAddress => 7,
            Field::DisplayName => 8,
            Field::EntityId => 9,
            Field::AuthMethod => 10,
            Field::Policies => 11,
            Field::Role => 12,
            Field::ServiceAccount => 13,
            Field::Namespace => 14,
            Field::TokenType => 15,
            Field::LeaseId => 16,
            Field::RequestId => 17,
            Field::Tenant => 18,
            Field::TargetTenant => 19,
            Field::IdentityClass => 20,
            Field::UserAgent => 21,
            Field::RawToken => 22,
            Field::Metadata(_) => 23,
        }
    }
}

/// Identity classes (see `detections.md`, "Who is who").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityClass {
    Tenant,
    Eso,
    MachineAdmin,
    Human,
    Ci,
    Admin,
    Root,
    Anonymous,
}

impl IdentityClass {
    pub const ALL: [IdentityClass; 8] = [
        IdentityClass::Tenant,
        IdentityClass::Eso,
        IdentityClass::MachineAdmin,
        IdentityClass::Human,
        IdentityClass::Ci,
        IdentityClass::Admin,
        IdentityClass::Root,
        IdentityClass::Anonymous,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IdentityClass::Tenant => "tenant",
            IdentityClass::Eso => "eso",
            IdentityClass::MachineAdmin => "machine_admin",
            IdentityClass::Human => "human",
            IdentityClass::Ci => "ci",
            IdentityClass::Admin => "admin",
            IdentityClass::Root => "root",
            IdentityClass::Anonymous => "anonymous",
        }
    }

    pub fn parse(s: &str) -> Option<IdentityClass> {
        IdentityClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A compiled operator.
#[derive(Clone, Debug)]
pub enum Op {
    Equals(String),
    In(Vec<String>),
    Prefix(Vec<String>),
    Glob(Vec<Glob>),
    Regex(Regex),
    Cidr(Vec<IpNet>),
    Exists(bool),
}

const OPS: &[&str] = &["equals", "in", "prefix", "glob", "regex", "cidr", "exists"];

#[derive(Clone, Debug)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Test { field: Field, op: Op },
    Identity(Vec<IdentityClass>),
}

/// What a condition reads from an event. Implemented by the engine's event view.
pub trait Fields {
    /// Call `f` with each value of `field` (none when absent); stop early when `f` is true.
    fn any_value(&self, field: &Field, f: &mut dyn FnMut(&str) -> bool) -> bool;
    /// The identity-class bit set.
    fn classes(&self) -> u8;
}

impl Condition {
    /// A rough cost, to evaluate cheap tests of an `all` first.
    fn cost(&self) -> u32 {
        match self {
            Condition::Identity(_) => 1,
            Condition::Test { op, .. } => match op {
                Op::Exists(_) | Op::Equals(_) | Op::In(_) | Op::Prefix(_) => 2,
                Op::Glob(_) | Op::Cidr(_) => 4,
                Op::Regex(_) => 8,
            },
            Condition::Not(c) => c.cost(),
            Condition::All(cs) | Condition::Any(cs) => cs.iter().map(|c| c.cost()).sum(),
        }
    }

    /// Reorder every `all` so the cheapest tests run first. An `all` holds only when every
    /// child does, so the order changes the cost, never the result or the captures.
    pub fn optimise(&mut self) {
        match self {
            Condition::All(cs) => {
                cs.iter_mut().for_each(Condition::optimise);
                cs.sort_by_key(|c| c.cost());
            }
            Condition::Any(cs) => cs.iter_mut().for_each(Condition::optimise),
            Condition::Not(c) => c.optimise(),
            _ => {}
        }
    }

    /// Evaluate; regex named captures of matching tests are appended to `captures`.
    pub fn eval(&self, ev: &dyn Fields, captures: &mut Vec<(String, String)>) -> bool {
        match self {
            Condition::All(cs) => cs.iter().all(|c| c.eval(ev, captures)),
            Condition::Any(cs) => cs.iter().any(|c| c.eval(ev, captures)),
            Condition::Not(c) => {
                let mut ignored = Vec::new();
                !c.eval(ev, &mut ignored)
            }
            Condition::Identity(classes) => {
                let bits = ev.classes();
                classes.iter().any(|c| bits & c.bit() != 0)
            }
            Condition::Test { field, op } => match op {
                Op::Exists(want) => ev.any_value(field, &mut |_| true) == *want,
                Op::Equals(v) => ev.any_value(field, &mut |s| s == v),
                Op::In(vs) => ev.any_value(field, &mut |s| vs.iter().any(|v| v == s)),
                Op::Prefix(ps) => {
                    ev.any_value(field, &mut |s| ps.iter().any(|p| s.starts_with(p.as_str())))
                }
                Op::Glob(gs) => ev.any_value(field, &mut |s| gs.iter().any(|g| g.is_match(s))),
                Op::Cidr(nets) => ev.any_value(field, &mut |s| {
                    let host = strip_port(s);
                    host.parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| nets.iter().any(|n| n.contains(&ip)))
                }),
                // `is_match` is far cheaper than `captures`, and almost every value misses.
                Op::Regex(re) => ev.any_value(field, &mut |s| {
                    if !re.is_match(s) {
                        return false;
                    }
                    if re.captures_len() > 1 {
                        if let Some(caps) = re.captures(s) {
                            for name in re.capture_names().flatten() {
                                if let Some(m) = caps.name(name) {
                                    captures.push((name.to_string(), m.as_str().to_string()));
                                }
                            }
                        }
                    }
                    true
                }),
            },
        }
    }

    /// Decode a condition node, reporting every problem.
    pub fn decode(ctx: &mut Ctx, node: &Node) -> Option<Condition> {
        if let yaml_list @ [_, ..] = list_items(node) {
            // A bare list means `all`.
            let cs: Vec<_> = yaml_list
                .iter()
                .filter_map(|n| Condition::decode(ctx, n))
                .collect();
            return (cs.len() == yaml_list.len()).then_some(Condition::All(cs));
        }
        let mut m = MapReader::new(ctx, node, "a condition")?;
        let all = m.take("all");
        let any = m.take("any");
        let not = m.take("not");
        let identity = m.take("identity");
        let field = m.take("field");
        let mut ops = Vec::new();
        for op in OPS {
            if let Some(n) = m.take(op) {
                ops.push((*op, n));
            }
        }
        m.finish(ctx, "a condition");
        let forms = [
            all.is_some(),
            any.is_some(),
            not.is_some(),
            identity.is_some(),
            field.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if forms != 1 {
            ctx.error(
                node,
                "a condition must have exactly one of `all`, `any`, `not`, `identity`, or `field` with an operator",
            );
            return None;
        }
        if let Some(n) = all.or(any) {
            let items = yaml::list(ctx, n, "`all`/`any`");
            if items.is_empty() {
                ctx.error(n, "`all`/`any` needs at least one condition");
                return None;
            }
            let cs: Vec<_> = items
                .iter()
                .filter_map(|i| Condition::decode(ctx, i))
                .collect();
            if cs.len() != items.len() {
                return None;
            }
            return Some(if all.is_some() {
                Condition::All(cs)
            } else {
                Condition::Any(cs)
            });
        }
        if let Some(n) = not {
            return Condition::decode(ctx, n).map(|c| Condition::Not(Box::new(c)));
        }
        if let Some(n) = identity {
            let items: Vec<&Node> = match &n.data {
                saphyr::YamlDataOwned::Sequence(items) => items.iter().collect(),
                _ => vec![n],
            };
            let mut classes = Vec::new();
            let mut ok = true;
            for item in items {
                let Some(name) = yaml::string(ctx, item, "identity") else {
                    ok = false;
                    continue;
                };
                match IdentityClass::parse(&name) {
                    Some(c) => classes.push(c),
                    None => {
                        ok = false;
                        let all: Vec<_> = IdentityClass::ALL.iter().map(|c| c.as_str()).collect();
                        ctx.error(
                            item,
                            format!(
                                "unknown identity class `{name}`; expected one of: {}",
                                all.join(", ")
                            ),
                        );
                    }
                }
            }
            return ok.then_some(Condition::Identity(classes));
        }
        let fnode = field?;
        // Check the field and the operator independently, so both are reported.
        let field = yaml::string(ctx, fnode, "field").and_then(|fname| {
            let f = Field::parse(&fname);
            if f.is_none() {
                ctx.error(
                    fnode,
                    format!(
                        "unknown field `{fname}`; expected one of: {}",
                        FIELD_NAMES.join(", ")
                    ),
                );
            }
            f
        });
        if ops.len() != 1 {
            ctx.error(
                node,
                format!(
                    "a field test needs exactly one operator of: {}",
                    OPS.join(", ")
                ),
            );
            return None;
        }
        let (op, n) = ops[0];
        let op = match op {
            "equals" => Op::Equals(scalar_text(ctx, n, "equals")?),
            "in" => {
                let items = yaml::list(ctx, n, "in");
                let vs: Vec<_> = items
                    .iter()
                    .filter_map(|i| scalar_text(ctx, i, "in"))
                    .collect();
                if vs.len() != items.len() {
                    return None;
                }
                Op::In(vs)
            }
            "prefix" => Op::Prefix(yaml::string_list(ctx, n, "prefix")),
            "glob" => {
                if yaml::scalar_str(n).is_some() {
                    Op::Glob(vec![glob_at(ctx, n, "glob")?])
                } else {
                    let items = yaml::list(ctx, n, "glob");
                    let gs: Vec<_> = items
                        .iter()
                        .filter_map(|i| glob_at(ctx, i, "glob"))
                        .collect();
                    if gs.len() != items.len() {
                        return None;
                    }
                    Op::Glob(gs)
                }
            }
            "regex" => Op::Regex(crate::config::regex_at(ctx, n, "regex", false)?),
            "cidr" => {
                let before = ctx.problems.len();
                let nets = cidr_list(ctx, n, "cidr");
                if ctx.problems.len() != before {
                    return None;
                }
                Op::Cidr(nets)
            }
            "exists" => Op::Exists(yaml::boolean(ctx, n, "exists")?),
            _ => unreachable!("operators come from OPS"),
        };
        Some(Condition::Test { field: field?, op })
    }
}

fn list_items(node: &Node) -> &[Node] {
    match &node.data {
        saphyr::YamlDataOwned::Sequence(items) => items,
        _ => &[],
    }
}

/// A scalar as text for comparison: strings as they are; numbers and booleans as written.
fn scalar_text(ctx: &mut Ctx, node: &Node, what: &str) -> Option<String> {
    use saphyr::{ScalarOwned, YamlDataOwned};
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => Some(i.to_string()),
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Some(b.to_string()),
        _ => yaml::string(ctx, node, what),
    }
}

/// `10.0.0.1:5696` and `[::1]:80` to their host part.
pub fn strip_port(s: &str) -> &str {
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => s,
    }
}
