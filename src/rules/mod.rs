//! Rules as data: YAML files in `rules/`, each a detection built from a small set of
//! detector kinds implemented in Rust over [`condition`]s on fields.
//!
//! Loading validates everything and reports every problem as `file:line:col`; the shipped
//! rules are embedded in the binary as the default set. Each rule carries examples that
//! must and must not fire; [`examples`] runs them (`auditwatch rules test`).

pub mod condition;
pub mod examples;
pub mod learned;
pub mod token;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::alert::Severity;
use crate::yaml::{self, Ctx, MapReader, Node, Problem};
use condition::{Condition, Field};
pub use learned::{FirstSeenSpec, HourProfileSpec, Normalise};

/// The shipped rules, embedded at build time.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "rules/cross_tenant_read.yaml",
        include_str!("../../rules/cross_tenant_read.yaml"),
    ),
    (
        "rules/clock_skew.yaml",
        include_str!("../../rules/clock_skew.yaml"),
    ),
    (
        "rules/after_hours_admin.yaml",
        include_str!("../../rules/after_hours_admin.yaml"),
    ),
    (
        "rules/eso_cadence.yaml",
        include_str!("../../rules/eso_cadence.yaml"),
    ),
    (
        "rules/ci_origin_read.yaml",
        include_str!("../../rules/ci_origin_read.yaml"),
    ),
    (
        "rules/root_token_use.yaml",
        include_str!("../../rules/root_token_use.yaml"),
    ),
    (
        "rules/audit_device_change.yaml",
        include_str!("../../rules/audit_device_change.yaml"),
    ),
    (
        "rules/policy_drift.yaml",
        include_str!("../../rules/policy_drift.yaml"),
    ),
    (
        "rules/auth_or_mount_change.yaml",
        include_str!("../../rules/auth_or_mount_change.yaml"),
    ),
    (
        "rules/sys_raw_access.yaml",
        include_str!("../../rules/sys_raw_access.yaml"),
    ),
    (
        "rules/generate_root.yaml",
        include_str!("../../rules/generate_root.yaml"),
    ),
    (
        "rules/enumeration.yaml",
        include_str!("../../rules/enumeration.yaml"),
    ),
    (
        "rules/login_failure_burst.yaml",
        include_str!("../../rules/login_failure_burst.yaml"),
    ),
    (
        "rules/mass_revocation.yaml",
        include_str!("../../rules/mass_revocation.yaml"),
    ),
    (
        "rules/unreadable_entry.yaml",
        include_str!("../../rules/unreadable_entry.yaml"),
    ),
    (
        "rules/input_lost.yaml",
        include_str!("../../rules/input_lost.yaml"),
    ),
    (
        "rules/token_foreign_use.yaml",
        include_str!("../../rules/token_foreign_use.yaml"),
    ),
    (
        "rules/wrapping_interception.yaml",
        include_str!("../../rules/wrapping_interception.yaml"),
    ),
    // The detections that learn (first_seen, hour_profile).
    (
        "rules/first_seen_access.yaml",
        include_str!("../../rules/first_seen_access.yaml"),
    ),
    (
        "rules/human_in_machine_secret.yaml",
        include_str!("../../rules/human_in_machine_secret.yaml"),
    ),
    (
        "rules/unusual_hour.yaml",
        include_str!("../../rules/unusual_hour.yaml"),
    ),
];

/// Which checks a cadence detector runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CadenceCheck {
    TooFrequent,
    Stale,
    LeaseRace,
}

#[derive(Clone, Debug)]
pub enum Detector {
    /// Every matching entry.
    Match,
    /// `threshold` matching entries per key within `window_secs`; one alert per episode.
    Count(CountSpec),
    /// `threshold` distinct values of `field` per key within `window_secs`.
    Distinct(DistinctSpec),
    /// Read cadence per key (thresholds from the config's `cadence` and `leases`).
    Cadence(CadenceSpec),
    /// No matching entry for `silence_secs` of event time, after a stream that carried at
    /// least `min_events` in the `silence_secs` before (a busy stream that stopped).
    Absence(AbsenceSpec),
    /// The caller's tenant (identity) differs from the path's tenant.
    TenantMismatch,
    /// A matching entry outside business hours (config `business_hours`).
    TimeWindow,
    /// An entry whose time is clock skew (the engine's clock policy, config
    /// `engine.max_future_skew_secs`); once per episode.
    ClockSkew(ClockSkewSpec),
    /// A token used from another network than it was issued to, or a workload's token
    /// used from outside the workload networks ([`token::TokenOriginSpec`]).
    TokenOrigin(token::TokenOriginSpec),
    /// A failed unwrap of a response-wrapping token someone unwrapped before
    /// ([`token::WrapTokenSpec`]).
    WrapToken(token::WrapTokenSpec),
    /// A value of `value` a key never had, once both are past their learning period
    /// ([`learned`]).
    FirstSeen(FirstSeenSpec),
    /// Activity of a key in an hour of the week it was never active in, once past its
    /// learning period ([`learned`]).
    HourProfile(HourProfileSpec),
}

/// Settings of a `clock_skew` detector.
#[derive(Clone, Debug, PartialEq)]
pub struct ClockSkewSpec {
    /// An episode ends once the stream's time has passed this long with no skewed entry.
    pub quiet_secs: u64,
}

/// Settings of a `count` detector.
#[derive(Clone, Debug, PartialEq)]
pub struct CountSpec {
    pub key: Vec<Field>,
    pub window_secs: u64,
    pub threshold: u64,
    pub max_keys: u64,
}

/// Settings of a `distinct` detector.
#[derive(Clone, Debug, PartialEq)]
pub struct DistinctSpec {
    pub key: Vec<Field>,
    pub field: Field,
    pub window_secs: u64,
    pub threshold: u64,
    pub max_keys: u64,
}

/// Settings of a `cadence` detector.
#[derive(Clone, Debug, PartialEq)]
pub struct CadenceSpec {
    pub key: Vec<Field>,
    pub checks: Vec<CadenceCheck>,
    /// Many keys at once from one cause: `None` judges every key alone.
    pub group: Option<GroupSpec>,
}

/// A detector's `group` block: when the traffic of every key of the rule stops at once
/// (none for `quiet_secs`, and for `factor` x the longest pause the rule's traffic took
/// lately), the keys whose findings come due meanwhile are one finding of the whole group,
/// not one each, provided the rule has seen at least `min_keys` keys.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSpec {
    pub quiet_secs: u64,
    pub factor: f64,
    pub min_keys: u64,
}

/// Settings of an `absence` detector.
#[derive(Clone, Debug, PartialEq)]
pub struct AbsenceSpec {
    pub silence_secs: u64,
    pub min_events: u64,
}

impl Detector {
    /// A count or distinct detector without a key watches the whole platform.
    pub fn is_global(&self) -> bool {
        match self {
            Detector::Count(c) => c.key.is_empty(),
            Detector::Distinct(d) => d.key.is_empty(),
            _ => false,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Detector::Match => "match",
            Detector::Count(_) => "count",
            Detector::Distinct(_) => "distinct",
            Detector::Cadence(_) => "cadence",
            Detector::Absence(_) => "absence",
            Detector::TenantMismatch => "tenant_mismatch",
            Detector::TimeWindow => "time_window",
            Detector::ClockSkew(_) => "clock_skew",
            Detector::TokenOrigin(_) => "token_origin",
            Detector::WrapToken(_) => "wrap_token",
            Detector::FirstSeen(_) => "first_seen",
            Detector::HourProfile(_) => "hour_profile",
        }
    }
}

/// Keys a stateful detector keeps when its rule does not say (`max_keys`).
const DEFAULT_MAX_KEYS: u64 = 100_000;

const KINDS: &[&str] = &[
    "match",
    "count",
    "distinct",
    "cadence",
    "absence",
    "tenant_mismatch",
    "time_window",
    "clock_skew",
    "token_origin",
    "wrap_token",
    "first_seen",
    "hour_profile",
];

/// Every field some detector kind takes besides `kind`: with a kind missing or unknown,
/// these are not reported as unknown (the kind is the problem).
const DETECTOR_FIELDS: &[&str] = &[
    "key",
    "field",
    "window_secs",
    "threshold",
    "max_keys",
    "checks",
    "silence_secs",
    "min_events",
    "outside",
    "quiet_secs",
    "group",
    "network",
    "workload",
    "escalate",
    "expire_after_secs",
    // first_seen, hour_profile (learned::FIELDS)
    "value",
    "normalise",
    "learn_secs",
    "fire_on",
    "learn_values",
    "max_values",
    "max_values_per_key",
    "tolerance_hours",
    "workdays_alike",
];

/// Placeholders a `summary` may use.
pub const SUMMARY_FIELDS: &[&str] = &[
    "tenant",
    "target_tenant",
    "path",
    "operation",
    "outcome",
    "display_name",
    "remote_address",
    "role",
    "namespace",
    "service_account",
    "severity",
    "rule",
    "request_id",
];

#[derive(Clone, Debug)]
pub struct Suppress {
    pub key: Vec<Field>,
    pub for_secs: u64,
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub category: String,
    pub severity: Severity,
    pub description: String,
    pub summary: Option<String>,
    pub when: Option<Condition>,
    pub severity_when: Vec<(Condition, Severity)>,
    pub detector: Detector,
    pub suppress: Option<Suppress>,
    pub allow_list: Option<String>,
    /// A finding about the whole platform or a device (`scope: platform`): its alerts name
    /// no tenant, actor or request.
    pub platform_scope: bool,
    pub evidence: serde_json::Map<String, serde_json::Value>,
    pub examples: Vec<examples::Example>,
    pub file: Arc<str>,
    pub line: usize,
}

/// A validated set of rules.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// Where they came from (`embedded` or a directory), for reports.
    pub origin: String,
}

impl RuleSet {
    /// The shipped rules.
    pub fn embedded() -> RuleSet {
        let files: Vec<(String, String)> = EMBEDDED
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        RuleSet::from_sources(&files, "embedded").expect("the shipped rules are valid")
    }

    /// Load every `*.yaml`/`*.yml` file of a directory (or one file).
    pub fn load(path: &Path) -> Result<RuleSet, Vec<Problem>> {
        let mut files = Vec::new();
        let mut problems = Vec::new();
        let paths: Vec<PathBuf> = if path.is_dir() {
            match std::fs::read_dir(path) {
                Ok(rd) => {
                    let mut v: Vec<PathBuf> = rd
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| {
                            matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                        })
                        .collect();
                    v.sort();
                    v
                }
                Err(e) => {
                    problems.push(problem_at(
                        path,
                        format!("cannot read rules directory: {e}"),
                    ));
                    Vec::new()
                }
            }
        } else {
            vec![path.to_path_buf()]
        };
        for p in &paths {
            match std::fs::read_to_string(p) {
                Ok(t) => files.push((p.display().to_string(), t)),
                Err(e) => problems.push(problem_at(p, format!("cannot read rule file: {e}"))),
            }
        }
        if files.is_empty() && problems.is_empty() {
            problems.push(problem_at(
                path,
                "no rule files (*.yaml, *.yml) found".into(),
            ));
        }
        match RuleSet::from_sources(&files, &path.display().to_string()) {
            Ok(rs) if problems.is_empty() => Ok(rs),
            Ok(_) => Err(problems),
            Err(mut more) => {
                problems.append(&mut more);
                Err(problems)
            }
        }
    }

    /// Decode `(file name, text)` pairs; every problem of every file is returned.
    pub fn from_sources(files: &[(String, String)], origin: &str) -> Result<RuleSet, Vec<Problem>> {
        let mut rules = Vec::new();
        let mut problems = Vec::new();
        let mut seen: BTreeMap<String, (Arc<str>, usize)> = BTreeMap::new();
        for (name, text) in files {
            let mut ctx = Ctx::new(name);
            if let Some(root) = ctx.load(text) {
                let items: Vec<&Node> = match &root.data {
                    saphyr::YamlDataOwned::Sequence(items) => items.iter().collect(),
                    _ => vec![&root],
                };
                for node in items {
                    if let Some(rule) = decode_rule(&mut ctx, node) {
                        if let Some((f, l)) = seen.get(&rule.id) {
                            ctx.error(
                                node,
                                format!(
                                    "duplicate rule id `{}` (first defined at {f}:{l})",
                                    rule.id
                                ),
                            );
                        } else {
                            seen.insert(rule.id.clone(), (rule.file.clone(), rule.line));
                            rules.push(rule);
                        }
                    }
                }
            }
            problems.append(&mut ctx.problems);
        }
        if problems.is_empty() {
            Ok(RuleSet {
                rules,
                origin: origin.to_string(),
            })
        } else {
            problems.sort();
            Err(problems)
        }
    }

    /// Problems of these rules against a config: allow-lists they name that it lacks.
    pub fn problems_with(&self, cfg: &crate::config::Config) -> Vec<Problem> {
        self.rules
            .iter()
            .filter_map(|r| {
                let name = r.allow_list.as_ref()?;
                (!cfg.allow_lists.contains_key(name)).then(|| Problem {
                    file: r.file.clone(),
                    line: r.line,
                    col: 1,
                    message: format!(
                        "rule `{}` names allow-list `{name}`, which the config does not define",
                        r.id
                    ),
                })
            })
            .collect()
    }

    /// The rules split in two: every rule but those of `category`, and those.
    pub fn split_category(&self, category: &str) -> (RuleSet, RuleSet) {
        let (mine, rest) = self
            .rules
            .iter()
            .cloned()
            .partition(|r| r.category == category);
        (
            RuleSet {
                rules: rest,
                origin: self.origin.clone(),
            },
            RuleSet {
                rules: mine,
                origin: self.origin.clone(),
            },
        )
    }

    /// Only the rules whose id is in `ids` (for rule tests).
    pub fn only(&self, id: &str) -> RuleSet {
        RuleSet {
            rules: self.rules.iter().filter(|r| r.id == id).cloned().collect(),
            origin: self.origin.clone(),
        }
    }
}

fn problem_at(path: &Path, message: String) -> Problem {
    Problem {
        file: path.display().to_string().into(),
        line: 1,
        col: 1,
        message,
    }
}

fn severity_at(ctx: &mut Ctx, node: &Node) -> Option<Severity> {
    let s = yaml::string(ctx, node, "severity")?;
    let sev = Severity::parse(&s);
    if sev.is_none() {
        ctx.error(
            node,
            format!("unknown severity `{s}`; expected one of: info, warning, high, critical"),
        );
    }
    sev
}

fn field_list(ctx: &mut Ctx, node: &Node, what: &str) -> Option<Vec<Field>> {
    let mut out = Vec::new();
    let mut ok = true;
    for item in items_of(node) {
        let Some(name) = yaml::string(ctx, item, what) else {
            ok = false;
            continue;
        };
        match Field::parse(&name) {
            Some(f) => out.push(f),
            None => {
                ctx.error(
                    item,
                    format!(
                        "{what}: unknown field `{name}`; expected one of: {}",
                        condition::FIELD_NAMES.join(", ")
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// A list's items, or the node itself when it is a single value.
fn items_of(node: &Node) -> Vec<&Node> {
    match &node.data {
        saphyr::YamlDataOwned::Sequence(items) => items.iter().collect(),
        _ => vec![node],
    }
}

fn decode_rule(ctx: &mut Ctx, node: &Node) -> Option<Rule> {
    let before = ctx.problems.len();
    let mut m = MapReader::new(ctx, node, "a rule")?;
    let id = m.require(ctx, "id", "a rule").and_then(|n| {
        let s = yaml::string(ctx, n, "id")?;
        let ok = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            ctx.error(n, "id must be lowercase letters, digits, `-` and `_`");
        }
        ok.then_some(s)
    });
    let title = m
        .require(ctx, "title", "a rule")
        .and_then(|n| yaml::string(ctx, n, "title"));
    let category = m.require(ctx, "category", "a rule").and_then(|n| {
        let s = yaml::string(ctx, n, "category")?;
        let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !ok {
            ctx.error(
                n,
                "category must be lowercase letters and `_` (it is a metric label)",
            );
        }
        ok.then_some(s)
    });
    let severity = m
        .require(ctx, "severity", "a rule")
        .and_then(|n| severity_at(ctx, n));
    let description = m
        .require(ctx, "description", "a rule")
        .and_then(|n| yaml::string(ctx, n, "description"));
    let summary = m.take("summary").and_then(|n| {
        let s = yaml::string(ctx, n, "summary")?;
        check_template(ctx, n, &s);
        Some(s)
    });
    let when = m
        .take("when")
        .and_then(|n| Condition::decode(ctx, n))
        .map(|mut c| {
            c.optimise();
            c
        });
    let mut severity_when = Vec::new();
    if let Some(n) = m.take("severity_when") {
        for item in yaml::list(ctx, n, "severity_when") {
            if let Some(mut im) = MapReader::new(ctx, item, "a severity_when entry") {
                let c = im
                    .require(ctx, "if", "a severity_when entry")
                    .and_then(|n| Condition::decode(ctx, n));
                let s = im
                    .require(ctx, "severity", "a severity_when entry")
                    .and_then(|n| severity_at(ctx, n));
                im.finish(ctx, "a severity_when entry");
                if let (Some(c), Some(s)) = (c, s) {
                    severity_when.push((c, s));
                }
            }
        }
    }
    let detector = m
        .require(ctx, "detector", "a rule")
        .and_then(|n| decode_detector(ctx, n));
    let suppress = m.take("suppress").and_then(|n| {
        let mut sm = MapReader::new(ctx, n, "suppress")?;
        let key = sm
            .require(ctx, "key", "suppress")
            .and_then(|n| field_list(ctx, n, "suppress.key"));
        let for_secs = sm
            .require(ctx, "for_secs", "suppress")
            .and_then(|n| yaml::positive(ctx, n, "for_secs"));
        sm.finish(ctx, "suppress");
        Some(Suppress {
            key: key?,
            for_secs: for_secs?,
        })
    });
    let allow_list = m
        .take("allow_list")
        .and_then(|n| yaml::string(ctx, n, "allow_list"));
    let platform_scope = match m.take("scope") {
        None => false,
        Some(n) => match yaml::string(ctx, n, "scope").as_deref() {
            Some("entry") => false,
            Some("platform") => true,
            Some(other) => {
                ctx.error(
                    n,
                    format!("scope must be `entry` or `platform`, found `{other}`"),
                );
                false
            }
            None => false,
        },
    };
    let evidence = match m.take("evidence") {
        Some(n) => match yaml::to_json(ctx, n) {
            serde_json::Value::Object(map) => map,
            _ => {
                ctx.error(n, "evidence must be a mapping");
                Default::default()
            }
        },
        None => Default::default(),
    };
    let examples = m
        .take("examples")
        .map(|n| examples::decode_examples(ctx, n))
        .unwrap_or_default();
    m.finish(ctx, "a rule");
    if ctx.problems.len() != before {
        return None;
    }
    if examples.is_empty() {
        ctx.error(
            node,
            "a rule must carry examples (at least one that fires and one that stays quiet)",
        );
        return None;
    }
    if !examples.iter().any(|e| e.expect_fire) || !examples.iter().any(|e| !e.expect_fire) {
        ctx.error(
            node,
            "a rule needs at least one example that fires and one that stays quiet",
        );
        return None;
    }
    Some(Rule {
        id: id?,
        title: title?,
        category: category?,
        severity: severity?,
        description: description?,
        summary,
        when,
        severity_when,
        detector: detector?,
        suppress,
        allow_list,
        platform_scope,
        evidence,
        examples,
        file: ctx.file.clone(),
        line: node.span.start.line(),
    })
}

fn check_template(ctx: &mut Ctx, node: &Node, s: &str) {
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            ctx.error(node, "summary has an unclosed `{`");
            return;
        };
        let name = &rest[open + 1..open + close];
        let ok = SUMMARY_FIELDS.contains(&name)
            || name
                .strip_prefix("evidence.")
                .is_some_and(|k| !k.is_empty());
        if !ok {
            ctx.error(node, format!("summary: unknown placeholder `{{{name}}}`; expected one of: {}, evidence.<key>", SUMMARY_FIELDS.join(", ")));
        }
        rest = &rest[open + close + 1..];
    }
}

fn decode_detector(ctx: &mut Ctx, node: &Node) -> Option<Detector> {
    let mut m = MapReader::new(ctx, node, "detector")?;
    let kind_node = m.require(ctx, "kind", "detector");
    let (Some(kind_node), Some(kind)) = (
        kind_node,
        kind_node.and_then(|n| yaml::string(ctx, n, "kind")),
    ) else {
        // Still report the fields that are there, e.g. a misspelt `knd`.
        for k in DETECTOR_FIELDS {
            m.take(k);
        }
        m.finish(ctx, "detector");
        return None;
    };
    let key = |m: &mut MapReader, ctx: &mut Ctx, required: bool| -> Option<Vec<Field>> {
        match m.take("key") {
            Some(n) => field_list(ctx, n, "key"),
            None if required => {
                ctx.error(m.node(), "detector is missing required field `key`");
                None
            }
            None => Some(Vec::new()),
        }
    };
    let pos = |m: &mut MapReader, ctx: &mut Ctx, k: &'static str| {
        m.require(ctx, k, "detector")
            .and_then(|n| yaml::positive(ctx, n, k))
    };
    let max_keys =
        |m: &mut MapReader, ctx: &mut Ctx| m.positive_or(ctx, "max_keys", DEFAULT_MAX_KEYS);
    let d = match kind.as_str() {
        "match" => Some(Detector::Match),
        "tenant_mismatch" => Some(Detector::TenantMismatch),
        "time_window" => {
            if let Some(n) = m.take("outside") {
                if yaml::string(ctx, n, "outside").as_deref() != Some("business_hours") {
                    ctx.error(
                        n,
                        "outside must be `business_hours` (configured in the config file)",
                    );
                }
            }
            Some(Detector::TimeWindow)
        }
        "count" => {
            let k = key(&mut m, ctx, false);
            let w = pos(&mut m, ctx, "window_secs");
            let t = pos(&mut m, ctx, "threshold");
            let mk = max_keys(&mut m, ctx);
            Some(Detector::Count(CountSpec {
                key: k?,
                window_secs: w?,
                threshold: t?,
                max_keys: mk?,
            }))
        }
        "distinct" => {
            let k = key(&mut m, ctx, false);
            let f = m.require(ctx, "field", "detector").and_then(|n| {
                let s = yaml::string(ctx, n, "field")?;
                let f = Field::parse(&s);
                if f.is_none() {
                    ctx.error(
                        n,
                        format!(
                            "unknown field `{s}`; expected one of: {}",
                            condition::FIELD_NAMES.join(", ")
                        ),
                    );
                }
                f
            });
            let w = pos(&mut m, ctx, "window_secs");
            let t = pos(&mut m, ctx, "threshold");
            let mk = max_keys(&mut m, ctx);
            Some(Detector::Distinct(DistinctSpec {
                key: k?,
                field: f?,
                window_secs: w?,
                threshold: t?,
                max_keys: mk?,
            }))
        }
        "cadence" => {
            let k = key(&mut m, ctx, true);
            let checks = m.require(ctx, "checks", "detector").and_then(|n| {
                let mut out = Vec::new();
                let mut ok = true;
                for item in items_of(n) {
                    match yaml::string(ctx, item, "checks").as_deref() {
                        Some("too_frequent") => out.push(CadenceCheck::TooFrequent),
                        Some("stale") => out.push(CadenceCheck::Stale),
                        Some("lease_race") => out.push(CadenceCheck::LeaseRace),
                        Some(other) => {
                            ctx.error(
                                item,
                                format!("unknown cadence check `{other}`; expected one of: too_frequent, stale, lease_race"),
                            );
                            ok = false;
                        }
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            });
            let group = match m.take("group") {
                Some(n) => decode_group(ctx, n).map(Some),
                None => Some(None),
            };
            Some(Detector::Cadence(CadenceSpec {
                key: k?,
                checks: checks?,
                group: group?,
            }))
        }
        "absence" => {
            let s = pos(&mut m, ctx, "silence_secs");
            let n = m.positive_or(ctx, "min_events", 1);
            Some(Detector::Absence(AbsenceSpec {
                silence_secs: s?,
                min_events: n?,
            }))
        }
        "clock_skew" => {
            let q = pos(&mut m, ctx, "quiet_secs");
            Some(Detector::ClockSkew(ClockSkewSpec { quiet_secs: q? }))
        }
        "token_origin" => token::decode_token_origin(&mut m, ctx).map(Detector::TokenOrigin),
        "wrap_token" => token::decode_wrap_token(&mut m, ctx).map(Detector::WrapToken),
        "first_seen" => {
            let k = key(&mut m, ctx, true);
            learned::decode_first_seen(ctx, &mut m, k).map(Detector::FirstSeen)
        }
        "hour_profile" => {
            let k = key(&mut m, ctx, true);
            learned::decode_hour_profile(ctx, &mut m, k).map(Detector::HourProfile)
        }
        other => {
            // The kind is wrong, not the fields: report the kind alone.
            for k in DETECTOR_FIELDS {
                m.take(k);
            }
            ctx.error(
                kind_node,
                format!(
                    "unknown detector kind `{other}`; expected one of: {}",
                    KINDS.join(", ")
                ),
            );
            None
        }
    };
    m.finish(ctx, &format!("a `{kind}` detector"));
    d
}

/// A detector's `group` block (see [`GroupSpec`]).
fn decode_group(ctx: &mut Ctx, node: &Node) -> Option<GroupSpec> {
    let mut m = MapReader::new(ctx, node, "group")?;
    let quiet = m
        .require(ctx, "quiet_secs", "group")
        .and_then(|n| yaml::positive(ctx, n, "group.quiet_secs"));
    let factor = m.take("factor").map_or(Some(2.0), |n| {
        let f = yaml::number(ctx, n, "group.factor")?;
        if !(1.0..=1000.0).contains(&f) {
            ctx.error(n, "group.factor must be between 1 and 1000");
            return None;
        }
        Some(f)
    });
    let min_keys = m
        .take("min_keys")
        .map_or(Some(2), |n| yaml::positive(ctx, n, "group.min_keys"));
    m.finish(ctx, "group");
    Some(GroupSpec {
        quiet_secs: quiet?,
        factor: factor?,
        min_keys: min_keys?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        match RuleSet::from_sources(&[("rules/x.yaml".into(), yaml.into())], "test") {
            Ok(_) => Vec::new(),
            Err(ps) => ps.into_iter().map(|p| p.message).collect(),
        }
    }

    /// A cadence detector's `group` block: read with its defaults, and each bad value
    /// reported at its own line and column.
    #[test]
    fn a_group_block_is_read_and_its_bad_values_are_placed() {
        let rule = |group: &str| {
            format!(
                "- id: r\n  title: t\n  category: c\n  severity: high\n  description: d\n  \
                 when: {{field: path, prefix: secret/}}\n  detector:\n    kind: cadence\n    \
                 key: [namespace, path]\n    checks: [stale]\n    group: {group}\n"
            )
        };
        let rs = RuleSet::embedded().only("eso-read-cadence");
        let Detector::Cadence(c) = &rs.rules[0].detector else {
            panic!("a cadence detector")
        };
        let want = GroupSpec {
            quiet_secs: 1800,
            factor: 2.0,
            min_keys: 3,
        };
        assert_eq!(c.group.as_ref(), Some(&want));
        // Defaults: factor 2, min_keys 2 (only the examples are missing here).
        let ps = problems(&rule("{quiet_secs: 60}"));
        assert!(ps.iter().all(|p| p.contains("examples")), "{ps:?}");
        let bad = rule("{quiet_secs: 0, factor: 0.5, min_keys: -1, window: 3}");
        let Err(ps) = RuleSet::from_sources(&[("x.yaml".into(), bad)], "t") else {
            panic!("bad values accepted")
        };
        let got: Vec<(usize, usize, &str)> = (ps.iter())
            .map(|p| (p.line, p.col, p.message.as_str()))
            .collect();
        let at = |what: &str| got.iter().find(|p| p.2.contains(what)).map(|p| (p.0, p.1));
        assert_eq!(
            at("group.quiet_secs must be greater than zero"),
            Some((11, 25)),
            "{got:?}"
        );
        assert_eq!(
            at("group.factor must be between 1 and 1000"),
            Some((11, 36)),
            "{got:?}"
        );
        assert_eq!(at("group.min_keys"), Some((11, 51)), "{got:?}");
        assert_eq!(at("window"), Some((11, 55)), "{got:?}");
        let has = |g: &str, what: &str| problems(&rule(g)).iter().any(|p| p.contains(what));
        assert!(has("[1]", "group must be a mapping"));
        assert!(has("{factor: 3}", "quiet_secs"));
    }

    /// Regression: with a misspelt `kind`, every field a detector may have is taken, so
    /// only the kind is reported (not a spurious "unknown field" for `min_events`).
    #[test]
    fn a_misspelt_detector_kind_is_the_only_problem_reported() {
        let rule = |detector: &str| {
            format!(
                "- id: r\n  title: t\n  category: c\n  severity: high\n  description: d\n  \
                 when: {{field: path, prefix: sys/}}\n  detector: {detector}\n"
            )
        };
        let fields = "key: [path], field: path, window_secs: 60, threshold: 2, max_keys: 9, \
                      checks: [stale], silence_secs: 60, min_events: 3, outside: business_hours";
        let ps = problems(&rule(&format!("{{kind: absense, {fields}}}")));
        assert_eq!(ps.len(), 1, "{ps:#?}");
        assert!(ps[0].contains("unknown detector kind `absense`"), "{ps:#?}");
        let ps = problems(&rule("{knd: absence, silence_secs: 60, min_events: 3}"));
        assert_eq!(ps.len(), 2, "{ps:#?}");
        assert!(ps[0].contains("missing required field `kind`"), "{ps:#?}");
        assert!(ps[1].contains("unknown field `knd`"), "{ps:#?}");
        // The same fields under the right kind: only the rule's missing examples remain.
        let ps = problems(&rule("{kind: absence, silence_secs: 60, min_events: 3}"));
        assert_eq!(ps.len(), 1, "{ps:#?}");
        assert!(ps[0].contains("must carry examples"), "{ps:#?}");
    }

    #[test]
    fn shipped_rules_are_valid_and_all_embedded() {
        let rs = RuleSet::embedded();
        assert!(!rs.rules.is_empty());
        let mut on_disk: Vec<String> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"))
                .unwrap()
                .map(|e| format!("rules/{}", e.unwrap().file_name().to_string_lossy()))
                .filter(|n| n.ends_with(".yaml"))
                .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = EMBEDDED.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(
            on_disk, embedded,
            "every file in rules/ must be listed in EMBEDDED"
        );
    }
}
