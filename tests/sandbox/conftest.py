"""Shared by the world tests: the proxmox starter spec and a workspace with its keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierzero.spec import Platform
from tierzero.workspace.keys import create_age_identity, create_ssh_keypair
from tierzero.workspace.layout import Workspace
from spec_builder import build_spec



@pytest.fixture
def spec() -> Platform:
    return build_spec("proxmox")


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / ".tierzero")
    ws.root.mkdir()
    create_ssh_keypair(ws)
    create_age_identity(ws)
    return ws
