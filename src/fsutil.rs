//! Small filesystem pieces shared by the stateful parts (file-tail and CloudWatch
//! checkpoints, the email outbox).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Replace `path` with `bytes` so that a crash leaves the old or the new content, never a
/// mix: a temporary file beside it, written and fsynced, renamed over it, and the
/// directory fsynced so the rename itself survives.
pub fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_durably_parts(path, &[bytes])
}

/// [`write_durably`] of `parts` one after the other, without joining them in memory
/// first (a large state). On an error (a full disk) the temporary file is removed, so a
/// failed write leaves the old file and takes no space.
pub fn write_durably_parts(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        for p in parts {
            f.write_all(p)?;
        }
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checkpoint.json");
        write_durably(&p, b"old").unwrap();
        write_durably(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["checkpoint.json"]);
        // A directory that cannot take the file is an error, not a silent loss.
        assert!(write_durably(&dir.path().join("missing/x.json"), b"x").is_err());
    }

    /// A write that fails leaves the old content and no temporary file behind.
    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // The rename cannot replace a non-empty directory: the write fails at its end.
        let p = dir.path().join("state");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("keep"), b"old").unwrap();
        assert!(write_durably_parts(&p, &[b"new ", b"state"]).is_err());
        assert_eq!(fs::read(p.join("keep")).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state"], "no temporary left");
    }
}
