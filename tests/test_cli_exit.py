"""What the CLI's entry point does around every command: pydantic's plugin lookup off unless the
user set it, and Python's final garbage collections skipped over the objects the run loaded
(gc.freeze before exit), with the exit code and the atexit handlers as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap


def _run(env_value: str | None) -> dict:
    code = textwrap.dedent("""
        import atexit, gc, json, os, sys
        from tierzero.cli import main
        seen = {}
        def report():  # an atexit handler: still runs, after the command
            seen.update(frozen=gc.get_freeze_count(), plugins=os.environ.get("PYDANTIC_DISABLE_PLUGINS"))
            sys.stderr.write("REPORT " + json.dumps(seen) + "\\n")
        atexit.register(report)
        sys.argv = ["tierzero", "schema"]  # the process's own command, as the console script runs it
        main.run()
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    if env_value is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = env_value
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["title"]  # the command's output is complete
    line = next(row for row in proc.stderr.splitlines() if row.startswith("REPORT "))
    return json.loads(line.removeprefix("REPORT "))


def test_the_run_exits_with_the_loaded_objects_frozen_and_plugins_off() -> None:
    seen = _run(None)
    assert seen["frozen"] > 1000 and seen["plugins"] == "__all__"


def test_a_users_pydantic_plugin_setting_is_kept() -> None:
    assert _run("my_plugin")["plugins"] == "my_plugin"


def test_a_caller_passing_its_own_arguments_keeps_its_collector_as_it_was() -> None:
    code = textwrap.dedent("""
        import gc, json
        from tierzero.cli import main
        before = gc.get_threshold()
        try:
            main.run(["schema"])
        except SystemExit:
            pass
        print(json.dumps({"same": gc.get_threshold() == before, "frozen": gc.get_freeze_count()}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"same": True, "frozen": 0}
