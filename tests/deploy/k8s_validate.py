#!/usr/bin/env python3
"""Validate Kubernetes manifests offline, strictly (an unknown field is an error, as with
`kubectl apply --validate=strict`).

Core kinds against the Kubernetes OpenAPI schemas that PyPI's kubernetes-validate ships;
the prometheus-operator kinds (PodMonitor, PrometheusRule) against the openAPIV3Schema of
their CRDs in crd-schemas/ beside this file. A kind with no schema is a failure, not a
warning (kubernetes-validate itself only warns and exits 0).

Usage: k8s_validate.py [-k VERSION]... FILE...
Prints one line per resource and version: `ok FILE KIND/NAME VERSION` or `FAIL ...`;
exits 1 if anything failed.
"""

import argparse
import json
import os
import sys

import jsonschema
import yaml
from kubernetes_validate import utils as kv

HERE = os.path.dirname(os.path.abspath(__file__))
CRDS = {
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}


def strict(schema):
    """The API server's strict field validation: an object with declared properties
    takes no others unless the schema says it preserves unknown fields."""
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


def crd_schema(name):
    with open(os.path.join(HERE, "crd-schemas", name)) as f:
        schema = json.load(f)
    schema.pop("$comment", None)
    return strict(schema)


def check(doc, version):
    """None when `doc` is valid for Kubernetes `version`, else the reason."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CRDS:
        errors = sorted(
            jsonschema.Draft7Validator(crd_schema(CRDS[key])).iter_errors(doc),
            key=lambda e: list(e.path),
        )
        if errors:
            e = errors[0]
            return "%s: %s" % (".".join(str(p) for p in e.path), e.message)
        return None
    try:
        kv.validate(doc, version, strict=True)
        return None
    except kv.ValidationError as e:
        return "%s: %s" % (".".join(str(p) for p in e.path), e.message)
    except kv.SchemaNotFoundError as e:
        return "no schema: " + e.message
    except kv.VersionNotSupportedError as e:
        return "kubernetes-validate does not know version " + e.version


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-k", "--kubernetes-version", action="append")
    p.add_argument("files", nargs="+")
    args = p.parse_args()
    versions = args.kubernetes_version or [kv.latest_version()]
    failed = False
    for name in args.files:
        with open(name) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        if not docs:
            print("FAIL %s: no resource" % name)
            failed = True
        for doc in docs:
            what = "%s/%s" % (doc.get("kind"), (doc.get("metadata") or {}).get("name"))
            for version in versions:
                reason = check(doc, version)
                if reason:
                    print("FAIL %s %s %s: %s" % (name, what, version, reason))
                    failed = True
                else:
                    print("ok %s %s %s" % (name, what, version))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
