"""`tierzero talos …`: secrets, machine configs and validation without talosctl."""

from __future__ import annotations

from pathlib import Path

import typer

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON.")
FORCE_OPTION = typer.Option(False, "--force", help="Overwrite existing files.")

talos_app = typer.Typer(
    name="talos", help="Talos machine configs, natively (talosctl-compatible output).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(talos_app, name="talos")


def _write_private(path: Path, text: str, force: bool) -> None:
    """Write a file readable only by its owner (machine configs and talosconfig hold secrets),
    atomically and 0600 even when it replaces a file that was readable by others."""
    from tierzero.errors import InputError
    from tierzero.workspace.layout import write_private

    if path.exists() and not force:
        raise InputError(f"{path} already exists", hint="pass --force to overwrite it")
    write_private(path, text)


def _split_pairs(values: list[str], flag: str) -> list[tuple[str, str]]:
    from tierzero.errors import InputError

    pairs = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise InputError(f"{flag}: expected KEY=VALUE, got {value!r}")
        pairs.append((key.strip(), rest.strip()))
    return pairs


def _patch_files(patches: list[str]) -> dict[str, bytes]:
    """The bytes of each `@file` --config-patch, by the name after @ (relative to the working
    directory, as talosctl reads them); InputError naming the one that cannot be read."""
    from tierzero.errors import InputError

    files: dict[str, bytes] = {}
    for patch in patches:
        if patch.startswith("@") and patch[1:] not in files:
            try:
                files[patch[1:]] = Path(patch[1:]).read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read patch file {patch[1:]}: {exc.strerror}") from None
    return files


def _split_commas(values: list[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


@talos_app.command("gensecret")
def gensecret(
    output_file: Path = typer.Option(Path("secrets.yaml"), "--output-file", "-o", help="Where to write the bundle."),
    force: bool = FORCE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Generate a secrets bundle, like `talosctl gen secrets` (written with mode 0600)."""
    from tierzero.cli import output
    from tierzero.render.talos.secrets import generate_bundle

    _write_private(output_file, generate_bundle().to_yaml(), force)
    if json_out:
        output.print_json({"secrets": str(output_file)})
    else:
        output.console().print(f"wrote {output_file} (mode 0600)", markup=False)


@talos_app.command("genconfig")
def genconfig(
    cluster_name: str = typer.Argument(..., help="The cluster name."),
    endpoint: str = typer.Argument(..., help="The Kubernetes API URL, e.g. https://192.168.1.10:6443."),
    with_secrets: Path = typer.Option(None, "--with-secrets", help="Use this secrets bundle instead of a new one."),
    kubernetes_version: str = typer.Option(None, "--kubernetes-version", help="Kubernetes version, e.g. 1.34.1."),
    talos_version: str = typer.Option(None, "--talos-version", help="Version contract, v1.11 … v1.15 (default v1.14)."),
    output_dir: Path = typer.Option(Path("."), "--output-dir", "-o", help="Where to write the files."),
    config_patch: list[str] = typer.Option([], "--config-patch", help="Patch for all configs (@file or inline)."),
    config_patch_control_plane: list[str] = typer.Option([], "--config-patch-control-plane", help="Patch for controlplane.yaml."),
    config_patch_worker: list[str] = typer.Option([], "--config-patch-worker", help="Patch for worker.yaml."),
    additional_sans: list[str] = typer.Option([], "--additional-sans", help="Extra API server SANs (comma-separated)."),
    dns_domain: str = typer.Option("cluster.local", "--dns-domain", help="Cluster DNS domain."),
    install_disk: str = typer.Option("/dev/sda", "--install-disk", help="Disk to install Talos to (talosctl's default)."),
    install_image: str = typer.Option(
        None, "--install-image",
        help="Installer image (default, as talosctl: the installer of --talos-version's release; "
        "factory.talos.dev/metal-installer/<empty schematic> from v1.14).",
    ),
    install_extra_kernel_args: list[str] = typer.Option([], "--install-extra-kernel-args", help="Kernel args (comma-separated)."),
    registry_mirror: list[str] = typer.Option([], "--registry-mirror", help="HOST=ENDPOINT, repeatable."),
    local_api_server_port: int = typer.Option(0, "--local-api-server-port", help="API server port on each control plane."),
    allow_scheduling: bool = typer.Option(False, "--allow-scheduling-on-control-planes", help="Run workloads on control planes."),
    sysctl: list[str] = typer.Option([], "--sysctl", help="KEY=VALUE, repeatable."),
    cni_url: list[str] = typer.Option([], "--cni-url", help="Custom CNI manifest URL, repeatable."),
    with_kubeconfig: bool = typer.Option(False, "--with-kubeconfig", help="Also write an admin kubeconfig."),
    force: bool = FORCE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Generate controlplane.yaml, worker.yaml and talosconfig, like `talosctl gen config`."""
    from tierzero.cli import output
    from tierzero.errors import InputError
    from tierzero.render.talos import client
    from tierzero.render.talos.contract import DEFAULT_CONTRACT
    from tierzero.render.talos.defaults import default_install_image
    from tierzero.render.talos.generate import generate
    from tierzero.render.talos.options import DEFAULT_KUBERNETES_VERSION, GenerateOptions
    from tierzero.render.talos.secrets import load_bundle

    mirrors: dict[str, list[str]] = {}
    for host, url in _split_pairs(registry_mirror, "--registry-mirror"):
        mirrors.setdefault(host, []).append(url)
    opts = GenerateOptions(
        cluster_name=cluster_name,
        endpoint=endpoint,
        kubernetes_version=kubernetes_version or DEFAULT_KUBERNETES_VERSION,
        talos_contract=talos_version or DEFAULT_CONTRACT,
        secrets=load_bundle(with_secrets) if with_secrets else None,
        additional_sans=_split_commas(additional_sans),
        dns_domain=dns_domain,
        install_disk=install_disk,
        install_image=install_image if install_image is not None else default_install_image(talos_version or DEFAULT_CONTRACT),
        install_extra_kernel_args=_split_commas(install_extra_kernel_args),
        registry_mirrors=mirrors,
        local_api_server_port=local_api_server_port,
        allow_scheduling_on_control_planes=allow_scheduling,
        sysctls=dict(_split_pairs(sysctl, "--sysctl")),
        cni_urls=list(cni_url),
        config_patches=list(config_patch),
        config_patches_control_plane=list(config_patch_control_plane),
        config_patches_worker=list(config_patch_worker),
    )
    configs = generate(opts, _patch_files([*config_patch, *config_patch_control_plane, *config_patch_worker]))
    bundle = opts.secrets
    assert bundle is not None  # generate() fills in a fresh bundle when none was given
    files = {
        output_dir / "controlplane.yaml": configs.to_yaml("controlplane"),
        output_dir / "worker.yaml": configs.to_yaml("worker"),
        output_dir / "talosconfig": client.talosconfig(bundle, cluster_name, [opts.endpoint_host]),
    }
    if with_kubeconfig:
        files[output_dir / "kubeconfig"] = client.admin_kubeconfig(bundle, cluster_name, endpoint)
    existing = [str(path) for path in files if path.exists()]
    if existing and not force:
        raise InputError(f"{', '.join(existing)} already exist(s)", hint="pass --force to overwrite")
    for path, text in files.items():
        _write_private(path, text, force=True)
    if json_out:
        output.print_json({"files": [str(p) for p in files], "contract": str(opts.contract), "warnings": configs.warnings})
        return
    for warning in configs.warnings:
        output.error([f"warning: {warning}"])
    con = output.console()
    for path in files:
        con.print(f"wrote {path} (mode 0600)", markup=False)


@talos_app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="A machine config (YAML stream)."),
    talos_version: str = typer.Option(None, "--talos-version", help="Version contract to validate against (default v1.14)."),
    schema: Path = typer.Option(None, "--schema", help="config.schema.json, or a directory of v1.X.config.schema.json."),
    mode: str = typer.Option(
        None, "--mode", "-m",
        help="Talos runtime mode, as `talosctl validate --mode`: metal (ISO/PXE, installs to disk), "
        "cloud (an installed disk image: nocloud, oracle, …) or container. Default: metal, the strictest.",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Validate a machine config against the official schema of its contract, semantic rules and
    Talos' own rules for the runtime mode (install instructions in metal mode, host DNS in container mode)."""
    import yaml

    from tierzero.cli import output
    from tierzero.errors import InputError, RefusedError
    from tierzero.render.talos.contract import DEFAULT_CONTRACT, Contract
    from tierzero.render.talos.modes import DEFAULT_MODE, MODES, mode_findings
    from tierzero.render.talos.validate import find_schema, validate_documents
    from tierzero.render.talos.yamlio import load_stream

    contract = Contract.parse(talos_version or DEFAULT_CONTRACT)
    if mode is not None and mode not in MODES:
        raise InputError(f"--mode: unknown mode {mode!r}", hint=f"use one of: {', '.join(MODES)}")
    chosen = mode or DEFAULT_MODE
    mode_note = f"{chosen} mode" + ("" if mode else " (assumed; pass --mode cloud for an installed disk image, --mode container for docker)")
    try:
        docs = load_stream(file.read_text())
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"{file}: invalid YAML: {exc}") from exc
    schema_path = find_schema(contract, schema)
    if schema is not None and schema_path is None:
        raise InputError(f"--schema: no {contract}.config.schema.json at {schema}")
    findings = validate_documents(docs, contract, schema_path, chosen)  # type: ignore[arg-type]
    talos_warnings = mode_findings(docs, contract, chosen)[1]  # type: ignore[arg-type]
    notes = [] if schema_path else ["official schema not found; only semantic checks ran (pass --schema)"]
    if json_out:
        output.print_json({
            "valid": not findings, "contract": str(contract), "mode": chosen, "mode_assumed": mode is None,
            "schema": str(schema_path) if schema_path else None,
            "problems": [str(f) for f in findings], "warnings": talos_warnings, "notes": notes,
        })
        if findings:
            raise typer.Exit(1)
        return
    for note in notes:
        output.error([f"note: {note}"])
    for warning in talos_warnings:
        output.error([f"warning: {warning}"])
    if findings:
        output.error([f"{file}: {finding}" for finding in findings])
        raise RefusedError(f"{file}: {len(findings)} problem(s) for Talos {contract} in {mode_note}")
    output.console().print(f"{file}: valid for Talos {contract} in {mode_note}", markup=False)
