//! Conditions: the non-Turing-complete predicate language of rules.
//!
//! A condition is `all`/`any`/`not` over tests, a test is a field from a fixed set and one
//! operator (`equals`, `in`, `prefix`, `glob`, `regex` with named captures, `cidr`,
//! `exists`), or an `identity` class test. Multi-valued fields (policies, identity
//! classes) match when any value matches.

use ipnet::IpNet;
use regex::Regex;

use crate::config::{cidr_list, glob_at, Glob};
use crate::yaml::{self, Ctx, MapReader, Node};

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

/// The fields without a payload, in the order of [`FIELD_NAMES`] (whose last entry is
/// `metadata.<key>`): a name's position in one is its field's position in the other, so
/// the two lists and [`Field::index`] are the only encodings to keep in step, and a unit
/// test ties them.
const FIXED_FIELDS: &[Field] = &[
    Field::Type,
    Field::Operation,
    Field::Path,
    Field::MountType,
    Field::MountPoint,
    Field::Error,
    Field::Outcome,
    Field::RemoteAddress,
    Field::DisplayName,
    Field::EntityId,
    Field::AuthMethod,
    Field::Policies,
    Field::Role,
    Field::ServiceAccount,
    Field::Namespace,
    Field::TokenType,
    Field::LeaseId,
    Field::RequestId,
    Field::Tenant,
    Field::TargetTenant,
    Field::IdentityClass,
    Field::UserAgent,
    Field::RawToken,
];

impl Field {
    pub fn parse(s: &str) -> Option<Field> {
        if let Some(i) = FIELD_NAMES[..FIXED_FIELDS.len()]
            .iter()
            .position(|n| *n == s)
        {
            return Some(FIXED_FIELDS[i].clone());
        }
        match s.strip_prefix("metadata.") {
            Some(k) if !k.is_empty() => Some(Field::Metadata(k.to_string())),
            _ => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An event as a plain table of field values, for conditions on their own.
    struct Values {
        fields: Vec<(Field, Vec<&'static str>)>,
        classes: u8,
    }

    impl Fields for Values {
        fn any_value(&self, field: &Field, f: &mut dyn FnMut(&str) -> bool) -> bool {
            self.fields
                .iter()
                .filter(|(k, _)| k == field)
                .flat_map(|(_, vs)| vs.iter())
                .any(|v| f(v))
        }
        fn classes(&self) -> u8 {
            self.classes
        }
    }

    fn decode(text: &str) -> Result<Condition, Vec<String>> {
        let mut ctx = Ctx::new("test.yaml");
        let node = ctx.load(text).expect("yaml");
        let c = Condition::decode(&mut ctx, &node);
        match c {
            Some(c) if ctx.problems.is_empty() => Ok(c),
            _ => Err(ctx.problems.iter().map(|p| p.message.clone()).collect()),
        }
    }

    fn ev() -> Values {
        Values {
            fields: vec![
                (Field::Path, vec!["secret/data/bookstore-platform/lumen/db"]),
                (Field::Operation, vec!["read"]),
                (
                    Field::Policies,
                    vec!["default", "bookstore-platform-app-lumen"],
                ),
                (Field::RemoteAddress, vec!["10.42.0.7:5696"]),
                (Field::Metadata("role".into()), vec!["ci"]),
            ],
            classes: IdentityClass::Human.bit(),
        }
    }

    fn holds(text: &str) -> bool {
        let c = decode(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        c.eval(&ev(), &mut Vec::new())
    }

    #[test]
    fn every_field_name_parses_to_the_field_that_names_it() {
        assert_eq!(FIELD_NAMES.len(), FIXED_FIELDS.len() + 1);
        for (i, f) in FIXED_FIELDS.iter().enumerate() {
            assert_eq!(f.index(), i, "{f:?} is out of place in FIXED_FIELDS");
            assert_eq!(f.name(), FIELD_NAMES[i]);
            assert_eq!(Field::parse(&f.name()).as_ref(), Some(f));
        }
        let m = Field::Metadata("service_account_name".into());
        assert_eq!(m.index(), FIXED_FIELDS.len(), "metadata is the last name");
        assert_eq!(Field::parse("metadata.service_account_name"), Some(m));
        assert_eq!(Field::parse("metadata."), None);
        assert_eq!(Field::parse("paths"), None);
    }

    #[test]
    fn each_operator_tests_any_value_of_its_field() {
        assert!(holds("{field: operation, equals: read}"));
        assert!(!holds("{field: operation, equals: list}"));
        assert!(holds(
            "{field: policies, in: [root, bookstore-platform-app-lumen]}"
        ));
        assert!(holds("{field: path, prefix: [sys/, secret/data/]}"));
        assert!(holds("{field: path, glob: 'secret/data/*/lumen/*'}"));
        assert!(holds("{field: remote_address, cidr: [10.42.0.0/16]}"));
        assert!(!holds("{field: remote_address, cidr: [10.43.0.0/16]}"));
        assert!(holds("{field: metadata.role, equals: ci}"));
        assert!(holds("{field: error, exists: false}"));
        assert!(!holds("{field: path, exists: false}"));
        assert!(holds("{identity: [machine_admin, human]}"));
        assert!(!holds("{identity: eso}"));
    }

    #[test]
    fn all_any_and_not_combine_and_a_bare_list_means_all() {
        assert!(holds(
            "[{field: operation, equals: read}, {field: path, prefix: secret/}]"
        ));
        assert!(!holds(
            "[{field: operation, equals: read}, {field: path, prefix: sys/}]"
        ));
        assert!(holds(
            "{any: [{field: operation, equals: list}, {field: operation, equals: read}]}"
        ));
        assert!(holds("{not: {field: operation, equals: delete}}"));
        assert!(!holds(
            "{all: [{field: operation, equals: read}, {not: {identity: human}}]}"
        ));
    }

    #[test]
    fn regex_captures_are_returned_and_a_negated_test_captures_nothing() {
        let c = decode(
            "{field: path, regex: '^secret/data/bookstore-platform/(?P<target_tenant>[^/]+)/'}",
        )
        .unwrap();
        let mut caps = Vec::new();
        assert!(c.eval(&ev(), &mut caps));
        assert_eq!(
            caps,
            vec![("target_tenant".to_string(), "lumen".to_string())]
        );
        let not = decode("{not: {field: path, regex: '(?P<x>nomatch)|(?P<y>lumen)'}}").unwrap();
        let mut caps = Vec::new();
        assert!(!not.eval(&ev(), &mut caps));
        assert!(caps.is_empty());
    }

    #[test]
    fn optimising_an_all_changes_its_order_never_its_result() {
        let text = "{all: [{field: path, regex: 'lumen'}, {identity: human}, {field: operation, in: [read]}]}";
        let mut c = decode(text).unwrap();
        let before = c.eval(&ev(), &mut Vec::new());
        c.optimise();
        let Condition::All(cs) = &c else { panic!() };
        assert!(
            matches!(cs[0], Condition::Identity(_)),
            "the cheapest test runs first"
        );
        assert!(matches!(
            cs[2],
            Condition::Test {
                op: Op::Regex(_),
                ..
            }
        ));
        assert_eq!(c.eval(&ev(), &mut Vec::new()), before);
    }

    #[test]
    fn bad_conditions_report_every_problem() {
        let e = decode("{field: paht, equals: x}").unwrap_err();
        assert!(
            e.iter().any(|m| m.contains("unknown field `paht`")),
            "{e:?}"
        );
        let e = decode("{field: path, equals: x, prefix: y}").unwrap_err();
        assert!(
            e.iter().any(|m| m.contains("exactly one operator")),
            "{e:?}"
        );
        let e = decode("{field: path, regex: '('}").unwrap_err();
        assert!(!e.is_empty());
        let e = decode("{identity: [robot]}").unwrap_err();
        assert!(
            e.iter()
                .any(|m| m.contains("unknown identity class `robot`")),
            "{e:?}"
        );
        let e = decode("{any: []}").unwrap_err();
        assert!(e.iter().any(|m| m.contains("at least one")), "{e:?}");
        let e = decode("{field: remote_address, cidr: [not-a-net]}").unwrap_err();
        assert!(!e.is_empty());
    }

    #[test]
    fn ports_are_stripped_from_addresses_but_ipv6_is_kept_whole() {
        assert_eq!(strip_port("10.0.0.1:5696"), "10.0.0.1");
        assert_eq!(strip_port("10.0.0.1"), "10.0.0.1");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("fe80::1"), "fe80::1");
    }
}
