//! The `Containerfile`, built with a real buildah and run. No registry is reachable from
//! the tests, so the two base images are stood in for: the build stage by a directory
//! made by the Containerfile's own `install` commands around the binary these tests run
//! (stripped), passed as `--build-context build=DIR`; the distroless/cc runtime by an image
//! made here from the host's glibc, libgcc and a `nonroot` (65532) user, passed as
//! `--build-arg RUNTIME_IMAGE`. The image's entrypoint then checks the image's config as
//! the image's user. Storage (vfs) and temporary files stay in the test's directory.

use std::path::Path;
use std::process::Command;

use super::deploy_util::{mkdir, run_ok};
use crate::util::{crate_dir, require_tool, BIN};

const CONTAINERFILE: &str = include_str!("../../Containerfile");

/// The instructions of the Containerfile, continuation lines joined: (keyword, rest).
fn instructions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in CONTAINERFILE.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                let (kw, rest) = cur.split_once(' ').unwrap_or((&cur, ""));
                out.push((kw.to_uppercase(), rest.trim().to_string()));
                cur.clear();
            }
        }
    }
    out
}

/// The build stage's `RUN`: what makes `/out`.
fn build_run() -> String {
    let ins = instructions();
    let build_from = ins
        .iter()
        .position(|(k, r)| k == "FROM" && r.ends_with(" AS build"))
        .expect("a stage named build");
    ins[build_from..]
        .iter()
        .find(|(k, _)| k == "RUN")
        .map(|(_, r)| r.clone())
        .expect("the build stage runs the build")
}

#[test]
fn containerfile_is_consistent_with_the_repository() {
    let ins = instructions();
    let froms: Vec<&str> = ins
        .iter()
        .filter(|(k, _)| k == "FROM")
        .map(|(_, r)| r.as_str())
        .collect();
    assert_eq!(froms, ["${RUST_IMAGE} AS build", "${RUNTIME_IMAGE}"]);
    // Both bases pinned to a tag, never `latest`.
    for (k, r) in &ins {
        if k == "ARG" && r.ends_with("_IMAGE=") {
            panic!("{r}: a default image");
        }
        if k == "ARG" && r.contains("_IMAGE=") {
            let image = r.split_once('=').unwrap().1;
            let tag = image.rsplit_once(':').map(|t| t.1).unwrap_or("");
            assert!(!tag.is_empty() && tag != "latest", "{image} names a tag");
        }
    }
    let run = build_run();
    assert!(run.contains("cargo build --locked --release"), "{run}");
    // Every file the runtime stage takes from the build stage is one the RUN installs.
    let runtime = ins.iter().rposition(|(k, _)| k == "FROM").unwrap();
    let copies: Vec<&str> = ins[runtime..]
        .iter()
        .filter(|(k, r)| k == "COPY" && r.contains("--from=build"))
        .map(|(_, r)| r.split_whitespace().rev().nth(1).unwrap())
        .collect();
    assert!(copies.len() >= 2, "{copies:?}");
    for src in copies {
        assert!(
            run.contains(src),
            "{src} is not made by the build stage: {run}"
        );
    }
    // Every repository file the RUN installs exists.
    for word in run.split_whitespace() {
        if word.starts_with("deploy/") {
            assert!(crate_dir().join(word).is_file(), "{word}");
        }
    }
    let user = ins
        .iter()
        .find(|(k, _)| k == "USER")
        .expect("USER")
        .1
        .clone();
    assert_eq!(
        user, "65532:65532",
        "distroless's nonroot, as the Kubernetes manifests"
    );
    // The build context leaves the build cache out.
    let ignore = std::fs::read_to_string(crate_dir().join(".containerignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "target/"), "{ignore}");
}

/// A runtime base standing in for distroless/cc: the libraries `binary` links and
/// `/etc/passwd` with `nonroot`.
fn runtime_context(dir: &Path, binary: &Path) {
    let rootfs = mkdir(dir.join("rootfs"));
    let ldd = run_ok(Command::new("ldd").arg(binary));
    for lib in ldd
        .split_whitespace()
        .filter(|w| w.starts_with('/') && Path::new(w).exists())
    {
        let dest = rootfs.join(lib.trim_start_matches('/'));
        mkdir(dest.parent().unwrap().to_path_buf());
        std::fs::copy(lib, &dest).unwrap_or_else(|e| panic!("{lib}: {e}"));
    }
    let etc = mkdir(rootfs.join("etc"));
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(etc.join("group"), "root:x:0:\nnonroot:x:65532:\n").unwrap();
    std::fs::write(dir.join("Containerfile"), "FROM scratch\nCOPY rootfs/ /\n").unwrap();
}

/// The build stage's output: the Containerfile's RUN, with the cargo build replaced by the
/// binary already built, run in `dir` (a copy of what it reads) with `/out` under `dir`.
fn build_context(dir: &Path, binary: &Path) {
    let run = build_run();
    let script = run
        .replace("cargo build --locked --release", "true")
        .replace("/out/", "out/");
    assert!(!script.contains("/out"), "{script}");
    mkdir(dir.join("target/release"));
    std::fs::copy(binary, dir.join("target/release/auditwatch")).unwrap();
    mkdir(dir.join("deploy"));
    std::fs::copy(
        crate_dir().join("deploy/container.yaml"),
        dir.join("deploy/container.yaml"),
    )
    .unwrap();
    run_ok(Command::new("sh").args(["-ec", &script]).current_dir(dir));
}

#[test]
fn containerfile_builds_with_buildah_and_the_image_checks_its_config() {
    if !require_tool("buildah", "apt-get install buildah") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tmp = mkdir(d.join("tmp"));
    let buildah = |args: &[&str]| -> String {
        run_ok(
            Command::new("buildah")
                .arg(format!("--root={}", d.join("storage").display()))
                .arg(format!("--runroot={}", d.join("run").display()))
                .arg("--storage-driver=vfs")
                .args(args)
                .env("TMPDIR", &tmp),
        )
    };
    // The binary under test, stripped as a release build would be small.
    let binary = d.join("auditwatch");
    run_ok(Command::new("strip").arg("-o").arg(&binary).arg(BIN));

    let rt = mkdir(d.join("runtime"));
    runtime_context(&rt, &binary);
    buildah(&[
        "build",
        "--isolation=chroot",
        "--pull=never",
        "-t",
        "localhost/auditwatch-test-runtime",
        rt.to_str().unwrap(),
    ]);
    let stage = mkdir(d.join("build-stage"));
    build_context(&stage, &binary);
    // The Containerfile as written, from the repository as the build context.
    buildah(&[
        "build",
        "--isolation=chroot",
        "--pull=never",
        "--build-context",
        &format!("build={}", stage.display()),
        "--build-arg",
        "RUNTIME_IMAGE=localhost/auditwatch-test-runtime",
        "-f",
        crate_dir().join("Containerfile").to_str().unwrap(),
        "-t",
        "localhost/auditwatch-test",
        crate_dir().to_str().unwrap(),
    ]);
    let inspect: serde_json::Value = serde_json::from_str(&buildah(&[
        "inspect",
        "--type=image",
        "localhost/auditwatch-test",
    ]))
    .expect("buildah inspect prints JSON");
    let config = &inspect["OCIv1"]["config"];
    assert_eq!(config["User"], "65532:65532", "{config}");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/bin/auditwatch"]),
        "{config}"
    );
    assert_eq!(
        config["Cmd"],
        serde_json::json!(["run", "--config", "/etc/auditwatch/auditwatch.yaml"]),
        "{config}"
    );
    let ctr = buildah(&["from", "--pull=never", "localhost/auditwatch-test"]);
    let ctr = ctr.trim();
    // As the image's user: the entrypoint checks the image's config.
    let said = buildah(&[
        "run",
        "--isolation=chroot",
        ctr,
        "--",
        "/usr/bin/auditwatch",
        "config",
        "check",
        "/etc/auditwatch/auditwatch.yaml",
    ]);
    assert!(said.contains("ok"), "{said}");
    // The state directory belongs to that user.
    let root = buildah(&["mount", ctr]);
    let state = Path::new(root.trim()).join("var/lib/auditwatch");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&state).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65532, 65532), "{state:?}");
    buildah(&["umount", ctr]);
    buildah(&["rm", ctr]);
    let size = buildah(&[
        "images",
        "--format",
        "{{.Name}}:{{.Tag}} {{.Size}}",
        "localhost/auditwatch-test",
    ]);
    eprintln!(
        "image (stripped debug binary, stand-in base): {}",
        size.trim()
    );
}
