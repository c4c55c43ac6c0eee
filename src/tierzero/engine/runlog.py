"""The full record of one command's run, written as it happens to `.tierzero/logs/`:

- `<run>.jsonl`: every event (see `tierzero.engine.progress` for the schema), one JSON object a
  line, `{"event", "ts", ...fields}` like `--json`, plus every `call` event (each SSH command,
  API call, RPC and tofu invocation the run sent);
- `<run>.log`: the same events as readable lines, UTC time first.

`<run>` is `<UTC time>-<command>-<target>`, e.g. `20261201T020304Z-deploy-sandbox`, so names sort
in time order (a second run within the same second gets `20261201T020304Z.2-...`). Every string passes through the process redactor before it is written (secrets
known to tierzero and token-shaped strings become ***). Files are 0600 in a 0700 directory; each
line is flushed, so a killed run leaves a readable log. Only the newest `keep` runs are kept
(default 20, or the environment variable TIERZERO_LOG_RUNS)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from tierzero.adapters.redact import process_redactor
from tierzero.engine.progress import detail_line, redact_fields, seconds
from tierzero.errors import InputError

KEEP_ENV = "TIERZERO_LOG_RUNS"
DEFAULT_KEEP = 20


def keep_from_env(environ: dict[str, str] | None = None) -> int:
    raw = (os.environ if environ is None else environ).get(KEEP_ENV, "").strip()
    if not raw:
        return DEFAULT_KEEP
    if not raw.isdigit() or int(raw) < 1:
        raise InputError(f"{KEEP_ENV}={raw!r} is not a whole number of runs of at least 1",
                         hint=f"set {KEEP_ENV} to how many runs' logs to keep, e.g. {DEFAULT_KEEP}, or unset it")
    return int(raw)


def _readable(kind: str, f: dict[str, Any]) -> str | None:
    step, phase = f.get("step", ""), f.get("phase", "")
    if kind == "run_started":
        return f"{f.get('command', 'run')} ({f.get('target')}) run {f.get('run_id')}: {f.get('steps')} steps, {f.get('selection')}"
    if kind == "step_done":
        return f"[{phase}] {step}: done in {seconds(float(f.get('elapsed', 0.0)))}"
    if kind == "step_skipped":
        return f"[{phase}] {step}: unchanged, skipped"
    if kind == "step_failed":
        return f"[{phase}] {step}: FAILED: {f.get('error')}\n  remedy: {f.get('hint')}"
    if kind == "step_cancelled":
        return f"[{phase}] {step}: stopped (another step failed)"
    if kind == "run_finished":
        return f"run {f.get('run_id')} {f.get('status')} after {seconds(float(f.get('elapsed', 0.0)))}" + (
            f": {f['error']}" if f.get("error") else "")
    if kind == "log" and f.get("level") in ("warn", "notice"):
        return f"  {step + ': ' if step else ''}{f.get('level')}: {f.get('message')}"
    if kind == "summary":
        return f"summary: {json.dumps({k: v for k, v in f.items() if k not in ('timings',)}, default=str, sort_keys=True)}"
    return detail_line(kind, f)


class RunLog:
    """An event sink writing the run's log files; `paths` says where (None until the first event)."""

    def __init__(self, logs_dir: Path, command: str, target: str, *, keep: int | None = None,
                 clock: Callable[[], float] = time.time, redact: Callable[[str], str] | None = None) -> None:
        self.logs_dir = Path(logs_dir)
        self.command, self.target = command, target
        self.keep = keep if keep is not None else keep_from_env()
        self.clock = clock
        self.redact = redact or process_redactor().redact
        self.masked = 0
        self.jsonl_path: Path | None = None
        self.log_path: Path | None = None
        self._jsonl: IO[str] | None = None
        self._log: IO[str] | None = None
        self._closed = False  # a late event (a straggling thread) must not start a second log
        self._lock = threading.Lock()

    @property
    def paths(self) -> dict[str, str]:
        return {"jsonl": str(self.jsonl_path), "log": str(self.log_path)} if self.jsonl_path else {}

    def _open(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.logs_dir, 0o700)
        stamp = datetime.fromtimestamp(self.clock(), timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        n = 1
        while True:  # a second run in the same second: 20261201T020304Z.2-deploy-real sorts after the first
            name = f"{stamp}{'' if n == 1 else f'.{n}'}-{self.command}-{self.target}"
            try:
                fd = os.open(self.logs_dir / f"{name}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                n += 1
        self.jsonl_path = self.logs_dir / f"{name}.jsonl"
        self.log_path = self.logs_dir / f"{name}.log"
        self._jsonl = os.fdopen(fd, "w", encoding="utf-8")
        self._log = os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8")
        self.prune()

    def prune(self) -> list[Path]:
        """Delete the logs of all but the newest `keep` runs (by name: names sort in time order)."""
        runs = sorted({p.name[: -len(p.suffix)] for p in self.logs_dir.iterdir() if p.suffix in (".jsonl", ".log")})
        removed = []
        for name in runs[: max(0, len(runs) - self.keep)]:
            for suffix in (".jsonl", ".log"):
                path = self.logs_dir / f"{name}{suffix}"
                if path.exists():
                    path.unlink()
                    removed.append(path)
        return removed

    def __call__(self, kind: str, **fields: Any) -> None:
        if kind == "warning":
            kind, fields = "log", {"step": "", "level": "warn", **fields}
        clean, masked = redact_fields(fields, self.redact)
        ts = self.clock()
        with self._lock:
            if self._closed:
                return
            self.masked += masked
            if self._jsonl is None:
                self._open()
            assert self._jsonl is not None and self._log is not None
            self._jsonl.write(json.dumps({"event": kind, "ts": round(ts, 3), **clean}, default=str) + "\n")
            self._jsonl.flush()
            text = _readable(kind, clean)
            if text is not None:
                when = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                body = text.replace("\n", "\n" + " " * (len(when) + 2) + "| ")
                self._log.write(f"{when}  {body}\n")
                self._log.flush()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for f in (self._jsonl, self._log):
                if f is not None:
                    f.close()
            self._jsonl = self._log = None
