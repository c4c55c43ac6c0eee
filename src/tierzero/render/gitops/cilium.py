"""Cilium at first boot, the way Talos documents it: control-plane configs carry an inline
manifest with a Job that runs `cilium install` against KubePrism (localhost:7445), so the
cluster has a CNI before Flux or Argo CD can run. kube-proxy is replaced by Cilium."""

from __future__ import annotations

from typing import Any

from tierzero.render.gitops.versions import CILIUM_CLI_IMAGE, CILIUM_VERSION
from tierzero.render.gitops.yamlout import dump_all
from tierzero.spec.clusters import Cluster

NAME = "cilium-install"
AGENT_CAPS = "{CHOWN,KILL,NET_ADMIN,NET_RAW,IPC_LOCK,SYS_ADMIN,SYS_RESOURCE,DAC_OVERRIDE,FOWNER,SETGID,SETUID}"
CLEAN_STATE_CAPS = "{NET_ADMIN,SYS_ADMIN,SYS_RESOURCE}"


def cilium_values(cluster: Cluster) -> list[str]:
    """The `--set` values: Talos mounts cgroup v2 and bpffs itself and forbids loading kernel
    modules, hence no cgroup auto-mount and no SYS_MODULE capability."""
    values = [
        "ipam.mode=kubernetes",
        "kubeProxyReplacement=true",
        f"securityContext.capabilities.ciliumAgent={AGENT_CAPS}",
        f"securityContext.capabilities.cleanCiliumState={CLEAN_STATE_CAPS}",
        "cgroup.autoMount.enabled=false",
        "cgroup.hostRoot=/sys/fs/cgroup",
        "k8sServiceHost=localhost",
        "k8sServicePort=7445",
    ]
    lb = cluster.addons.metallb
    if lb is not None and lb.enabled and lb.implementation == "cilium":
        values += ["l2announcements.enabled=true", "externalIPs.enabled=true"]
    return values


def cilium_install_command(cluster: Cluster) -> list[str]:
    cmd = ["cilium", "install", f"--version={CILIUM_VERSION}"]
    for value in cilium_values(cluster):
        cmd += ["--set", value]
    return cmd


def cilium_manifests(cluster: Cluster) -> list[dict[str, Any]]:
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, "namespace": "kube-system"}}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": NAME},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": "kube-system"}],
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": NAME, "namespace": "kube-system"},
        "spec": {
            "backoffLimit": 10,
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "serviceAccountName": NAME,
                    "hostNetwork": True,  # no CNI yet: only the host network works
                    "tolerations": [{"operator": "Exists"}],
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [{"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}]
                            }
                        }
                    },
                    "containers": [
                        {
                            "name": NAME,
                            "image": CILIUM_CLI_IMAGE,
                            "env": [
                                {"name": "KUBERNETES_SERVICE_HOST", "value": "localhost"},
                                {"name": "KUBERNETES_SERVICE_PORT", "value": "7445"},
                            ],
                            "command": cilium_install_command(cluster),
                        }
                    ],
                },
            },
        },
    }
    return [account, binding, job]


def cilium_inline_manifests(cluster: Cluster) -> list[dict[str, str]]:
    """Inline manifests for control-plane Talos configs (`cluster.inlineManifests`); empty when
    the spec brings its own CNI (`cni: none`). Talos needs `cluster.network.cni.name: none` and
    `cluster.proxy.disabled: true` alongside."""
    if cluster.cni != "cilium":
        return []
    return [{"name": NAME, "contents": dump_all(cilium_manifests(cluster)).decode()}]
