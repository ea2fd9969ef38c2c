//! The shipped fixtures: golden scenarios under `fixtures/scenarios/`.

use std::path::{Path, PathBuf};

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
