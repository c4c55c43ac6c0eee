"""Clusters that push to one branch of one repository must each own a sub-directory of it."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from tierzero.spec import Platform
from tierzero.spec.semantic import check

BLUEPRINT = Path(__file__).resolve().parents[2] / "src/tierzero/spec/blueprints/proxmox.yaml"


def two_clusters(first_url: str, second_url: str, first_path: str = "", second_path: str = "") -> list[str]:
    data = yaml.safe_load(BLUEPRINT.read_text())
    other = copy.deepcopy(data["clusters"][0])
    other["name"], other["vip"], other["endpoint"] = "lab2", None, "https://192.168.10.90:6443"
    for node in other["control_planes"] + other["workers"]:
        node["name"], node["ip"] = node["name"].replace("lab", "lb"), "dhcp"
        node.pop("mac", None)
    data["clusters"].append(other)
    data["clusters"][0]["gitops"].update(repo_url=first_url, path=first_path)
    other["gitops"].update(repo_url=second_url, path=second_path)
    return [p.message for p in check(Platform.model_validate(data)) if p.path[:3] == ("clusters", 1, "gitops")]


def test_one_repository_written_two_ways_with_overlapping_paths_is_refused() -> None:
    found = two_clusters("git@github.com:example/fleet.git", "ssh://git@github.com/example/fleet", "clusters", "clusters/lab2")
    assert found == ["clusters lab and lab2 push to the same branch of ssh://git@github.com/example/fleet with overlapping paths "
                     "(clusters and clusters/lab2); give each its own gitops.path"]


def test_separate_paths_or_repositories_are_fine() -> None:
    assert two_clusters("git@github.com:example/fleet.git", "https://github.com/example/fleet", "lab", "lab2") == []
    assert two_clusters("git@github.com:example/fleet.git", "git@github.com:example/other.git") == []
