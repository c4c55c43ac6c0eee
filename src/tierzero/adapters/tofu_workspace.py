"""The working directory a tofu layer runs in: staged module files, backend files, var files."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierzero.render.tofu_vars import TFVARS_FILE, S3StateBackend, json_text, tfvars_for
from tierzero.workspace.layout import write_public

if TYPE_CHECKING:
    from tierzero.spec.models import Platform

__all__ = ["BACKEND_CONFIG_FILE", "BACKEND_FILE", "TFVARS_FILE", "S3StateBackend", "json_text", "layer_files", "layer_module_dir",
           "stage_layer", "stage_module", "write_backend", "write_json", "write_tfvars"]

BACKEND_FILE = "backend.tf.json"
BACKEND_CONFIG_FILE = "backend-config.json"  # passed as -backend-config; .json makes it parse as JSON
_MANIFEST = ".tierzero-module.json"
_MODULE_SUFFIXES = (".tf", ".tf.json")


def layer_module_dir(layer: str) -> Path:
    """The packaged module of a layer, e.g. `oci` or `oci_twin`."""
    path = Path(str(resources.files("tierzero.layers") / layer))
    if not path.is_dir():
        raise FileNotFoundError(f"no packaged tofu module for layer {layer!r} at {path}")
    return path


SHARED_FILE = "shared.txt"  # in a layer's directory: files it stages from another layer, one path a line


def layer_files(layer: str) -> dict[str, Path]:
    """The files a layer stages, by name: its own *.tf, plus those its `shared.txt` names in
    another layer (like `../oci/variables.tf`: the twin declares the real module's variables and
    free-tier limits from their one copy). A name found twice is an error."""
    module = layer_module_dir(layer)
    files = _module_files(module)
    shared = module / SHARED_FILE
    if shared.is_file():
        for line in shared.read_text().splitlines():
            rel = line.split("#", 1)[0].strip()
            if not rel:
                continue
            path = (module / rel).resolve()
            if not path.is_file() or path.name in files:
                raise FileNotFoundError(f"{shared}: {rel} is missing or shadows the layer's own {path.name}")
            files[path.name] = path
    return dict(sorted(files.items()))


def _module_files(module_dir: Path) -> dict[str, Path]:
    return {p.name: p for p in module_dir.iterdir() if p.is_file() and p.name.endswith(_MODULE_SUFFIXES) and p.name != BACKEND_FILE}


def stage_layer(layer: str, workdir: Path) -> list[str]:
    """Stage a packaged layer (its own files and the ones it shares) into workdir."""
    return _stage(layer_files(layer), workdir)


def stage_module(module_dir: Path, workdir: Path) -> list[str]:
    """Copy a module directory's .tf files into workdir (see `stage_layer` for packaged layers)."""
    return _stage(_module_files(module_dir), workdir)


def _stage(files: dict[str, Path], workdir: Path) -> list[str]:
    """Copy the files into workdir, removing files an earlier staging copied that are gone now.
    State, var files and .terraform/ in workdir are left alone."""
    workdir.mkdir(parents=True, exist_ok=True)
    manifest = workdir / _MANIFEST
    previous: list[str] = json.loads(manifest.read_text()) if manifest.exists() else []
    names = sorted(files)
    for stale in set(previous) - set(names):
        (workdir / stale).unlink(missing_ok=True)
    for name in names:
        shutil.copyfile(files[name], workdir / name)
    manifest.write_text(json.dumps(names, indent=2) + "\n")
    return names


def write_json(path: Path, data: Any) -> None:
    """`json_text`, written atomically (tierzero.workspace.layout.write_public)."""
    write_public(path, json_text(data))


def write_backend(workdir: Path, backend: S3StateBackend | None) -> list[str]:
    """Declare the backend in backend.tf.json and return the init arguments that configure it.
    None means the local backend (state in workdir): any earlier backend file is removed, and
    init will then refuse until the state is migrated, rather than silently start empty."""
    backend_file = workdir / BACKEND_FILE
    config_file = workdir / BACKEND_CONFIG_FILE
    if backend is None:
        backend_file.unlink(missing_ok=True)
        config_file.unlink(missing_ok=True)
        return []
    write_json(backend_file, {"terraform": {"backend": {"s3": {}}}})
    write_json(config_file, backend.config())
    return [f"-backend-config={BACKEND_CONFIG_FILE}"]


def write_tfvars(platform: Platform, layer_dir: Path, **options: Any) -> Path:
    """Write `tierzero.auto.tfvars.json` (sorted keys, so the same spec gives the same bytes)."""
    path = Path(layer_dir) / TFVARS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, tfvars_for(platform, **options))
    return path
