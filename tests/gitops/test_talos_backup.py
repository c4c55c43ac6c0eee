"""The scheduled etcd backup (etcd_backups.schedule): siderolabs/talos-backup's CronJob, the Talos
ServiceAccount and the SOPS-encrypted S3 credentials in the GitOps tree, valid against the strict
Kubernetes schemas; and the control planes' Talos API access patch, valid against the official
Talos schema of every contract (a v1alpha1 feature up to v1.13, its own document from v1.14)."""

from __future__ import annotations

import copy

import pytest
import yaml

from memory_secrets import MemorySecrets
from tierzero.render import talos_spec
from tierzero.render.gitops.talos_backup import IMAGE, ROLE, S3_SECRET, TALOS_SECRET
from tierzero.render.talos.contract import Contract
from tierzero.render.talos.validate import validate_documents
from tierzero.spec import SpecError, load_spec_bytes

from .conftest import CRDS, blueprint, canary
from .test_render import find, render, validate_tree

BUCKET = {"bucket": "etcd-backups", "endpoint": "https://ns.compat.objectstorage.eu-frankfurt-1.oraclecloud.com",
          "region": "eu-frankfurt-1", "access_key": "env:BK_ID", "secret_key": "env:BK_SECRET"}


def scheduled(schedule: str = "0 3 * * *", **extra) -> dict:
    spec = blueprint()
    spec["clusters"][0]["etcd_backups"] = {"keep": 5, "bucket": dict(BUCKET), "schedule": schedule, **extra}
    return spec


def test_the_tree_holds_the_cronjob_the_talos_service_account_and_encrypted_credentials(project_factory, environ):
    env = {"BK_ID": canary("keyid"), "BK_SECRET": canary("secret")}
    environ(env)
    project = project_factory(scheduled())
    result = render(project)
    files = result.files
    report = validate_tree(files, crd_schemas=CRDS)
    assert report.ok, report.problems
    # Talos' own CRD (serviceaccounts.talos.dev, created by Talos once the feature is on) has no schema in the oracles.
    assert report.unverified == ["infrastructure/configs/talos-backup.yaml: talos.dev/v1alpha1/ServiceAccount"]

    (_, job), = find(files, "CronJob", "talos-backup")
    assert job["metadata"]["namespace"] == "talos-backup" and job["spec"]["schedule"] == "0 3 * * *"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == IMAGE == "ghcr.io/siderolabs/talos-backup:v0.1.0-beta.3"
    env_of = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env_of == {
        "AWS_ACCESS_KEY_ID": {"secretKeyRef": {"name": S3_SECRET, "key": "AWS_ACCESS_KEY_ID"}},
        "AWS_SECRET_ACCESS_KEY": {"secretKeyRef": {"name": S3_SECRET, "key": "AWS_SECRET_ACCESS_KEY"}},
        "AWS_REGION": "eu-frankfurt-1", "CUSTOM_S3_ENDPOINT": BUCKET["endpoint"], "USE_PATH_STYLE": "false",
        "BUCKET": "etcd-backups", "S3_PREFIX": "etcd/main/scheduled", "CLUSTER_NAME": "main",
        "AGE_X25519_PUBLIC_KEY": project.secrets.recipient(),
    }
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/var/run/secrets/talos.dev"]]["secret"]["secretName"] == TALOS_SECRET
    assert container["workingDir"] == "/tmp" and "emptyDir" in volumes[mounts["/tmp"]]

    (_, account), = find(files, "ServiceAccount", TALOS_SECRET)
    assert account["apiVersion"] == "talos.dev/v1alpha1" and account["spec"] == {"roles": [ROLE]} and ROLE == "os:etcd:backup"
    (_, ns), = [(p, d) for p, d in find(files, "Namespace", "talos-backup")]
    assert ns["metadata"]["name"] == "talos-backup"

    path = f"infrastructure/configs/talos-backup.{S3_SECRET}.sops.yaml"
    assert path in files and all(v.encode() not in data for v in env.values() for data in files.values())
    secret = project.decrypt(files[path])
    assert secret["stringData"] == {"AWS_ACCESS_KEY_ID": env["BK_ID"], "AWS_SECRET_ACCESS_KEY": env["BK_SECRET"]}


def test_without_a_schedule_nothing_is_rendered(project_factory):
    spec = blueprint()
    spec["clusters"][0]["etcd_backups"] = {"bucket": dict(BUCKET, access_key="env:UNSET_NEVER_READ", secret_key="env:UNSET_NEVER_READ")}
    files = render(project_factory(spec)).files
    assert not find(files, "CronJob") and not any("talos-backup" in p for p in files)


def test_a_schedule_needs_a_bucket_and_a_gitops_block():
    spec = blueprint()
    spec["clusters"][0]["etcd_backups"] = {"schedule": "@daily"}
    with pytest.raises(SpecError) as missing:
        load_spec_bytes(yaml.safe_dump(spec).encode())
    assert any("schedule needs bucket" in p.message for p in missing.value.problems)
    spec = scheduled()
    del spec["clusters"][0]["gitops"]
    spec["clusters"][0].pop("addons", None)
    with pytest.raises(SpecError) as no_tree:
        load_spec_bytes(yaml.safe_dump(spec).encode())
    (problem,) = [p for p in no_tree.value.problems if p.path == ("clusters", 0, "etcd_backups", "schedule")]
    assert "no gitops block" in problem.message and problem.line
    spec = scheduled(schedule="every night")
    with pytest.raises(SpecError) as bad_cron:
        load_spec_bytes(yaml.safe_dump(spec).encode())
    assert any(p.path[:3] == ("clusters", 0, "etcd_backups") for p in bad_cron.value.problems)


def test_secret_values_in_the_bucket_block_are_refused():
    spec = scheduled()
    spec["clusters"][0]["etcd_backups"]["bucket"]["secret_key"] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    with pytest.raises(SpecError) as refused:
        load_spec_bytes(yaml.safe_dump(spec).encode())
    (problem,) = [p for p in refused.value.problems if p.path[-1] == "secret_key"]
    assert "plaintext secrets are not allowed" in problem.message and "wJalrXUtnFEMI" not in problem.message


CONTRACTS = ["v1.11.6", "v1.12.11", "v1.13.9", "v1.14.0", "v1.15.0"]


@pytest.mark.parametrize("talos", CONTRACTS)
def test_control_planes_allow_the_backup_namespace_os_etcd_backup_and_validate(oracles, talos):
    data = copy.deepcopy(scheduled(namespace="etcd-snapshots"))
    data["clusters"][0]["talos_version"] = talos
    data["clusters"][0]["kubernetes_version"] = "1.34.1"
    p = load_spec_bytes(yaml.safe_dump(data).encode()).platform
    cluster = p.clusters[0]
    contract = Contract.parse(cluster.talos_contract)
    schema = oracles / "talos" / "schemas" / f"{contract}.config.schema.json"
    store = MemorySecrets()
    checked = 0
    for role, node in cluster.nodes():
        docs = [d for d in yaml.safe_load_all(talos_spec.machine_config(p, cluster, node.name, store)) if d]
        assert not validate_documents(docs, contract, schema)
        if contract.multidoc_kubernetes:
            access = [d for d in docs if d.get("kind") == "KubeTalosAPIAccessConfig"]
            assert "kubernetesTalosAPIAccess" not in yaml.safe_dump(docs[0])
        else:
            feature = docs[0]["machine"].get("features", {}).get("kubernetesTalosAPIAccess")
            access = [feature] if feature else []
            if feature:
                assert feature["enabled"] is True
        if role == "controlplane":
            (setting,) = access
            assert setting["allowedRoles"] == ["os:etcd:backup"] and setting["allowedKubernetesNamespaces"] == ["etcd-snapshots"]
            checked += 1
        else:
            assert access == []
    assert checked == len(cluster.control_planes) >= 1
