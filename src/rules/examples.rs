//! Rule examples: audit entries embedded in a rule that must make it fire, or must not.
//! `auditwatch rules test` feeds each example through the real pipeline (the entries are
//! serialised to JSON lines and parsed like any input) with only that rule loaded.

use crate::alert::Severity;
use crate::parse::time::{format_rfc3339, parse_rfc3339_nanos};
use crate::yaml::{self, Ctx, MapReader, Node};

#[derive(Clone, Debug)]
pub struct Example {
    pub name: String,
    pub expect_fire: bool,
    pub count: Option<u64>,
    pub severity: Option<Severity>,
    pub evidence_kind: Option<String>,
    /// JSON lines to feed.
    pub lines: Vec<String>,
    pub line: usize,
}

pub fn decode_examples(ctx: &mut Ctx, node: &Node) -> Vec<Example> {
    let mut out = Vec::new();
    for item in yaml::list(ctx, node, "examples") {
        let before = ctx.problems.len();
        let Some(mut m) = MapReader::new(ctx, item, "an example") else {
            continue;
        };
        let name = m
            .require(ctx, "name", "an example")
            .and_then(|n| yaml::string(ctx, n, "name"));
        let expect = m.require(ctx, "expect", "an example").and_then(|n| {
            match yaml::string(ctx, n, "expect").as_deref() {
                Some("fire") => Some(true),
                Some("quiet") => Some(false),
                Some(other) => {
                    ctx.error(
                        n,
                        format!("expect must be `fire` or `quiet`, found `{other}`"),
                    );
                    None
                }
                None => None,
            }
        });
        let count = m.take("count").and_then(|n| yaml::uint(ctx, n, "count"));
        let severity = m.take("severity").and_then(|n| {
            let s = yaml::string(ctx, n, "severity")?;
            let v = Severity::parse(&s);
            if v.is_none() {
                ctx.error(n, format!("unknown severity `{s}`"));
            }
            v
        });
        let evidence_kind = m
            .take("evidence_kind")
            .and_then(|n| yaml::string(ctx, n, "evidence_kind"));
        let mut lines = Vec::new();
        if let Some(entries) = m.require(ctx, "entries", "an example") {
            for e in yaml::list(ctx, entries, "entries") {
                expand_entry(ctx, e, &mut lines);
            }
        }
        m.finish(ctx, "an example");
        if ctx.problems.len() == before {
            out.push(Example {
                name: name.unwrap_or_default(),
                expect_fire: expect.unwrap_or(true),
                count,
                severity,
                evidence_kind,
                lines,
                line: item.span.start.line(),
            });
        }
    }
    out
}

/// An entry is an audit entry mapping, or `{repeat: N, every_secs: S, entry: {...}}`
/// (times advance by S; `{i}` in any string becomes the repetition number, and
/// `request.id` gets a `-<i>` suffix so requests stay distinct).
fn expand_entry(ctx: &mut Ctx, node: &Node, lines: &mut Vec<String>) {
    let is_repeat = matches!(&node.data, saphyr::YamlDataOwned::Mapping(m) if m.keys().any(|k| yaml::scalar_str(k) == Some("repeat")));
    if !is_repeat {
        let v = yaml::to_json(ctx, node);
        if !v.is_object() {
            ctx.error(node, "an example entry must be a mapping (an audit entry)");
            return;
        }
        lines.push(v.to_string());
        return;
    }
    let Some(mut m) = MapReader::new(ctx, node, "a repeat") else {
        return;
    };
    let n = m
        .require(ctx, "repeat", "a repeat")
        .and_then(|n| yaml::positive(ctx, n, "repeat"));
    let every = m
        .require(ctx, "every_secs", "a repeat")
        .and_then(|n| yaml::number(ctx, n, "every_secs"));
    let entry = m.require(ctx, "entry", "a repeat");
    m.finish(ctx, "a repeat");
    let (Some(n), Some(every), Some(entry)) = (n, every, entry) else {
        return;
    };
    if n > 10_000 {
        ctx.error(node, "repeat is limited to 10000");
        return;
    }
    let base = yaml::to_json(ctx, entry);
    let Some(t0) = base
        .get("time")
        .and_then(|t| t.as_str())
        .and_then(parse_rfc3339_nanos)
    else {
        ctx.error(entry, "a repeated entry needs a valid `time`");
        return;
    };
    for i in 0..n {
        let mut v = base.clone();
        substitute(&mut v, &i.to_string());
        let t = t0 + (i as f64 * every * 1e9) as i64;
        v["time"] = serde_json::Value::String(format_rfc3339(t));
        if let Some(id) = v.pointer_mut("/request/id") {
            if let Some(s) = id.as_str() {
                *id = serde_json::Value::String(format!("{s}-{i}"));
            }
        }
        lines.push(v.to_string());
    }
}

/// Replace `{i}` in every string of a repeated entry with the repetition number.
fn substitute(v: &mut serde_json::Value, i: &str) {
    match v {
        serde_json::Value::String(s) if s.contains("{i}") => *s = s.replace("{i}", i),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, i)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| substitute(x, i)),
        _ => {}
    }
}
