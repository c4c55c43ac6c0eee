"""The sandbox's `flux` CLI: what a flux CLI on PATH is to a real run (source 3 of
`tierzero.adapters.flux_components`), answering `flux version --client -o json` and
`flux install --export` for the pinned version.

It is NOT Flux's gotk-components.yaml: tierzero may not ship that file, and the sandbox has
neither the real CLI nor the internet. Its output is a small manifest in the same layout (the
header `flux install` writes, the flux-system Namespace, each default controller's CRDs,
ServiceAccount and Deployment with its pinned image) that the Flux stand-in understands: the
stand-in runs a controller once its Deployment exists, and serves its kinds once its CRDs
exist. It is trusted through `SANDBOX_DIGEST`, which only a sandbox `Connections` carries
(`GitKnobs.extra_digests`); a real run refuses it. Every document carries the label
`tierzero.dev/sandbox-standin: "true"`, so it cannot pass for the real file.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from pathlib import Path

from tierzero.render.gitops.versions import FLUX_COMPONENTS, FLUX_VERSION
from tierzero.render.gitops.yamlout import dump

SANDBOX_LABEL = {"tierzero.dev/sandbox-standin": "true"}
# sha256 of `manifest(FLUX_VERSION)`; a test recomputes it, so a change to the manifest must change it here too.
SANDBOX_DIGEST = "1dd9fd919c4a474820f50c7e125d7b161d353da70e4966090ba0401e5b0ff6ce"

# (controller, group, kind, plural, served versions) of the default components' CRDs
# (flux2 manifests/bases/*; the controllers' config/crd/bases @ the tags in FLUX_COMPONENTS).
CRDS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("source-controller", "source.toolkit.fluxcd.io", "Bucket", "buckets", ("v1", "v1beta2")),
    ("source-controller", "source.toolkit.fluxcd.io", "GitRepository", "gitrepositories", ("v1", "v1beta2")),
    ("source-controller", "source.toolkit.fluxcd.io", "HelmChart", "helmcharts", ("v1", "v1beta2")),
    ("source-controller", "source.toolkit.fluxcd.io", "HelmRepository", "helmrepositories", ("v1", "v1beta2")),
    ("source-controller", "source.toolkit.fluxcd.io", "OCIRepository", "ocirepositories", ("v1", "v1beta2")),
    ("source-controller", "source.toolkit.fluxcd.io", "ExternalArtifact", "externalartifacts", ("v1",)),
    ("kustomize-controller", "kustomize.toolkit.fluxcd.io", "Kustomization", "kustomizations", ("v1",)),
    ("helm-controller", "helm.toolkit.fluxcd.io", "HelmRelease", "helmreleases", ("v2",)),
    ("notification-controller", "notification.toolkit.fluxcd.io", "Alert", "alerts", ("v1beta3",)),
    ("notification-controller", "notification.toolkit.fluxcd.io", "Provider", "providers", ("v1beta3",)),
    ("notification-controller", "notification.toolkit.fluxcd.io", "Receiver", "receivers", ("v1",)),
)


def _labels(component: str | None = None) -> dict[str, str]:
    out = {"app.kubernetes.io/instance": "flux-system", "app.kubernetes.io/part-of": "flux"}
    if component:
        out["app.kubernetes.io/component"] = component
    return {**out, **SANDBOX_LABEL}


def documents(version: str = FLUX_VERSION) -> list[dict]:
    controllers = FLUX_COMPONENTS[version].controllers
    docs: list[dict] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system", "labels": _labels()}}]
    for controller, tag in controllers.items():
        for owner, group, kind, plural, versions in CRDS:
            if owner != controller:
                continue
            docs.append({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.{group}", "labels": _labels(controller)},
                "spec": {"group": group, "scope": "Namespaced", "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
                         "versions": [{"name": v, "served": True, "storage": i == 0, "subresources": {"status": {}},
                                       "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
                                      for i, v in enumerate(versions)]},
            })
        docs.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": controller, "namespace": "flux-system", "labels": _labels(controller)}})
        docs.append({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": controller, "namespace": "flux-system", "labels": _labels(controller)},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": controller}},
                     "template": {"metadata": {"labels": {"app": controller}},
                                  "spec": {"serviceAccountName": controller, "nodeSelector": {"kubernetes.io/os": "linux"},
                                           "containers": [{"name": "manager", "image": f"ghcr.io/fluxcd/{controller}:{tag}"}]}}},
        })
    return docs


def manifest(version: str = FLUX_VERSION) -> bytes:
    """The stand-in's `flux install --export` output: the header flux writes, then the documents."""
    header = ("---\n# This manifest was generated by flux. DO NOT EDIT.\n"
              f"# Flux Version: {version}\n# Components: {','.join(FLUX_COMPONENTS[version].controllers)}\n"
              "# tierzero sandbox stand-in: not Flux's gotk-components.yaml; valid only in the sandbox.\n")
    return (header + "---\n".join(dump(d) for d in documents(version))).encode()


def digest(version: str = FLUX_VERSION) -> str:
    return hashlib.sha256(manifest(version)).hexdigest()


_LAST_LINE = """    sys.exit("tierzero sandbox flux stand-in: only `version --client` and `install --export` are played, not " + " ".join(args))\n"""


def _stamp() -> str:
    """What the program's content follows from: the interpreter, the version, this module's code
    and the components source (a change there changes `SANDBOX_DIGEST` too)."""
    source = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    return f"# stamp: {sys.executable} {FLUX_VERSION} {SANDBOX_DIGEST} {source}\n"


def write_program(directory: Path) -> Path:
    """An executable `flux` in `directory`: a Python script holding this module's answers, so
    it starts in milliseconds (it imports nothing of tierzero). A program already there with the
    same stamp is kept: rendering the manifest again cost every sandbox start about 16 ms of CPU."""
    directory.mkdir(parents=True, exist_ok=True)
    program = directory / "flux"
    stamp = _stamp()
    try:
        lines = program.read_text().splitlines(keepends=True)
        if len(lines) > 2 and lines[1] == stamp and lines[-1] == _LAST_LINE and os.access(program, os.X_OK):
            return program
    except (OSError, UnicodeDecodeError):
        pass
    body = f"""#!{sys.executable} -S
{stamp}# tierzero sandbox: a stand-in for the flux CLI {FLUX_VERSION} (see tierzero.sandbox.flux.cli)
import base64, json, sys
VERSION = {FLUX_VERSION!r}
MANIFEST = base64.b64decode({base64.b64encode(manifest(FLUX_VERSION)).decode()!r})
args = sys.argv[1:]
if args[:2] == ["version", "--client"]:
    print(json.dumps({{"flux": VERSION}}) if "json" in args else "flux: " + VERSION)
elif args == ["install", "--export"]:
    sys.stdout.buffer.write(MANIFEST)
else:
{_LAST_LINE}"""
    partial = program.with_name(f".{program.name}.{os.getpid()}")  # whole or absent: the stamp is checked, not the body
    partial.write_text(body)
    partial.chmod(0o755)
    os.replace(partial, program)
    return program
