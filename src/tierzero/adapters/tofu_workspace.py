"""The working directory a tofu layer runs in: staged module files, backend files, var files."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

BACKEND_FILE = "backend.tf.json"
BACKEND_CONFIG_FILE = "backend-config.json"  # passed as -backend-config; .json makes it parse as JSON
TFVARS_FILE = "tierzero.auto.tfvars.json"
_MANIFEST = ".tierzero-module.json"
_MODULE_SUFFIXES = (".tf", ".tf.json")


def layer_module_dir(layer: str) -> Path:
    """The packaged module of a layer, e.g. `oci` or `oci_twin`."""
    path = Path(str(resources.files("tierzero.layers") / layer))
    if not path.is_dir():
        raise FileNotFoundError(f"no packaged tofu module for layer {layer!r} at {path}")
    return path


def stage_module(module_dir: Path, workdir: Path) -> list[str]:
    """Copy a module's .tf files into workdir, removing files an earlier staging copied that the
    module no longer has. State, var files and .terraform/ in workdir are left alone."""
    workdir.mkdir(parents=True, exist_ok=True)
    manifest = workdir / _MANIFEST
    previous: list[str] = json.loads(manifest.read_text()) if manifest.exists() else []
    names = sorted(
        p.name for p in module_dir.iterdir() if p.is_file() and p.name.endswith(_MODULE_SUFFIXES) and p.name != BACKEND_FILE
    )
    for stale in set(previous) - set(names):
        (workdir / stale).unlink(missing_ok=True)
    for name in names:
        shutil.copyfile(module_dir / name, workdir / name)
    manifest.write_text(json.dumps(names, indent=2) + "\n")
    return names


def json_text(data: Any) -> str:
    """Deterministic JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(data, sort_keys=True, indent=2) + "\n"


def write_json(path: Path, data: Any) -> None:
    """`json_text`, written atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json_text(data))
    tmp.replace(path)


@dataclass(frozen=True)
class S3StateBackend:
    """An S3-compatible state bucket (OCI Object Storage's S3 API, MinIO) with lockfile locking.
    Credentials travel as environment variables, never in a file."""

    bucket: str
    key: str
    region: str
    endpoint: str
    access_key: str
    secret_key: str
    max_retries: int | None = None  # None: the tool's default (5)

    def config(self) -> dict[str, Any]:
        retries = {} if self.max_retries is None else {"max_retries": self.max_retries}
        return retries | {
            "bucket": self.bucket,
            "key": self.key,
            "region": self.region,
            "endpoints": {"s3": self.endpoint},
            "use_lockfile": True,
            "use_path_style": True,
            # Not AWS: no STS, no IMDS, no region list, and OCI rejects the newer checksum headers.
            "skip_credentials_validation": True,
            "skip_region_validation": True,
            "skip_requesting_account_id": True,
            "skip_metadata_api_check": True,
            "skip_s3_checksum": True,
        }

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def secrets(self) -> list[str]:
        return [self.access_key, self.secret_key]


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
