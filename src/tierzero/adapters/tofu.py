"""Run OpenTofu (preferred) or Terraform: init, plan, guard, apply exactly the saved plan, outputs.

Every run streams the `-json` UI into typed events for a callback, and leaves a redacted log in
`<workdir>/.tierzero-logs/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tierzero.adapters import calls
from tierzero.adapters.child import follow, output_file, tied_to_this_process
from tierzero.adapters.errors import from_subprocess
from tierzero.adapters.oci_errors import OciError, classify
from tierzero.adapters.redact import process_redactor
from tierzero.adapters.tofu_events import (
    ChangeCounts,
    Diagnostic,
    LockInfo,
    TofuEvent,
    hint_for,
    parse_line,
    parse_lock_info,
    stderr_diagnostics,
)
from tierzero.adapters.tofu_state import StateKey, adopt_sealed, mark_migrated, native_encryption, native_environment, unsealed
from tierzero.adapters.tofu_workspace import S3StateBackend, write_backend
from tierzero.errors import OperationError
from tierzero.workspace.layout import write_private

MIN_VERSION = (1, 10, 0)  # S3 lockfile locking in both tools
LOG_DIR = ".tierzero-logs"

Guard = Callable[[dict[str, Any]], object]  # raises to refuse the plan; what it returns is not used
EventSink = Callable[[Any], None]


class StateLockError(OperationError):
    """Another run holds the state lock."""

    def __init__(self, message: str, *, hint: str, lock: LockInfo) -> None:
        super().__init__(message, hint=hint)
        self.lock = lock


class CapacityError(OperationError):
    """Creates failed for reasons that belong to an availability domain (no host capacity there, or the AD does
    not offer the shape) or to throttling; the hunt may go on. `errors` gives each failed address its class."""

    def __init__(self, message: str, *, hint: str, addresses: Sequence[str], errors: Mapping[str, OciError] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.addresses = list(addresses)
        self.errors = dict(errors or {})


@dataclass(frozen=True)
class TofuBinary:
    path: str
    flavor: str  # "tofu" | "terraform"
    version: tuple[int, int, int]


def _parse_version(text: str) -> tuple[int, int, int]:
    core = text.lstrip("v").split("-")[0].split("+")[0]
    parts = [int(p) for p in core.split(".")[:3]]
    return (parts + [0, 0, 0])[0], (parts + [0, 0, 0])[1], (parts + [0, 0, 0])[2]


def find_binary(min_version: tuple[int, int, int] = MIN_VERSION, *, path: str | None = None) -> TofuBinary:
    """`tofu` if present and recent enough, else `terraform`; OperationError when neither is usable."""
    seen: list[str] = []
    for flavor in ("tofu", "terraform"):
        exe = shutil.which(flavor, path=path)
        if exe is None:
            continue
        calls.sent("tofu", exe, f"{flavor} version -json")
        command, options = tied_to_this_process([exe, "version", "-json"])
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=60, **options)
        except (OSError, subprocess.TimeoutExpired) as exc:  # a broken or hung binary: named, not a traceback
            raise from_subprocess(exc, flavor, f"{flavor} version -json") from exc
        try:
            info = json.loads(proc.stdout)
            version = _parse_version(str(info.get("terraform_version") or info.get("version")))
        except (ValueError, TypeError, AttributeError):
            seen.append(f"{exe} (unreadable `version -json`)")
            continue
        if version >= min_version:
            return TofuBinary(exe, flavor, version)
        seen.append(f"{exe} {'.'.join(map(str, version))}")
    wanted = ".".join(map(str, min_version))
    found = f"; found only {', '.join(seen)}" if seen else ""
    raise OperationError(
        f"neither tofu nor terraform >= {wanted} is on PATH{found}",
        hint=f"install OpenTofu >= {wanted} (https://opentofu.org/docs/intro/install/) and put `tofu` on PATH",
    )


@dataclass(frozen=True)
class RunResult:
    command: str
    returncode: int
    events: list[TofuEvent]
    stdout: str
    stderr: str
    log_path: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def errors(self) -> list[Diagnostic]:
        return [e.diagnostic for e in self.events if e.diagnostic and e.diagnostic.severity == "error"]

    @property
    def change_summary(self) -> ChangeCounts | None:
        summaries = [e.changes for e in self.events if e.type == "change_summary" and e.changes]
        return summaries[-1] if summaries else None

    @property
    def errored_addresses(self) -> list[str]:
        found = [e.address for e in self.events if e.type == "apply_errored" and e.address]
        found += [d.address for d in self.errors if d.address]
        return list(dict.fromkeys(found))


@dataclass(frozen=True)
class PlanResult:
    plan_file: Path
    plan: dict[str, Any]  # `show -json` of the saved plan
    changes: ChangeCounts
    digest: str  # sha256 of the plan file the guard saw
    run: RunResult = field(repr=False)

    @property
    def resource_changes(self) -> list[dict[str, Any]]:
        return list(self.plan.get("resource_changes") or [])

    def deletions(self) -> list[dict[str, Any]]:
        """Changes that delete a resource, replacements included."""
        return [rc for rc in self.resource_changes if "delete" in (rc.get("change") or {}).get("actions", [])]


class TofuRunner:
    def __init__(
        self,
        workdir: Path,
        *,
        binary: TofuBinary | None = None,
        on_event: EventSink | None = None,
        env: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        plugin_cache_dir: Path | None = None,
        lock_timeout: str = "0s",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        state_key: StateKey | None = None,
    ) -> None:
        """`state_key`: keep state and saved plans encrypted at rest (OpenTofu's own encryption, else
        age-sealed local files: see tierzero.adapters.tofu_state). Without it they are written as the tool does."""
        self.workdir = Path(workdir)
        self.binary = binary or find_binary()
        self.on_event = on_event
        self.env = dict(env or {})
        self.redactor = process_redactor()  # one process-wide redactor: what it learns masks every log
        for secret in secrets:
            self.redactor.add(secret)
        self.plugin_cache_dir = plugin_cache_dir or self.workdir / ".plugin-cache"
        self.lock_timeout = lock_timeout
        self._clock = clock
        self.state_key = state_key
        self._unsealed_depth = 0
        if state_key is not None:
            self.redactor.add(state_key.passphrase)

    @property
    def encrypts_natively(self) -> bool:
        """OpenTofu >= 1.7 with a state key: the tool itself encrypts state and plans."""
        return self.state_key is not None and native_encryption(self.binary.flavor, self.binary.version)

    @property
    def name(self) -> str:
        return self.binary.flavor

    def emit(self, event: Any) -> None:
        if self.on_event is not None:
            self.on_event(event)

    # -- commands ---------------------------------------------------------------------------

    def init(self, *, backend: S3StateBackend | None = None, upgrade: bool = False) -> RunResult:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = write_backend(self.workdir, backend)
        if backend is not None:
            self.env.update(backend.env())
            for secret in backend.secrets():
                self.redactor.add(secret)
        if upgrade:
            args.append("-upgrade")
        return self._checked("init", ["init", "-input=false", "-no-color", "-json", *args])

    def plan(self, *, destroy: bool = False, plan_name: str = "plan.out", extra_args: Sequence[str] = ()) -> PlanResult:
        plan_file = self.workdir / plan_name
        args = ["plan", "-input=false", "-no-color", "-json", f"-lock-timeout={self.lock_timeout}", f"-out={plan_name}"]
        if destroy:
            args.append("-destroy")
        with self.plaintext():
            _discard(plan_file)
            run = self._checked("plan", [*args, *extra_args])
            digest = _sha256(plan_file)
            shown = self.show(plan_file)
        return PlanResult(plan_file, shown, run.change_summary or ChangeCounts(operation="plan"), digest, run)

    def show(self, plan_file: Path) -> dict[str, Any]:
        # Not logged: a plan's JSON carries every variable's value, sensitive ones (machine configs) included.
        run = self._checked("show", ["show", "-no-color", "-json", plan_file.name], stream=False, log_stdout=False)
        shown: dict[str, Any] = json.loads(run.stdout)
        return shown

    def state(self) -> dict[str, Any]:
        """`show -json` of the current state ({} when there is none yet)."""
        run = self._checked("show", ["show", "-no-color", "-json"], stream=False, log_stdout=False)
        state: dict[str, Any] = json.loads(run.stdout or "{}")
        return state

    def apply(self, plan: PlanResult) -> RunResult:
        """Apply exactly the saved plan the guard saw; refuses a plan file changed since. The plan file is
        removed once applied (it holds the variables' values, and a saved plan applies only once)."""
        with self.plaintext():
            if not plan.plan_file.exists() or _sha256(plan.plan_file) != plan.digest:
                raise OperationError(
                    f"the saved plan {plan.plan_file} changed after it was checked; refusing to apply it",
                    hint="another run may share this working directory; plan again",
                )
            args = ["apply", "-input=false", "-no-color", "-json", f"-lock-timeout={self.lock_timeout}", plan.plan_file.name]
            try:
                result = self._checked("apply", args)
            finally:
                _discard(plan.plan_file)
        if self.encrypts_natively:
            mark_migrated(self.workdir)
        return result

    def plan_guard_apply(self, guard: Guard, *, destroy: bool = False) -> tuple[PlanResult, RunResult]:
        """Plan, hand the plan to the guard (which raises to refuse), then apply that very plan."""
        plan = self.plan(destroy=destroy)
        guard(plan.plan)
        return plan, self.apply(plan)

    def destroy(self, guard: Guard) -> RunResult:
        """A destroy is a guarded `plan -destroy` applied like any other plan."""
        return self.plan_guard_apply(guard, destroy=True)[1]

    def output(self) -> dict[str, Any]:
        """Root module outputs as name -> value."""
        run = self._checked("output", ["output", "-no-color", "-json"], stream=False, log_stdout=False)
        return {name: item.get("value") for name, item in json.loads(run.stdout or "{}").items()}

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def plaintext(self) -> Iterator[None]:
        """State and plans readable by the tool for the duration of the block: a no-op unless the runner
        seals them itself (Terraform with a state key); nested blocks unseal and seal once."""
        outermost = self._unsealed_depth == 0 and self.state_key is not None and not self.encrypts_natively
        if self._unsealed_depth == 0 and self.encrypts_natively:
            assert self.state_key is not None
            adopt_sealed(self.workdir, self.state_key)
        self._unsealed_depth += 1
        try:
            if outermost:
                assert self.state_key is not None
                with unsealed(self.workdir, self.state_key):
                    yield
            else:
                yield
        finally:
            self._unsealed_depth -= 1

    def _environment(self) -> dict[str, str]:
        self.plugin_cache_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            CHECKPOINT_DISABLE="1",
            TF_PLUGIN_CACHE_DIR=str(self.plugin_cache_dir.resolve()),
        )
        env.update(self.env)
        if self.encrypts_natively:
            assert self.state_key is not None
            env.update(native_environment(self.workdir, self.state_key))
        return env

    def run(self, command: str, args: Sequence[str], *, stream: bool = True, log_stdout: bool = True) -> RunResult:
        """Run one command; never raises on a non-zero exit (see _checked)."""
        with self.plaintext():
            return self._run(command, args, stream=stream, log_stdout=log_stdout)

    def _run(self, command: str, args: Sequence[str], *, stream: bool, log_stdout: bool) -> RunResult:
        argv = [self.binary.path, *args]
        calls.sent("tofu", str(self.workdir), self.redactor.redact(" ".join([self.binary.flavor, *args])))
        events: list[TofuEvent] = []
        lines: list[str] = []
        with tempfile.TemporaryFile(mode="w+") as err, output_file() as (out, reader):
            # Output to a file, not a pipe: if tierzero dies, the tool's graceful stop can still print.
            launch, options = tied_to_this_process(argv, on_parent_death=signal.SIGINT)  # its graceful stop
            proc = subprocess.Popen(launch, cwd=self.workdir, env=self._environment(), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, **options)
            try:
                for line in follow(proc, reader):
                    lines.append(line)
                    if stream:
                        event = parse_line(self.redactor.redact(line), command)
                        if event is not None:
                            events.append(event)
                            self.emit(event)
            except BaseException:
                _interrupt(proc)
                raise
            returncode = proc.wait()
            err.seek(0)
            stderr = err.read()
        stdout = "".join(lines)
        log_path = self._write_log(command, argv, returncode, stdout if log_stdout else "(not logged)\n", stderr)
        return RunResult(command, returncode, events, stdout, stderr, log_path)

    def _checked(self, command: str, args: Sequence[str], *, stream: bool = True, log_stdout: bool = True) -> RunResult:
        result = self.run(command, args, stream=stream, log_stdout=log_stdout)
        if not result.ok:
            raise self._failure(result)
        return result

    def _write_log(self, command: str, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> Path:
        log_dir = self.workdir / LOG_DIR
        log_dir.mkdir(parents=True, exist_ok=True)
        stamp = self._clock().strftime("%Y%m%dT%H%M%S.%fZ")
        path = log_dir / f"{stamp}-{command}.log"
        extra_env = ", ".join(sorted(self.env)) or "-"
        body = (
            f"$ {' '.join(argv)}\n# cwd: {self.workdir}\n# extra env (names only): {extra_env}\n# exit: {returncode}\n"
            f"--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
        )
        write_private(path, self.redactor.redact(body))  # commands may echo secrets the redactor does not know
        return path

    def _failure(self, result: RunResult) -> OperationError:
        errors = result.errors or stderr_diagnostics(self.redactor.redact(result.stderr))
        where = f"log: {result.log_path}"
        lock = next((d for d in errors if d.is_state_lock), None)
        if lock is not None:
            info = parse_lock_info(lock.detail)
            holder = info.who or "another process"
            since = f" since {info.created}" if info.created else ""
            return StateLockError(
                f"the {self.name} state in {self.workdir} is locked by {holder}{since}"
                f" ({info.operation or 'unknown operation'}, lock ID {info.id or 'unknown'})",
                hint=f"wait for that run to finish; only if it is gone for good, run "
                f"`{self.name} force-unlock {info.id or '<LOCK_ID>'}` in {self.workdir} ({where})",
                lock=info,
            )
        classified = [(d, classify(d.text)) for d in errors]
        request = [(d, c) for d, c in classified if c is not None and c.scope == "request"]
        if request:  # no availability domain would take this request: stop at once
            diagnostic, error = request[0]
            return OperationError(f"{self.name} {result.command}: {error.cause}: {diagnostic.text}", hint=f"{error.fix} ({where})")
        per_ad = [(d, c) for d, c in classified if c is not None]
        if per_ad:
            first_error = per_ad[0][1]
            by_address = {d.address: c for d, c in per_ad if d.address}
            addresses = result.errored_addresses
            return CapacityError(
                f"{self.name} {result.command}: {per_ad[0][0].text}",
                hint=f"{first_error.cause}; {first_error.fix} ({where})",
                addresses=addresses,
                errors={a: by_address.get(a, first_error) for a in addresses},
            )
        first = errors[0].text if errors else f"exit status {result.returncode}"
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        return OperationError(f"{self.name} {result.command} failed: {first}{more}", hint=hint_for(first, self.name, where))


def _interrupt(proc: subprocess.Popen[str]) -> None:
    """Stop the tool the way Ctrl-C does, so it finishes writing state and releases the lock."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _discard(plan_file: Path) -> None:
    plan_file.unlink(missing_ok=True)
    plan_file.with_name(plan_file.name + ".age").unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
