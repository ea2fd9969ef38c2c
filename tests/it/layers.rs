//! The crate's modules form one-way layers, readable bottom-up (see
//! `docs/architecture.md`): a module uses only modules of lower layers, and within a
//! folder module the files use each other without cycles. Read from the `use` lines and
//! the `crate::`/`super::` paths of every file under `src/` (comments are skipped), so the
//! order stays true as the code changes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom-up: each top-level module may use only those of lower layers.
const LAYERS: &[&[&str]] = &[
    &["util", "fsutil", "yaml"],
    &["alert", "parse"],
    &["config", "metrics"],
    &["rules"],
    &["engine"],
    &["pipeline"],
    &["ingest", "sink"],
    &["source"],
    &["report"],
    &["daemon", "simulate"],
];

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&top))
}

/// The module path of a file under `src/` (`engine/detect/mod.rs` -> `engine::detect`).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src/ is readable") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Code without comments (a `//` outside a string literal ends the line's code).
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = ' ';
        let mut cut = line.len();
        for (i, c) in line.char_indices() {
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            }
            if !in_str && c == '/' && prev == '/' {
                cut = i - 1;
                break;
            }
            prev = c;
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

/// The module paths a file refers to, resolved to absolute paths (`crate::a::b`,
/// `super::b` from `a::c`, and the items of `use` groups such as `super::{b, c}`).
fn references(module: &[String], text: &str) -> BTreeSet<Vec<String>> {
    let mut refs = BTreeSet::new();
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let at_word = i == 0 || !ident(bytes[i - 1]);
        let rest = &bytes[i..];
        let (base, skip): (Vec<String>, usize) = if at_word && rest.starts_with(b"crate::") {
            (Vec::new(), "crate::".len())
        } else if at_word && rest.starts_with(b"super::") {
            // `super` is the parent module: of `a/b.rs` (`a::b`) and of `a/mod.rs` (`a`)
            // alike, one level up the module path.
            let mut b = module.to_vec();
            b.pop();
            (b, "super::".len())
        } else {
            i += 1;
            continue;
        };
        let mut j = i + skip;
        let mut path = base.clone();
        // Follow `a::b::` segments, then a group `{x, y::z}` or a final name.
        loop {
            if bytes[j..].starts_with(b"{") {
                let end = bytes[j..]
                    .iter()
                    .position(|&b| b == b'}')
                    .map_or(bytes.len(), |e| j + e);
                for item in text[j + 1..end].split(',') {
                    let first = item.trim().split("::").next().unwrap_or("").trim();
                    if !first.is_empty() && first != "self" && first != "*" {
                        let mut p = path.clone();
                        p.push(first.to_string());
                        refs.insert(p);
                    }
                }
                j = end;
                break;
            }
            let start = j;
            while j < bytes.len() && ident(bytes[j]) {
                j += 1;
            }
            if j > start {
                path.push(text[start..j].to_string());
            }
            if j > start && bytes[j..].starts_with(b"::") {
                j += 2;
                continue;
            }
            break;
        }
        refs.insert(path);
        i = j.max(i + 1);
    }
    refs
}

struct Crate {
    /// Every module path that is a file.
    modules: BTreeSet<Vec<String>>,
    /// (from module, to referenced path)
    edges: Vec<(Vec<String>, Vec<String>)>,
}

fn read_crate() -> Crate {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules = BTreeSet::new();
    let mut edges = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).expect("under src/");
        // The binary (main.rs, cli/) sits on top and uses the library by its name.
        if rel == Path::new("main.rs") || rel.starts_with("cli") {
            continue;
        }
        let module = module_of(rel);
        let text = code(&std::fs::read_to_string(&f).expect("a source file"));
        for r in references(&module, &text) {
            edges.push((module.clone(), r));
        }
        modules.insert(module);
    }
    Crate { modules, edges }
}

/// The longest prefix of `path` that is a module.
fn resolve<'a>(modules: &'a BTreeSet<Vec<String>>, path: &[String]) -> Option<&'a Vec<String>> {
    (1..=path.len())
        .rev()
        .find_map(|n| modules.get(&path[..n].to_vec()))
}

#[test]
fn every_module_uses_only_lower_layers() {
    let c = read_crate();
    let mut problems = BTreeSet::new();
    for (from, to) in &c.edges {
        let (Some(a), Some(b)) = (from.first(), to.first()) else {
            continue;
        };
        if a == b {
            continue;
        }
        let Some(la) = layer_of(a) else {
            problems.insert(format!("module `{a}` is in no layer: add it to LAYERS"));
            continue;
        };
        match layer_of(b) {
            Some(lb) if lb < la => {}
            Some(_) => {
                problems.insert(format!(
                    "`{}` uses `{}`, which is not below it",
                    from.join("::"),
                    to.join("::")
                ));
            }
            None => {
                if c.modules.iter().any(|m| m.first() == Some(b)) {
                    problems.insert(format!("module `{b}` is in no layer: add it to LAYERS"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
    // Every top-level module is placed.
    for m in &c.modules {
        if let Some(top) = m.first() {
            assert!(
                layer_of(top).is_some(),
                "module `{top}` is in no layer: add it to LAYERS"
            );
        }
    }
}

#[test]
fn files_of_a_folder_module_use_each_other_without_cycles() {
    let c = read_crate();
    // Edges between sibling files (not the folder's own mod.rs, which is its face).
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (from, to) in &c.edges {
        let Some(target) = resolve(&c.modules, to) else {
            continue;
        };
        if from.len() < 2 || target.len() != from.len() || target == from {
            continue;
        }
        if from[..from.len() - 1] != target[..target.len() - 1] {
            continue;
        }
        graph
            .entry(from.clone())
            .or_default()
            .insert(target.clone());
    }
    // Depth-first search for a back edge.
    fn visit(
        n: &Vec<String>,
        g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m) {
                Some(1) => {
                    let at = stack.iter().position(|x| x == m).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[at..].iter().map(|x| x.join("::")).collect();
                    cycle.push(m.join("::"));
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n) {
            if let Some(cycle) = visit(n, &graph, &mut state, &mut Vec::new()) {
                panic!("files that use each other: {}", cycle.join(" -> "));
            }
        }
    }
}

/// The checker itself: a use of a higher layer and a cycle of siblings are both seen.
#[test]
fn the_checker_sees_paths_groups_and_super() {
    let m = vec!["source".to_string(), "replay".to_string()];
    let text = code(
        "use super::{input::Input, parallel};\nlet x = crate::daemon::run(); // crate::report\n",
    );
    let refs = references(&m, &text);
    let want = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(refs.contains(&want(&["source", "input"])), "{refs:?}");
    assert!(refs.contains(&want(&["source", "parallel"])), "{refs:?}");
    assert!(refs.contains(&want(&["daemon", "run"])), "{refs:?}");
    assert!(
        !refs
            .iter()
            .any(|r| r.first().is_some_and(|f| f == "report")),
        "comments are skipped"
    );
    let from_mod_rs = references(&["engine".to_string()], "use super::alert::Alert;");
    assert!(
        from_mod_rs.contains(&want(&["alert", "Alert"])) || from_mod_rs.contains(&want(&["alert"])),
        "{from_mod_rs:?}"
    );
}
