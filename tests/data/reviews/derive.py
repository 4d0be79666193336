#!/usr/bin/env python3
"""Writes the DERIVED reviews beside this file from the project's own capture pod-create.kube-apiserver-1.36.json.

Run from anywhere: `python3 tests/data/reviews/derive.py`. The output is committed; rerun only after changing
this script. Each derived review keeps the captured envelope and changes only what its name says.
"""
import copy
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
captured = json.loads((HERE / "pod-create.kube-apiserver-1.36.json").read_text())


def write(name, review):
    (HERE / name).write_text(json.dumps(review, separators=(",", ":")) + "\n")


# The same Pod CREATE with its one container privileged, as `kubectl run --privileged` would send it.
privileged = copy.deepcopy(captured)
request = privileged["request"]
request["uid"] = "50799709-1565-4573-86b3-567acf3d6416"
request["object"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
write("pod-create-privileged.DERIVED.json", privileged)

# A DELETE of the captured Pod: no object, the Pod as oldObject, DeleteOptions.
delete = copy.deepcopy(captured)
request = delete["request"]
request["uid"] = "50799709-1565-4573-86b3-567acf3d6417"
request["operation"] = "DELETE"
request["oldObject"] = request["object"]
request["object"] = None
request["options"] = {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "propagationPolicy": "Background"}
write("pod-delete.DERIVED.json", delete)
