"""One way for tests to make a spec: a built-in blueprint (tierzero/spec/blueprints/, package
data), changed where the test needs it. Changes are dotted paths into the spec's YAML, list
items by index: {"hypervisors.proxmox.image_storage": "images", "clusters.0.workers": [...]}."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tierzero.blueprints import blueprint_names, blueprint_text
from tierzero.spec import Platform

__all__ = ["blueprint_data", "blueprint_names", "build_spec", "spec_data", "write_project"]


def blueprint_data(name: str = "oci-free-tier") -> dict[str, Any]:
    """A built-in blueprint as plain data (a fresh copy each call)."""
    return copy.deepcopy(_parsed(name))


_CACHE: dict[str, dict[str, Any]] = {}


def _parsed(name: str) -> dict[str, Any]:
    if name not in _CACHE:
        _CACHE[name] = yaml.safe_load(blueprint_text(name))
    return _CACHE[name]


def spec_data(blueprint: str = "oci-free-tier", changes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The blueprint's data with `changes` applied (a value of None removes the key)."""
    data = blueprint_data(blueprint)
    for path, value in (changes or {}).items():
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        elif value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return data


def build_spec(blueprint: str = "oci-free-tier", changes: Mapping[str, Any] | None = None) -> Platform:
    return Platform.model_validate(spec_data(blueprint, changes))


def write_project(root: Path, blueprint: str = "oci-free-tier", changes: Mapping[str, Any] | None = None) -> Path:
    """ROOT/tierzero.yaml: the blueprint's own text (comments and all) or, with changes, its data."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "tierzero.yaml"
    path.write_text(yaml.safe_dump(spec_data(blueprint, changes), sort_keys=False) if changes else blueprint_text(blueprint))
    return path
