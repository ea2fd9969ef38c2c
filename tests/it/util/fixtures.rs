//! The shipped fixtures: golden scenarios under `fixtures/scenarios/`; YAML read as JSON
//! values, and the fenced blocks of the guides.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::cli::crate_dir;

/// `fixtures/scenarios`: `<name>.jsonl` inputs and their `<name>.alerts.jsonl` goldens.
pub fn scenario_dir() -> PathBuf {
    crate_dir().join("fixtures/scenarios")
}

/// Every scenario input (`*.jsonl` but not `*.alerts.jsonl`), sorted.
pub fn scenario_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(scenario_dir())
        .expect("fixtures/scenarios exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".jsonl") && !name.ends_with(".alerts.jsonl")
        })
        .collect();
    v.sort();
    v
}

/// `day-on-the-platform` for `.../day-on-the-platform.jsonl`.
pub fn scenario_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".jsonl"))
        .expect("a .jsonl file name")
}

/// The golden alerts file of scenario `name`.
pub fn golden_path(name: &str) -> PathBuf {
    scenario_dir().join(format!("{name}.alerts.jsonl"))
}

/// The bytes of scenario `name`.
pub fn scenario(name: &str) -> Vec<u8> {
    std::fs::read(scenario_dir().join(format!("{name}.jsonl"))).expect("scenario fixture")
}

/// YAML text as JSON values, one per document, decoded as the crate decodes YAML
/// (`auditwatch::yaml::to_json`: string keys only); `what` names the text in a panic.
pub fn yaml_docs(what: &str, text: &str) -> Vec<Value> {
    use auditwatch::yaml::{to_json, Ctx, Node};
    use saphyr::LoadableYamlNode;
    let docs = Node::load_from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut ctx = Ctx::new(what);
    let values = docs.iter().map(|d| to_json(&mut ctx, d)).collect();
    assert!(ctx.problems.is_empty(), "{what}: {:?}", ctx.problems);
    values
}

/// The text of the fenced block (```` ```fence ````) of `doc` whose first line is
/// `first_line`.
pub fn fenced_block(doc: &str, fence: &str, first_line: &str) -> String {
    let marker = format!("```{fence}\n{first_line}");
    let start = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("no block starting {marker:?}"))
        + "```\n".len()
        + fence.len();
    let body = &doc[start..];
    body[..body.find("```").expect("closed block")].to_string()
}
