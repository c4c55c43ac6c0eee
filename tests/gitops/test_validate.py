"""The validator finds what it claims to find."""

from __future__ import annotations

import yaml

from tierzero.render.validate import validate_tree

from .conftest import CRDS

KUST = b"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - a.yaml\n"


def tree(doc: dict, extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    return {"d/kustomization.yaml": KUST, "d/a.yaml": yaml.safe_dump(doc).encode(), **(extra or {})}


def helm_release(**spec) -> dict:
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "x", "namespace": "flux-system"},
            "spec": {"interval": "5m", "chartRef": {"kind": "OCIRepository", "name": "x"}, **spec}}


def test_valid_objects_pass():
    assert validate_tree(tree(helm_release()), crd_schemas=CRDS).ok
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}
    assert validate_tree(tree(ns), crd_schemas=CRDS).ok


def test_unknown_field_in_a_custom_resource():
    report = validate_tree(tree(helm_release(chartt={})), crd_schemas=CRDS)
    assert not report.ok and "chartt" in report.problems[0]


def test_unknown_field_in_a_builtin_object_is_strict():
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}, "spex": {}}
    report = validate_tree(tree(ns), crd_schemas=CRDS)
    assert not report.ok and "spex" in " ".join(report.problems)


def test_wrong_type_in_a_builtin_object():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": "eighty"}]}}
    assert not validate_tree(tree(svc), crd_schemas=CRDS).ok


def test_unknown_kinds_are_reported_unverified():
    obj = {"apiVersion": "example.dev/v1", "kind": "Thing", "metadata": {"name": "t"}}
    report = validate_tree(tree(obj), crd_schemas=CRDS)
    assert report.ok and report.unverified == ["d/a.yaml: example.dev/v1/Thing"]


def test_kustomization_resources_must_exist_and_list_every_file():
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}
    files = tree(ns, {"d/b.yaml": yaml.safe_dump(ns).encode()})
    files["d/kustomization.yaml"] = KUST + b"  - missing.yaml\n  - https://example.org/remote.yaml\n"
    problems = validate_tree(files, crd_schemas=CRDS).problems
    assert any("missing.yaml" in p and "does not exist" in p for p in problems)
    assert any("does not list b.yaml" in p for p in problems)
    assert not any("remote.yaml" in p for p in problems)


def test_placeholders_are_problems():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "REPLACE_ME"}}
    assert any("placeholder" in p for p in validate_tree(tree(cm), crd_schemas=CRDS).problems)
    cm["data"]["k"] = "TODO: fill in"
    assert not validate_tree(tree(cm), crd_schemas=CRDS).ok


def test_encrypted_secret_validates_without_its_sops_block():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"}, "type": "Opaque",
              "stringData": {"k": "ENC[AES256_GCM,data:TODO,iv:x,tag:y,type:str]"}, "sops": {"version": "3.11.0"}}
    assert validate_tree(tree(secret), crd_schemas=CRDS).ok
