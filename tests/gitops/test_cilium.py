"""Cilium at first boot: the inline manifest the Talos control-plane configs carry."""

from __future__ import annotations

import copy

import kubernetes_validate
import yaml

from tierzero.render.gitops import cilium_inline_manifests
from tierzero.render.gitops.versions import CILIUM_CLI_VERSION, CILIUM_VERSION
from tierzero.render.validate import KUBERNETES_SCHEMA_VERSION
from tierzero.spec.models import Cluster

from .conftest import blueprint


def cluster(**changes) -> Cluster:
    data = copy.deepcopy(blueprint()["clusters"][0])
    data.update(changes)
    return Cluster.model_validate(data)


def job_of(manifests: list[dict]) -> dict:
    (entry,) = manifests
    assert entry["name"] == "cilium-install"
    docs = [d for d in yaml.safe_load_all(entry["contents"]) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_SCHEMA_VERSION, strict=True)
    assert [d["kind"] for d in docs] == ["ServiceAccount", "ClusterRoleBinding", "Job"]
    return docs[2]


def test_job_installs_pinned_cilium_through_kubeprism():
    job = job_of(cilium_inline_manifests(cluster()))
    pod = job["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["serviceAccountName"] == "cilium-install"
    (container,) = pod["containers"]
    assert container["image"].endswith(f":{CILIUM_CLI_VERSION}")
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"KUBERNETES_SERVICE_HOST": "localhost", "KUBERNETES_SERVICE_PORT": "7445"}
    cmd = container["command"]
    assert cmd[:3] == ["cilium", "install", f"--version={CILIUM_VERSION}"]
    sets = {cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--set"}
    assert {
        "kubeProxyReplacement=true",
        "k8sServiceHost=localhost",
        "k8sServicePort=7445",
        "ipam.mode=kubernetes",
        "securityContext.capabilities.ciliumAgent={CHOWN,KILL,NET_ADMIN,NET_RAW,IPC_LOCK,SYS_ADMIN,SYS_RESOURCE,DAC_OVERRIDE,FOWNER,SETGID,SETUID}",
        "securityContext.capabilities.cleanCiliumState={NET_ADMIN,SYS_ADMIN,SYS_RESOURCE}",
        "cgroup.autoMount.enabled=false",
        "cgroup.hostRoot=/sys/fs/cgroup",
    } <= sets
    assert "l2announcements.enabled=true" not in sets
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["key"] == "node-role.kubernetes.io/control-plane"


def test_lb_ipam_turns_on_l2_announcements():
    addons = {"metallb": {"implementation": "cilium", "addresses": ["10.10.0.200-10.10.0.220"]}}
    job = job_of(cilium_inline_manifests(cluster(addons=addons)))
    assert "l2announcements.enabled=true" in job["spec"]["template"]["spec"]["containers"][0]["command"]


def test_no_cilium_when_the_spec_brings_its_own_cni():
    assert cilium_inline_manifests(cluster(cni="none")) == []
