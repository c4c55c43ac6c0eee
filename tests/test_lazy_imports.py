"""Building the CLI must not import the heavy libraries: they load only inside commands."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["pydantic", "cryptography", "kubernetes", "lightkube", "httpx2", "oci", "grpc", "asyncssh", "proxmoxer", "ruamel", "jsonschema", "yaml", "rich.console", "rich.live",
         "tierzero.engine.progress", "tierzero.engine.runlog", "tierzero.adapters.calls"]


def test_cli_help_imports_no_heavy_module():
    code = (
        "import sys, json\n"
        "from tierzero.cli import main, output\n"
        "main._register()\n"
        "try:\n"
        "    output.invoke(main.app, ['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert loaded == [], f"imported at start-up: {loaded}"


def test_a_plan_loads_only_what_rendering_needs(tmp_path):
    """A re-plan of the starter spec (the first plan made the PKI) renders, seals and writes
    without the SDKs, the SSH and gRPC libraries, cryptography (the sealed index's key is HKDF
    over the standard library's HMAC, the stored talosconfig is not made again) or rich (its
    summary is plain lines); and it still wrote the plan."""
    from importlib import resources

    from tierzero.workspace import Workspace
    from tierzero.workspace.keys import init_workspace

    spec = tmp_path / "tierzero.yaml"
    spec.write_text(resources.files("tierzero.spec").joinpath("blueprints/oci-free-tier.yaml").read_text())
    init_workspace(Workspace.beside(spec))
    code = (
        "import sys, json\n"
        "from tierzero.cli import main, output\n"
        "main._register()\n"
        f"code = output.invoke(main.app, ['plan', '-f', {str(spec)!r}])\n"
        f"print(json.dumps([code, [m for m in {HEAVY + ['cryptography', 'rich']!r} if m in sys.modules]]))\n"
    )
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # the first plan
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    code, loaded = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and "wrote " in out and any(Workspace.beside(spec).render_dir.rglob("*.sops.yaml"))
    assert set(loaded) == {"pydantic", "ruamel", "yaml"}, f"a plan imported: {loaded}"
