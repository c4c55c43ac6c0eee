"""The built-in blueprints: the starter specs in `tierzero/spec/blueprints/NAME.yaml` (package
data). A blueprint is data: adding a file there adds it to `tierzero init --blueprint` and to the
conformance suite (tests/test_blueprints.py), which checks, renders and deploys every one."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable


def _directory() -> Traversable:
    return resources.files("tierzero").joinpath("spec", "blueprints")  # not tierzero.spec: that loads pydantic


def blueprint_names() -> list[str]:
    """The built-in blueprints by name, sorted."""
    return sorted(p.name.removesuffix(".yaml") for p in _directory().iterdir() if p.name.endswith(".yaml"))


def blueprint_text(name: str) -> str:
    """The commented YAML of a built-in blueprint; KeyError for an unknown name."""
    if name not in blueprint_names():
        raise KeyError(name)
    return _directory().joinpath(f"{name}.yaml").read_text()
