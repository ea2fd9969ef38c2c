//! What the deployment tests (`deploy_*.rs`) share: reading YAML and the fenced blocks of
//! the guides, running a command that must succeed, making scratch directories.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// YAML text (as saphyr reads it) as JSON values, one per document.
pub fn yaml_docs(what: &str, text: &str) -> Vec<Value> {
    use saphyr::{LoadableYamlNode, ScalarOwned, YamlOwned};
    fn conv(what: &str, y: &YamlOwned) -> Value {
        match y {
            YamlOwned::Value(ScalarOwned::Null) => Value::Null,
            YamlOwned::Value(ScalarOwned::Boolean(b)) => Value::Bool(*b),
            YamlOwned::Value(ScalarOwned::Integer(i)) => Value::from(*i),
            YamlOwned::Value(ScalarOwned::FloatingPoint(f)) => Value::from(f.into_inner()),
            YamlOwned::Value(ScalarOwned::String(s)) => Value::String(s.clone()),
            YamlOwned::Representation(s, _, _) => Value::String(s.clone()),
            YamlOwned::Sequence(items) => {
                Value::Array(items.iter().map(|i| conv(what, i)).collect())
            }
            YamlOwned::Mapping(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| match conv(what, k) {
                        Value::String(k) => (k, conv(what, v)),
                        other => (other.to_string(), conv(what, v)),
                    })
                    .collect(),
            ),
            other => panic!("{what}: unexpected YAML node {other:?}"),
        }
    }
    YamlOwned::load_from_str(text)
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .iter()
        .map(|d| conv(what, d))
        .collect()
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

/// Run `cmd`, which must succeed; its stdout and stderr.
#[track_caller]
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}: {said}");
    said
}

/// `dir`, created.
pub fn mkdir(dir: PathBuf) -> PathBuf {
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
    dir
}

/// Set the mode of `path`.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The mode bits of `path`.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
        .permissions()
        .mode()
        & 0o7777
}
