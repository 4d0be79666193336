"""Validates the custom resources in rendered manifests against crd-schemas.json (beside this file).

Run by tests/helm.rs with the Python of .cache/venv, whose jsonschema comes with kubernetes-validate:
    python validate_crds.py SCHEMAS FILE...
Prints one line per custom resource ("ok KIND NAME", or "ERROR KIND NAME: PATH: MESSAGE"), and "skip KIND"
for kinds it has no schema for. Exits 1 when any resource fails.
"""
import json
import sys

import jsonschema
import yaml

schemas = json.load(open(sys.argv[1]))
failed = False
for path in sys.argv[2:]:
    for doc in yaml.safe_load_all(open(path)):
        if not doc:
            continue
        key = "%s/%s" % (doc.get("apiVersion"), doc.get("kind"))
        if key not in schemas:
            print("skip", key)
            continue
        name = doc.get("metadata", {}).get("name")
        errors = sorted(jsonschema.Draft7Validator(schemas[key]).iter_errors(doc), key=lambda e: list(e.path))
        for error in errors:
            failed = True
            print("ERROR %s %s: %s: %s" % (doc["kind"], name, ".".join(str(p) for p in error.path), error.message))
        if not errors:
            print("ok", doc["kind"], name)
sys.exit(1 if failed else 0)
