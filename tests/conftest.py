from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
ORACLES = SHARED / "oracles"


@pytest.fixture(scope="session")
def oracles() -> Path:
    if not ORACLES.is_dir():
        pytest.fail(f"shared oracles not found at {ORACLES}: check out shared/ beside the project")
    return ORACLES
