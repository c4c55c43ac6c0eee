"""`talosctl gen config` in Python: controlplane and worker configs for a version contract."""

from __future__ import annotations

from collections.abc import Mapping

from tierzero.render.talos import documents, legacy
from tierzero.render.talos.options import GenerateOptions, MachineConfigs, Role
from tierzero.render.talos.patches import Patch, apply_patches, load_patches
from tierzero.render.talos.secrets import SecretsBundle, generate_bundle
from tierzero.render.talos.yamlio import Document


def base_documents(opts: GenerateOptions, bundle: SecretsBundle, role: Role) -> tuple[list[Document], list[str]]:
    """The unpatched config for one role, and warnings about options this contract cannot express."""
    extra, warnings = documents.extra_documents(opts, bundle, role)
    return [legacy.v1alpha1_document(opts, bundle, role), *extra], warnings


def generate(opts: GenerateOptions, files: Mapping[str, bytes] | None = None) -> MachineConfigs:
    """Generate both roles; `--config-patch` applies to both, then the role-specific patches.
    `files`: the bytes of each `@file` patch, by the name after @ (read by the caller).

    Without `opts.secrets` a fresh bundle is generated and stored there, so callers can write it out.
    """
    opts.check()
    bundle = opts.secrets or generate_bundle()
    opts.secrets = bundle
    common = load_patches(opts.config_patches, files)
    per_role: dict[Role, list[Patch]] = {
        "controlplane": common + load_patches(opts.config_patches_control_plane, files),
        "worker": common + load_patches(opts.config_patches_worker, files),
    }
    results: dict[Role, list[Document]] = {}
    warnings: list[str] = []
    for role, role_patches in per_role.items():
        docs, role_warnings = base_documents(opts, bundle, role)
        warnings += [w for w in role_warnings if w not in warnings]
        results[role] = apply_patches(docs, role_patches)
    return MachineConfigs(controlplane=results["controlplane"], worker=results["worker"], warnings=warnings)
