"""Read a workspace's sandbox world back (decrypted) in a form two deployments of the same spec
share: what exists and how it is wired, without ids, keys, times or ports that differ run to run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tierzero.sandbox.world import World
from tierzero.workspace import Workspace


def world_documents(ws_root: Path) -> dict[str, Any]:
    return World.open(Workspace(ws_root)).load_all()


def _fakepve(doc: dict[str, Any]) -> dict[str, Any]:
    guests = [("qemu", g) for g in doc.get("vms", [])] + [("lxc", g) for g in doc.get("cts", [])]
    return {
        "guests": sorted((kind, g["vmid"], g["config"].get("name") or g["config"].get("hostname"), g["node"], g["status"],
                          bool(g.get("template"))) for kind, g in guests),
        "disks": sorted(f"{name}:{vol}" for name, st in doc["storages"].items() for vol in st.get("volumes", {})),
        "node_files": sorted(f"{node}:{name}:{vol}" for name, nodes in (doc.get("node_volumes") or {}).items()
                             for node, vols in nodes.items() for vol in vols),
        "storage_content": {name: st.get("content") for name, st in doc["storages"].items()},
        "token_privsep": doc.get("token_privsep"),
        "tokens": sorted(doc["apitokens"]),
        "nodes": doc["nodes"], "cluster": doc["cluster_name"], "quorate": doc["quorate"],
    }


def _pve_hosts(doc: dict[str, Any]) -> dict[str, Any]:
    cluster = doc["cluster"]
    return {
        "cluster": {"name": cluster["name"], "members": sorted(cluster["members"]), "qdevice": cluster["qdevice"],
                    "tokens": sorted(cluster["tokens"]), "token_privsep": cluster.get("token_privsep"), "roles": cluster.get("roles"),
                    "acl": cluster.get("acl"),
                    # OSD ids and monitor order follow which concurrent step finished first: compare what is where.
                    "ceph": {"initialized": cluster["ceph"]["initialized"], "mons": sorted(cluster["ceph"]["mons"]),
                             "osds": sorted((host, dev) for _, host, dev in cluster["ceph"]["osds"]), "pools": cluster["ceph"]["pools"]}},
        "hosts": {name: {"in_cluster": h["in_cluster"], "packages": h["packages"], "files": sorted(h["files"]),
                         "authorized": len(h["authorized"]), "tailscale_up": h["tailscale_up"], "ceph_installed": h["ceph_installed"]}
                  for name, h in doc["hosts"].items()},
    }


def _talos(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "clusters": {name: {"bootstrapped": c["bootstrapped"], "nodes": sorted(c["nodes"])} for name, c in doc["clusters"].items()},
        "machines": {key: {"configured": bool(m.get("config")), "address": m.get("address"), "hostname": m.get("hostname"),
                           "in_etcd": m.get("in_etcd"), "running": m.get("running"), "version": (m.get("image") or {}).get("version"),
                           "disk": m.get("disk")}
                     for key, m in doc["machines"].items()},
    }


def _image_factory(doc: dict[str, Any]) -> dict[str, Any]:
    return {"schematics": sorted(doc["schematics"])}


def _kubernetes(doc: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix} {ns} {plural}": sorted(objs) for prefix, ns, plural, objs in doc["objects"]}


def _infisical(doc: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, svc in doc["services"].items():
        out[name] = {
            "initialized": svc["initialized"],
            "users": sorted(svc.get("users", {})),
            "orgs": sorted(o["name"] for o in svc.get("orgs", {}).values()),
            "identities": sorted((i["name"], tuple(i["authMethods"])) for i in svc.get("identities", {}).values()),
            "client_secrets": sorted(len(v) for v in svc.get("client_secrets", {}).values()),
        }
    return out


def _git_forge(doc: dict[str, Any]) -> dict[str, Any]:
    return {"deploy_keys": {repo: sorted((k["title"], k["read_only"]) for k in keys) for repo, keys in doc["deploy_keys"].items()}}


def git_history(ws_root: Path) -> dict[str, list[str]]:
    """Each repository on the sandbox's Git host: the subjects of its branch, newest first."""
    import subprocess

    out = {}
    for repo in sorted((ws_root / "sandbox" / "world" / "git-forge").glob("*/*/*.git")):
        log = subprocess.run(["git", "--git-dir", str(repo), "log", "--format=%s", "--all"], capture_output=True, text=True)
        out[str(repo.relative_to(ws_root / "sandbox" / "world" / "git-forge"))] = log.stdout.splitlines()
    return out


def _oci_storage(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "buckets": sorted(doc["buckets"]),
        "objects": sorted((b, n) for b, n, *_ in doc["objects"]),
        "uploads": len(doc["uploads"]),
        "images": sorted((i["displayName"], i["lifecycleState"], i["launchOptions"]["firmware"]) for i in doc["images"].values()),
        "launched": sorted((i["displayName"], i["privateIp"]) for i in doc["launched"].values()),  # OCIDs differ run to run
    }


NORMALIZERS = {"fakepve": _fakepve, "pve-hosts": _pve_hosts, "talos": _talos, "infisical": _infisical, "image-factory": _image_factory, "git-forge": _git_forge,
               "oci-storage": _oci_storage}


def normalized_world(ws_root: Path) -> dict[str, Any]:
    """Every document, reduced to what two deployments of the same spec must agree on."""
    out: dict[str, Any] = {}
    for name, doc in world_documents(ws_root).items():
        assert doc is not None, name
        if name.startswith("kubernetes-"):
            out[name] = _kubernetes(doc)
        else:
            out[name] = NORMALIZERS[name](doc)  # a new stand-in document needs a normalizer here
    out["git repositories"] = git_history(ws_root)
    return out
