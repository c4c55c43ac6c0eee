"""scripts/check_resolution.py catches resolver backtracking in real pip output (offline: a local
wheel directory where the newest `alpha` needs a `beta` the request excludes)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_resolution.py"


def _module():
    spec = importlib.util.spec_from_file_location("check_resolution", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wheel(where: Path, name: str, version: str, requires: list[str]) -> None:
    info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(where / f"{name}-{version}-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{info}/METADATA", metadata)
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")


def _dry_run(wheels: Path, *requirements: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-index", "--find-links", str(wheels),
         "--disable-pip-version-check", *requirements],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def test_backtracking_in_real_pip_output_is_named(tmp_path: Path) -> None:
    _wheel(tmp_path, "alpha", "2.0", ["beta>=3"])
    _wheel(tmp_path, "alpha", "1.0", ["beta<3"])
    _wheel(tmp_path, "beta", "2.0", [])
    _wheel(tmp_path, "beta", "3.0", [])
    check = _module()
    assert check.backtracked(_dry_run(tmp_path, "alpha", "beta<3")) == ["alpha"]
    # Bounded the way pyproject.toml bounds python-dateutil, the same request resolves straight away.
    assert check.backtracked(_dry_run(tmp_path, "alpha<2", "beta<3")) == []
