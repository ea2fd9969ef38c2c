//! Typed decoding of YAML with positions, collecting every problem.
//!
//! serde stops at the first error and forgets where nodes were; `rules check` and
//! `config check` must list every problem as `file:line:col`. So files are loaded as
//! saphyr's marked nodes and decoded by hand with these helpers: a [`MapReader`] hands out
//! known keys and reports the unknown ones when finished (deny-unknown-fields), scalar
//! readers report type errors at the node, and nothing stops at the first problem.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};

pub type Node = MarkedYamlOwned;

/// One problem in a config or rule file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: Arc<str>,
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// Decoding context: the file name and the problems found so far.
pub struct Ctx {
    pub file: Arc<str>,
    pub problems: Vec<Problem>,
}

impl Ctx {
    pub fn new(file: &str) -> Ctx {
        Ctx {
            file: Arc::from(file),
            problems: Vec::new(),
        }
    }

    pub fn error(&mut self, node: &Node, message: impl Into<String>) {
        self.error_at(node.span.start.line(), node.span.start.col() + 1, message);
    }

    pub fn error_at(&mut self, line: usize, col: usize, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            line: line.max(1),
            col: col.max(1),
            message: message.into(),
        });
    }

    /// Load the single YAML document in `text`. A syntax error is recorded and `None`
    /// returned.
    pub fn load(&mut self, text: &str) -> Option<Node> {
        match Node::load_from_str(text) {
            Ok(mut docs) => {
                if docs.len() > 1 {
                    let extra = &docs[1];
                    self.error(extra, "only one YAML document is allowed per file");
                }
                if docs.is_empty() {
                    self.error_at(1, 1, "the file is empty");
                    None
                } else {
                    Some(docs.swap_remove(0))
                }
            }
            Err(e) => {
                let m = e.marker();
                self.error_at(m.line(), m.col() + 1, format!("invalid YAML: {}", e.info()));
                None
            }
        }
    }
}

/// A short name of what a node holds, for messages.
pub fn kind_of(node: &Node) -> &'static str {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Null) => "null",
        YamlDataOwned::Value(ScalarOwned::Boolean(_)) => "a boolean",
        YamlDataOwned::Value(ScalarOwned::Integer(_)) => "an integer",
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(_)) => "a number",
        YamlDataOwned::Value(ScalarOwned::String(_)) | YamlDataOwned::Representation(..) => {
            "a string"
        }
        YamlDataOwned::Sequence(_) => "a list",
        YamlDataOwned::Mapping(_) => "a mapping",
        YamlDataOwned::Tagged(..) => "a tagged value",
        YamlDataOwned::Alias(_) => "an alias",
        YamlDataOwned::BadValue => "an invalid value",
    }
}

pub fn is_null(node: &Node) -> bool {
    matches!(node.data, YamlDataOwned::Value(ScalarOwned::Null))
}

/// Reads a mapping's keys; unknown keys are reported by [`MapReader::finish`].
pub struct MapReader<'n> {
    node: &'n Node,
    entries: Vec<(&'n Node, &'n str, &'n Node, bool)>,
    known: Vec<&'static str>,
}

impl<'n> MapReader<'n> {
    /// `None` (and a problem) when `node` is not a mapping.
    pub fn new(ctx: &mut Ctx, node: &'n Node, what: &str) -> Option<MapReader<'n>> {
        let YamlDataOwned::Mapping(map) = &node.data else {
            ctx.error(
                node,
                format!("{what} must be a mapping, found {}", kind_of(node)),
            );
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (k, v) in map.iter() {
            match scalar_str(k) {
                Some(s) => entries.push((k, s, v, false)),
                None => ctx.error(k, format!("keys must be strings, found {}", kind_of(k))),
            }
        }
        Some(MapReader {
            node,
            entries,
            known: Vec::new(),
        })
    }

    pub fn node(&self) -> &'n Node {
        self.node
    }

    /// The value of `key`, marking it known.
    pub fn take(&mut self, key: &'static str) -> Option<&'n Node> {
        self.known.push(key);
        self.entries.iter_mut().find(|e| e.1 == key).map(|e| {
            e.3 = true;
            e.2
        })
    }

    /// The value of a required key; a problem at the mapping when missing.
    pub fn require(&mut self, ctx: &mut Ctx, key: &'static str, what: &str) -> Option<&'n Node> {
        let v = self.take(key);
        if v.is_none() {
            ctx.error(
                self.node,
                format!("{what} is missing required field `{key}`"),
            );
        }
        v
    }

    /// The positive integer under `key`, `default` when the key is absent (a problem at
    /// the value when it is not a positive integer).
    pub fn positive_or(&mut self, ctx: &mut Ctx, key: &'static str, default: u64) -> Option<u64> {
        self.take(key)
            .map_or(Some(default), |n| positive(ctx, n, key))
    }

    /// Keys present in the mapping, in order (for free-form maps).
    pub fn keys(&self) -> impl Iterator<Item = (&'n Node, &'n str, &'n Node)> + '_ {
        self.entries.iter().map(|e| (e.0, e.1, e.2))
    }

    /// Report every key not asked for.
    pub fn finish(self, ctx: &mut Ctx, what: &str) {
        for (k, name, _, used) in &self.entries {
            if !used {
                let mut known = self.known.clone();
                known.sort_unstable();
                known.dedup();
                ctx.error(
                    k,
                    format!(
                        "unknown field `{name}` in {what}; expected one of: {}",
                        known.join(", ")
                    ),
                );
            }
        }
    }
}

/// A scalar's text (strings only; numbers and booleans are not strings).
pub fn scalar_str(node: &Node) -> Option<&str> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s),
        YamlDataOwned::Representation(s, ..) => Some(s),
        _ => None,
    }
}

pub fn string(ctx: &mut Ctx, node: &Node, what: &str) -> Option<String> {
    match scalar_str(node) {
        Some(s) => Some(s.to_string()),
        None => {
            ctx.error(
                node,
                format!("{what} must be a string, found {}", kind_of(node)),
            );
            None
        }
    }
}

pub fn boolean(ctx: &mut Ctx, node: &Node, what: &str) -> Option<bool> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Some(*b),
        _ => {
            ctx.error(
                node,
                format!("{what} must be true or false, found {}", kind_of(node)),
            );
            None
        }
    }
}

pub fn uint(ctx: &mut Ctx, node: &Node, what: &str) -> Option<u64> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Integer(i)) if *i >= 0 => Some(*i as u64),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => {
            ctx.error(
                node,
                format!("{what} must be a non-negative integer, found {i}"),
            );
            None
        }
        _ => {
            ctx.error(
                node,
                format!(
                    "{what} must be a non-negative integer, found {}",
                    kind_of(node)
                ),
            );
            None
        }
    }
}

pub fn positive(ctx: &mut Ctx, node: &Node, what: &str) -> Option<u64> {
    let v = uint(ctx, node, what)?;
    if v == 0 {
        ctx.error(node, format!("{what} must be greater than zero"));
        return None;
    }
    Some(v)
}

/// A non-negative integer no greater than `max`.
pub fn uint_at_most(ctx: &mut Ctx, node: &Node, what: &str, max: u64) -> Option<u64> {
    let v = uint(ctx, node, what)?;
    at_most(ctx, node, what, max, v)
}

/// A positive integer no greater than `max`.
pub fn positive_at_most(ctx: &mut Ctx, node: &Node, what: &str, max: u64) -> Option<u64> {
    let v = positive(ctx, node, what)?;
    at_most(ctx, node, what, max, v)
}

fn at_most(ctx: &mut Ctx, node: &Node, what: &str, max: u64, v: u64) -> Option<u64> {
    if v > max {
        ctx.error(node, format!("{what} must be at most {max}"));
        return None;
    }
    Some(v)
}

pub fn number(ctx: &mut Ctx, node: &Node, what: &str) -> Option<f64> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => Some(*i as f64),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => Some(f.into_inner()),
        _ => {
            ctx.error(
                node,
                format!("{what} must be a number, found {}", kind_of(node)),
            );
            None
        }
    }
}

/// The items of a list node (a problem and no items when it is not a list).
pub fn list<'n>(ctx: &mut Ctx, node: &'n Node, what: &str) -> &'n [Node] {
    match &node.data {
        YamlDataOwned::Sequence(items) => items,
        _ => {
            ctx.error(
                node,
                format!("{what} must be a list, found {}", kind_of(node)),
            );
            &[]
        }
    }
}

/// A list of strings; a single string is accepted as a list of one.
pub fn string_list(ctx: &mut Ctx, node: &Node, what: &str) -> Vec<String> {
    if let Some(s) = scalar_str(node) {
        return vec![s.to_string()];
    }
    list(ctx, node, what)
        .iter()
        .filter_map(|n| string(ctx, n, what))
        .collect()
}

/// A node as JSON (for audit entries written inside rule examples).
pub fn to_json(ctx: &mut Ctx, node: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Null) => J::Null,
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => J::Bool(*b),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => J::from(*i),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => {
            serde_json::Number::from_f64(f.into_inner())
                .map(J::Number)
                .unwrap_or(J::Null)
        }
        YamlDataOwned::Value(ScalarOwned::String(s)) | YamlDataOwned::Representation(s, ..) => {
            J::String(s.clone())
        }
        YamlDataOwned::Sequence(items) => J::Array(items.iter().map(|n| to_json(ctx, n)).collect()),
        YamlDataOwned::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map.iter() {
                match scalar_str(k) {
                    Some(key) => {
                        let value = to_json(ctx, v);
                        out.insert(key.to_string(), value);
                    }
                    None => ctx.error(k, "keys must be strings"),
                }
            }
            J::Object(out)
        }
        _ => {
            ctx.error(node, format!("unsupported YAML value: {}", kind_of(node)));
            J::Null
        }
    }
}

/// `host:port` with an IP literal (or `localhost`); no name is resolved.
pub fn socket_addr(ctx: &mut Ctx, node: &Node, text: &str, what: &str) -> Option<SocketAddr> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Some(a);
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        if let Ok(p) = port.parse::<u16>() {
            return Some(SocketAddr::from(([127, 0, 0, 1], p)));
        }
    }
    ctx.error(
        node,
        format!("{what}: `{text}` is not an address (IP:PORT, e.g. 127.0.0.1:9200 or [::1]:9200)"),
    );
    None
}

/// A path that must not be empty.
pub fn non_empty_path(ctx: &mut Ctx, n: &Node, what: &str) -> Option<PathBuf> {
    let s = string(ctx, n, what)?;
    if s.is_empty() {
        ctx.error(n, format!("{what} must not be empty"));
        return None;
    }
    Some(PathBuf::from(s))
}

/// One part of a config file: the top-level keys it owns and how it reads them. A part
/// lives with the module whose settings it holds (detection config, sources, sinks, the
/// spool, the server), so no module reads another's keys.
pub trait Section {
    /// The top-level keys this part reads.
    fn keys(&self) -> &'static [&'static str];
    /// Read one of its keys, applying what is set on top of what is there.
    fn apply(&mut self, ctx: &mut Ctx, key: &str, node: &Node);
}

/// Read a config file made of parts: the built-in `default` first (trusted; a key no
/// part owns is skipped, since the default holds every part's keys), then the user's
/// `text` (named `file`) on top, key by key, where a key no part owns is reported. Every
/// problem is returned, sorted.
pub fn load_parts(
    default: &str,
    file: &str,
    text: &str,
    parts: &mut [&mut dyn Section],
) -> Result<(), Vec<Problem>> {
    let mut ctx = Ctx::new("<built-in default>");
    if let Some(node) = ctx.load(default) {
        apply_parts(&mut ctx, &node, parts, false);
    }
    assert!(
        ctx.problems.is_empty(),
        "built-in default config: {:?}",
        ctx.problems
    );
    if text.trim().is_empty() {
        return Ok(());
    }
    let mut ctx = Ctx::new(file);
    if let Some(node) = ctx.load(text) {
        if !is_null(&node) {
            apply_parts(&mut ctx, &node, parts, true);
        }
    }
    if ctx.problems.is_empty() {
        Ok(())
    } else {
        ctx.problems.sort();
        Err(ctx.problems)
    }
}

fn apply_parts(ctx: &mut Ctx, node: &Node, parts: &mut [&mut dyn Section], strict: bool) {
    let Some(mut m) = MapReader::new(ctx, node, "the config") else {
        return;
    };
    for part in parts.iter_mut() {
        for key in part.keys() {
            if let Some(n) = m.take(key) {
                part.apply(ctx, key, n);
            }
        }
    }
    if strict {
        m.finish(ctx, "the config");
    }
}

/// Read a file's text for [`load_parts`]; a file that cannot be read is one problem.
pub fn read_file(path: &std::path::Path) -> Result<String, Vec<Problem>> {
    std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            file: path.display().to_string().into(),
            line: 1,
            col: 1,
            message: format!("cannot read config: {e}"),
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_unknown_keys_with_positions() {
        let mut ctx = Ctx::new("t.yaml");
        let node = ctx.load("a: 1\nbogus: 2\n").unwrap();
        let mut m = MapReader::new(&mut ctx, &node, "test").unwrap();
        assert!(m.take("a").is_some());
        m.finish(&mut ctx, "test");
        assert_eq!(ctx.problems.len(), 1);
        assert_eq!(
            ctx.problems[0].to_string(),
            "t.yaml:2:1: unknown field `bogus` in test; expected one of: a"
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let mut ctx = Ctx::new("t.yaml");
        assert!(ctx.load("a: [1, 2\nb: 3\n").is_none());
        assert_eq!(ctx.problems.len(), 1);
        assert!(ctx.problems[0].line >= 1, "{}", ctx.problems[0]);
    }
}
