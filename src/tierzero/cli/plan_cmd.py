"""`tierzero plan`: render everything the spec implies (GitOps trees first) into one directory."""

from __future__ import annotations

from pathlib import Path

import typer

SPEC_OPTION = typer.Option(Path("tierzero.yaml"), "--file", "-f", help="The spec file.")


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)


def plan(
    file: Path = SPEC_OPTION,
    out: Path = typer.Option(None, "--out", "-o", help="Where to write the plan (default .tierzero/render/ beside the spec)."),
    validate: bool = typer.Option(False, "--validate", help="Validate every manifest against Kubernetes and CRD schemas."),
    crd_schemas: Path = typer.Option(None, "--crd-schemas", help="Directory of CRD JSON schemas (<group>/<kind>_<version>.json); default $TIERZERO_CRD_SCHEMAS."),
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Render the GitOps tree (and the other plan parts) deterministically; Secrets are written encrypted."""
    from tierzero.cli import output
    from tierzero.errors import InputError, RefusedError
    from tierzero.workspace.plan import make_context, render_plan, write_plan
    from tierzero.spec import load_spec
    from tierzero.workspace import Workspace

    loaded = load_spec(file)
    ws = Workspace.beside(loaded.path)
    if not ws.age_key.exists():
        raise InputError(f"no workspace key at {ws.age_key}", hint=f"run `tierzero init {loaded.base_dir}` first (it keeps an existing spec with --force off)")
    target = out if out is not None else ws.render_dir
    if crd_schemas is not None and not crd_schemas.is_dir():
        raise InputError(f"--crd-schemas: {crd_schemas} is not a directory")
    from tierzero.phases.preflight import check_references

    check_references(loaded, ws)  # every reference, at its position, before rendering stops at the first
    ctx = make_context(loaded, ws)
    files = render_plan(loaded, ws, previous=target, context=ctx)

    report = None
    if validate:
        from tierzero.render.validate import default_crd_schemas, validate_tree

        schemas = crd_schemas or default_crd_schemas()
        if schemas is None:
            raise InputError("--validate needs CRD schemas", hint="pass --crd-schemas DIR or set TIERZERO_CRD_SCHEMAS")
        yaml_files = {p: d for p, d in files.items() if p.startswith("gitops/")}
        components, supplied = _flux_components(loaded, ws)
        report = validate_tree({**yaml_files, **components}, crd_schemas=schemas, supplied=supplied)
    if report is None or report.ok:
        write_plan(files, target)

    from tierzero.freetier.capacity import capacity_report

    capacity = capacity_report(loaded.platform)
    summaries = [s.as_dict() for s in ctx.clusters.values()]
    from tierzero.adapters.proxmox_privileges import ROLE_NAME, ROLE_PRIVILEGES
    from tierzero.render.proxmox_hosts import host_changes

    from tierzero.render.debian_image import host_image_changes
    from tierzero.render.oci_talos import oci_talos_changes

    hosts = host_changes(loaded.platform, ROLE_NAME, ROLE_PRIVILEGES) if loaded.platform.has_proxmox else []
    in_oci = host_image_changes(loaded.platform) + oci_talos_changes(loaded.platform)
    if json_out:
        result = {"out": str(target), "files": len(files), "clusters": summaries, "capacity": capacity.as_dict(), "hosts": hosts, "oci": in_oci,
                  "written": report is None or report.ok}
        if report is not None:
            result["validation"] = {"ok": report.ok, "checked": report.checked, "problems": report.problems, "unverified": report.unverified}
        output.print_json(result)
    else:
        lines: list[str] = []
        for s in ctx.clusters.values():
            line = f"cluster {s.cluster}: {s.files} files"
            if s.engine:
                line += f" ({s.engine}), {s.secrets} secrets encrypted ({s.reused} unchanged)"
            lines.append(line)
            lines.append(f"  add-ons: {', '.join(s.addons) if s.addons else 'none'}")
            for note in s.notes:
                lines.append(f"  note: {note}")
        if hosts:
            lines.append("on the Proxmox hosts, deploy will:")
            for line in hosts:
                lines.append(f"  {line}")
        if in_oci:
            lines.append("in OCI, deploy will:")
            for line in in_oci:
                lines.append(f"  {line}")
        lines.append("capacity:")
        for line in capacity.lines():
            lines.append(f"  {line}")
        if report is not None:
            lines.append(f"validated {report.checked} objects: {'ok' if report.ok else f'{len(report.problems)} problem(s)'}")
            for item in report.unverified:
                lines.append(f"  unverified (no schema): {item}")
        if report is None or report.ok:
            lines.append(f"wrote {len(files)} files to {target}")
        output.print_lines(lines)
    if report is not None and not report.ok:
        if not json_out:
            output.error(report.problems)
        raise RefusedError(f"the plan has {len(report.problems)} validation problem(s); nothing was written")


def _flux_components(loaded: object, ws: object) -> tuple[dict[str, bytes], dict[str, str]]:
    """Flux's gotk-components.yaml for each Flux cluster, checked against its recorded digest,
    from what this machine has (the workspace cache, gitops.flux.components_file, a flux CLI on
    PATH; never a download): ({plan path: bytes}, {plan path: why it is not at hand})."""
    from pathlib import Path

    from tierzero.adapters import flux_components
    from tierzero.adapters.connections import Connections
    from tierzero.errors import OperationError
    from tierzero.render.gitops.flux import components_path
    from tierzero.render.gitops.versions import FLUX_VERSION

    found: dict[str, bytes] = {}
    missing: dict[str, str] = {}
    for cluster in loaded.platform.clusters:  # type: ignore[attr-defined]
        if cluster.gitops is None or cluster.gitops.engine != "flux":
            continue
        path = f"gitops/{cluster.name}/{components_path(cluster.name)}"
        file = Path(cluster.gitops.flux.components_file).expanduser() if cluster.gitops.flux.components_file else None
        if file is not None and not file.is_absolute():
            file = loaded.base_dir / file  # type: ignore[attr-defined]
        try:
            got = flux_components.obtain(Path(ws.root), FLUX_VERSION, Connections(target="real"), components_file=file, download=False)  # type: ignore[attr-defined]
        except OperationError as exc:
            missing[path] = f"Flux {FLUX_VERSION}'s own manifests, added at deploy (not at hand: {exc.message})"
            continue
        found[path] = got.data
    return found, missing
