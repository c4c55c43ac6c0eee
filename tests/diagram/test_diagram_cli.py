"""`tierzero diagram` as a user runs it: Markdown on stdout or a file, SVG to a file, and clear
refusals (an unknown format, Graphviz missing) without a traceback or a half-written file."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tierzero.render.diagram import mermaid_blocks


def tz(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tierzero", *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    demo = tmp_path_factory.mktemp("diagram") / "demo"
    assert tz("init", str(demo), "--blueprint", "proxmox").returncode == 0
    return demo / "tierzero.yaml"


def test_markdown_on_stdout_before_any_deploy(spec):
    proc = tz("diagram", "-f", str(spec))
    assert proc.returncode == 0, proc.stderr
    blocks = mermaid_blocks(proc.stdout)
    assert len(blocks) == 1 and blocks[0].startswith("flowchart LR") and "lab-cp-1" in blocks[0]
    assert "No step of the real target was measured yet" in proc.stdout


def test_svg_to_a_file(spec, tmp_path):
    out = tmp_path / "platform.svg"
    proc = tz("diagram", "-f", str(spec), "--format", "svg", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    root = ET.parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert {"vm_lab_lab_cp_1", "lxc_infisical"} <= {t.text for t in root.iter("{http://www.w3.org/2000/svg}title")}


def test_an_unknown_format_is_refused_naming_the_option(spec, tmp_path):
    out = tmp_path / "x.png"
    proc = tz("diagram", "-f", str(spec), "--format", "png", "-o", str(out))
    assert proc.returncode == 2 and "--format: unknown format 'png'" in proc.stderr and "mermaid, svg" in proc.stderr
    assert not out.exists()


def test_without_graphviz_svg_says_what_to_install(spec, tmp_path):
    out = tmp_path / "x.svg"
    proc = tz("diagram", "-f", str(spec), "--format", "svg", "-o", str(out), env={**os.environ, "PATH": str(tmp_path)})
    assert proc.returncode == 1 and "Graphviz's `dot` program is not on PATH" in proc.stderr and "apt-get install graphviz" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
