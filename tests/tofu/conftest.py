from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tierzero.adapters.tofu import TofuBinary, TofuRunner, find_binary
from tierzero.errors import OperationError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def tofu_binary() -> TofuBinary:
    # Deliberately a failure, not a skip: without the binary the runner is untested.
    try:
        return find_binary()
    except OperationError as exc:
        pytest.fail(f"{exc.message} ({exc.hint})")


@pytest.fixture(scope="session")
def plugin_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plugin-cache")


@pytest.fixture
def make_runner(tofu_binary: TofuBinary, plugin_cache: Path, tmp_path: Path) -> Callable[..., TofuRunner]:
    def make(fixture: str | None = None, workdir: Path | None = None, **options) -> TofuRunner:
        workdir = workdir or tmp_path / "work"
        if fixture is not None:
            shutil.copytree(FIXTURES / fixture, workdir, dirs_exist_ok=True)
        events = options.pop("events", None)
        if events is not None:
            options["on_event"] = events.append
        return TofuRunner(workdir, binary=tofu_binary, plugin_cache_dir=plugin_cache, **options)

    return make
