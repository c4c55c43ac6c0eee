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
