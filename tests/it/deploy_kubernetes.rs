//! The Kubernetes manifests of `deploy/kubernetes/`, validated offline and strictly (an
//! unknown field fails) by `tests/deploy/k8s_validate.py`: core kinds against the schemas
//! of PyPI's kubernetes-validate for the oldest Kubernetes with native sidecars (1.29) and
//! its newest, the prometheus-operator kinds against their CRDs' schemas shipped in
//! `tests/deploy/crd-schemas/`. The Helm values' sidecar is validated as the pod the charts
//! render it into. Then what the manifests promise: a native sidecar with no readiness
//! probe, the audit file readable through the pod's group, the monitoring objects pointing
//! at the sidecar's port, the network policy keeping the server's ports open. The
//! PrometheusRule and the dashboards ConfigMap are generated from `dashboards/`
//! (`UPDATE_GOLDEN=1` rewrites them).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use super::deploy_util::run_ok;
use crate::util::{crate_dir, require_python_module, yaml_docs, TestCa, BIN};

const VERSIONS: [&str; 2] = ["1.29.0", "1.37.0"];

fn k8s_dir() -> PathBuf {
    crate_dir().join("deploy/kubernetes")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn docs(file: &str) -> Vec<Value> {
    yaml_docs(file, &read(&k8s_dir().join(file)))
}

fn doc(file: &str, kind: &str) -> Value {
    docs(file)
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("{file} has no {kind}"))
}

/// Run the validator on `files`: (success, output).
fn validate(files: &[PathBuf]) -> (bool, String) {
    let mut cmd = Command::new("python3");
    cmd.arg(crate_dir().join("tests/deploy/k8s_validate.py"));
    for v in VERSIONS {
        cmd.args(["-k", v]);
    }
    let out = cmd.args(files).output().expect("python3 runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The pod a chart renders from values `file`: its `server.extraInitContainers` beside a
/// server container, with `server.volumes` and the chart's `audit` volume claim.
fn pod_from_values(file: &str) -> Value {
    let values = &docs(file)[0];
    let server = &values["server"];
    assert_eq!(server["auditStorage"]["enabled"], true, "{file}");
    let mut volumes = server["volumes"]
        .as_array()
        .expect("server.volumes")
        .clone();
    volumes.push(json!({"name": "audit", "persistentVolumeClaim": {"claimName": "audit"}}));
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": file},
        "spec": {
            "securityContext": server["statefulSet"]["securityContext"]["pod"],
            "initContainers": server["extraInitContainers"],
            "containers": [{"name": "server", "image": "server"}],
            "volumes": volumes,
        }
    })
}

/// What makes a pod spec's audit file readable to its auditwatch sidecar: the sidecar is a
/// native one with no readiness probe and a startup probe, mounts the audit volume
/// read-only, and shares the pod's fsGroup (the server's group, which owns the 0640 file).
fn assert_sidecar(what: &str, spec: &Value) {
    let init = spec["initContainers"].as_array().expect("initContainers");
    let aw = init
        .iter()
        .find(|c| c["name"] == "auditwatch")
        .unwrap_or_else(|| panic!("{what}: no auditwatch init container"));
    assert_eq!(aw["restartPolicy"], "Always", "{what}: a native sidecar");
    assert!(
        aw.get("readinessProbe").is_none(),
        "{what}: a readiness probe"
    );
    assert!(aw["startupProbe"].is_object(), "{what}: no startup probe");
    assert_eq!(aw["startupProbe"]["httpGet"]["path"], "/-/ready", "{what}");
    assert_eq!(
        aw["livenessProbe"]["httpGet"]["path"], "/-/healthy",
        "{what}"
    );
    let ports: Vec<&Value> = aw["ports"].as_array().unwrap().iter().collect();
    assert_eq!(ports.len(), 1, "{what}: only the HTTP endpoint is a port");
    assert_eq!(ports[0]["name"], "aw-metrics");
    assert_eq!(ports[0]["containerPort"], 9201);
    let audit = aw["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "audit")
        .unwrap_or_else(|| panic!("{what}: the audit volume is not mounted"));
    assert_eq!(audit["mountPath"], "/audit");
    assert_eq!(audit["readOnly"], true);
    let pod = &spec["securityContext"];
    assert_eq!(
        pod["fsGroup"], pod["runAsGroup"],
        "{what}: the server's group owns the volume"
    );
    assert_ne!(
        aw["securityContext"]["runAsUser"], pod["runAsUser"],
        "{what}: its own user"
    );
    assert!(
        aw["securityContext"].get("runAsGroup").is_none(),
        "{what}: the sidecar keeps the pod's groups"
    );
}

#[test]
fn manifests_validate_offline_against_kubernetes_and_prometheus_operator_schemas() {
    if !require_python_module("kubernetes_validate", "pip install kubernetes-validate") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.ends_with(".yaml") && !name.starts_with("values-")
        })
        .collect();
    files.sort();
    let mut resources = 0;
    for f in &files {
        resources += yaml_docs(&f.display().to_string(), &read(f))
            .iter()
            .filter(|d| !d.is_null())
            .count();
    }
    for values in ["values-openbao.yaml", "values-vault.yaml"] {
        let pod = dir.path().join(format!("{values}.pod.json"));
        std::fs::write(&pod, pod_from_values(values).to_string()).unwrap();
        files.push(pod);
        resources += 1;
    }
    let (ok, said) = validate(&files);
    assert!(ok, "{said}");
    // Every resource was checked against both versions: nothing skipped.
    let oks = said.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(oks, resources * VERSIONS.len(), "{said}");
    for kind in [
        "StatefulSet",
        "PodMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "ConfigMap",
    ] {
        assert!(
            said.contains(&format!(" {kind}/")),
            "{kind} validated: {said}"
        );
    }

    // The validator fails on what the API server's strict validation refuses: a misspelt
    // field of a core kind and of a CRD kind, a kind it has no schema for.
    let bad = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let sidecar = read(&k8s_dir().join("openbao-auditwatch-sidecar.yaml"));
    let monitoring = read(&k8s_dir().join("monitoring.yaml"));
    for (file, needle) in [
        (
            bad(
                "typo-core.yaml",
                sidecar.replace("restartPolicy: Always", "restartPolicyy: Always"),
            ),
            "restartPolicyy",
        ),
        (
            bad(
                "typo-crd.yaml",
                monitoring.replace("serverName:", "servername:"),
            ),
            "servername",
        ),
        (
            bad(
                "unknown.yaml",
                "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g}\n".into(),
            ),
            "no schema",
        ),
    ] {
        let (ok, said) = validate(&[file]);
        assert!(!ok && said.contains(needle), "{said}");
    }
}

#[test]
fn sidecar_starts_first_never_gates_readiness_and_can_read_the_audit_file() {
    let sts = doc("openbao-auditwatch-sidecar.yaml", "StatefulSet");
    let spec = &sts["spec"]["template"]["spec"];
    assert_sidecar("the StatefulSet", spec);
    for values in ["values-openbao.yaml", "values-vault.yaml"] {
        assert_sidecar(values, &pod_from_values(values)["spec"]);
    }
    // The server's file device writes 0640 (its default 0600 would be unreadable), at the
    // path the sidecar's config tails.
    let hcl = doc("openbao-auditwatch-sidecar.yaml", "ConfigMap")["data"]["audit.hcl"]
        .as_str()
        .unwrap()
        .to_string();
    let helm_hcl = docs("values-openbao.yaml")[0]["server"]["standalone"]["config"]
        .as_str()
        .unwrap()
        .to_string();
    let vault_values = read(&k8s_dir().join("values-vault.yaml"));
    for (what, text) in [("audit.hcl", &hcl), ("values-openbao.yaml", &helm_hcl)] {
        assert!(text.contains("mode      = \"0640\""), "{what}");
        assert!(
            text.contains("file_path = \"/openbao/audit/audit.log\""),
            "{what}"
        );
        assert!(
            text.contains("address       = \"127.0.0.1:9200\""),
            "{what}"
        );
    }
    assert!(vault_values.contains("file_path=/vault/audit/audit.log mode=0640"));
    let config = &yaml_docs(
        "auditwatch.yaml",
        doc("auditwatch-config.yaml", "ConfigMap")["data"]["auditwatch.yaml"]
            .as_str()
            .unwrap(),
    )[0];
    let sources = config["sources"].as_array().unwrap();
    assert!(sources.iter().any(|s| s["path"] == "/audit/audit.log"));
    assert!(sources.iter().any(|s| s["listen"] == "127.0.0.1:9200"));
    // The server's mounts put the audit volume where the device writes.
    let server = &spec["containers"][0];
    assert!(server["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "audit" && m["mountPath"] == "/openbao/audit"));
}

#[test]
fn sidecar_config_passes_config_check_with_its_web_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = doc("auditwatch-config.yaml", "ConfigMap")["data"]["auditwatch.yaml"]
        .as_str()
        .unwrap()
        .to_string();
    let web = doc("auditwatch-config.yaml", "Secret")["stringData"]["web.yml"]
        .as_str()
        .unwrap()
        .to_string();
    // The placeholders replaced as the comments say: a bcrypt hash, the certificate files.
    let ca = TestCa::new(dir.path(), "auditwatch");
    let (cert, key) = ca.server("server");
    let hash = bcrypt::hash("probe-password", 4).unwrap();
    let web = web
        .replace("REPLACE-with-a-bcrypt-hash", &format!("'{hash}'"))
        .replace("/etc/auditwatch-tls/tls.crt", cert.to_str().unwrap())
        .replace("/etc/auditwatch-tls/tls.key", key.to_str().unwrap());
    let web_file = dir.path().join("web.yml");
    std::fs::write(&web_file, web).unwrap();
    let config = config
        .replace("/etc/auditwatch-web/web.yml", web_file.to_str().unwrap())
        .replace(
            "/var/lib/auditwatch",
            dir.path().join("state").to_str().unwrap(),
        );
    let file = dir.path().join("auditwatch.yaml");
    std::fs::write(&file, config).unwrap();
    let said = run_ok(Command::new(BIN).args(["config", "check"]).arg(&file));
    assert!(said.contains("ok"), "{said}");
    // As shipped, the placeholders are refused: nobody runs it by mistake.
    let placeholder = dir.path().join("placeholder.yml");
    let shipped = doc("auditwatch-config.yaml", "Secret")["stringData"]["web.yml"]
        .as_str()
        .unwrap()
        .replace("/etc/auditwatch-tls/tls.crt", cert.to_str().unwrap())
        .replace("/etc/auditwatch-tls/tls.key", key.to_str().unwrap());
    std::fs::write(&placeholder, shipped).unwrap();
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(web_file.to_str().unwrap(), placeholder.to_str().unwrap());
    std::fs::write(&file, text).unwrap();
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn monitoring_objects_point_at_the_sidecar_and_the_policy_keeps_the_server_reachable() {
    let sts = doc("openbao-auditwatch-sidecar.yaml", "StatefulSet");
    let labels = &sts["spec"]["template"]["metadata"]["labels"];
    let pm = doc("monitoring.yaml", "PodMonitor");
    for (k, v) in pm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "the PodMonitor selects the pods by {k}");
    }
    let ep = &pm["spec"]["podMetricsEndpoints"][0];
    assert_eq!(ep["port"], "aw-metrics");
    assert_eq!(ep["scheme"], "https");
    // The rules select job="auditwatch".
    assert_eq!(ep["relabelings"][0]["targetLabel"], "job");
    assert_eq!(ep["relabelings"][0]["replacement"], "auditwatch");
    let rules = read(&crate_dir().join("dashboards/prometheus/auditwatch.rules.yml"));
    assert!(rules.contains("job=\"auditwatch\""));
    let secret = doc("monitoring.yaml", "Secret");
    let name = secret["metadata"]["name"].clone();
    assert_eq!(ep["basicAuth"]["password"]["name"], name);
    assert!(secret["stringData"][ep["basicAuth"]["password"]["key"].as_str().unwrap()].is_string());

    let np = doc("networkpolicy.yaml", "NetworkPolicy");
    for (k, v) in np["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&labels[k], v, "the NetworkPolicy selects the pods by {k}");
    }
    let rules = np["spec"]["ingress"].as_array().unwrap();
    let ports = |r: &Value| -> Vec<i64> {
        (r["ports"].as_array().unwrap().iter())
            .map(|p| p["port"].as_i64().unwrap())
            .collect()
    };
    let open_to_all: Vec<i64> = (rules.iter())
        .filter(|r| r.get("from").is_none())
        .flat_map(ports)
        .collect();
    assert_eq!(
        open_to_all,
        [8200, 8201],
        "the server's ports stay reachable"
    );
    let all_ports: Vec<i64> = rules.iter().flat_map(ports).collect();
    assert!(
        !all_ports.contains(&9200),
        "the socket source is never opened"
    );
    let metrics = rules
        .iter()
        .find(|r| r["ports"][0]["port"] == 9201)
        .expect("a rule for 9201");
    assert!(metrics["from"].is_array(), "9201 only from Prometheus");
}

/// The PrometheusRule made from the Prometheus rule file.
fn prometheus_rule() -> String {
    let rules = read(&crate_dir().join("dashboards/prometheus/auditwatch.rules.yml"));
    let mut out = String::from(
        "# GENERATED from dashboards/prometheus/auditwatch.rules.yml by tests/it/deploy_kubernetes.rs\n\
         # (`UPDATE_GOLDEN=1 cargo test --test it deploy_kubernetes::` rewrites it): do not edit.\n\
         # The alerting rules for the Prometheus Operator. kube-prometheus-stack's Prometheus\n\
         # selects rules labelled `release: <its Helm release>`: add that label if yours does.\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: auditwatch\n  labels: {app.kubernetes.io/name: auditwatch}\n\
         spec:\n",
    );
    for line in rules.lines() {
        if !line.is_empty() {
            out.push_str("  ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The ConfigMap Grafana's dashboard sidecar loads, from `dashboards/grafana/*.json`.
fn dashboards_config_map() -> String {
    let dir = crate_dir().join("dashboards/grafana");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    let mut out = String::from(
        "# GENERATED from dashboards/grafana/*.json by tests/it/deploy_kubernetes.rs\n\
         # (`UPDATE_GOLDEN=1 cargo test --test it deploy_kubernetes::` rewrites it): do not edit.\n\
         # The auditwatch dashboards for Grafana's dashboard sidecar (the Grafana Helm chart's\n\
         # `sidecar.dashboards.enabled`, which loads ConfigMaps labelled grafana_dashboard: \"1\";\n\
         # with `folderAnnotation: grafana_folder` they go into the folder named below). Apply\n\
         # with `kubectl apply --server-side` (the client-side annotation would double its size).\n\
         apiVersion: v1\n\
         kind: ConfigMap\n\
         metadata:\n  name: auditwatch-dashboards\n\
         \x20 labels: {app.kubernetes.io/name: auditwatch, grafana_dashboard: \"1\"}\n\
         \x20 annotations: {grafana_folder: auditwatch}\n\
         data:\n",
    );
    for name in names {
        let text = read(&dir.join(&name));
        out.push_str(&format!("  {name}: |\n"));
        for line in text.trim_end().lines() {
            if !line.is_empty() {
                out.push_str("    ");
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn generated_prometheus_rule_and_dashboards_config_map_are_current() {
    for (file, want) in [
        ("prometheusrule.yaml", prometheus_rule()),
        ("grafana-dashboards.yaml", dashboards_config_map()),
    ] {
        let path = k8s_dir().join(file);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "deploy/kubernetes/{file} is stale: UPDATE_GOLDEN=1 cargo test --test it deploy_kubernetes:: rewrites it"
        );
    }
    // And they carry what they are made from, as YAML readers see it.
    let rule = doc("prometheusrule.yaml", "PrometheusRule");
    let source = yaml_docs(
        "auditwatch.rules.yml",
        &read(&crate_dir().join("dashboards/prometheus/auditwatch.rules.yml")),
    );
    assert_eq!(rule["spec"], source[0]);
    let cm = doc("grafana-dashboards.yaml", "ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let data = cm["data"].as_object().unwrap();
    assert!(data.len() >= 4, "{:?}", data.keys());
    for (name, text) in data {
        let have: Value =
            serde_json::from_str(text.as_str().unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want: Value =
            serde_json::from_str(&read(&crate_dir().join("dashboards/grafana").join(name)))
                .unwrap();
        assert_eq!(have, want, "{name}");
    }
}
