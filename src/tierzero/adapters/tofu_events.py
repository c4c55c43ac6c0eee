"""Typed events parsed from the machine-readable (`-json`) UI stream of OpenTofu / Terraform."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# The message types this module gives fields to; any other type still becomes a TofuEvent.
KNOWN_TYPES = frozenset(
    {
        "version", "log", "diagnostic", "init_output", "planned_change", "resource_drift",
        "change_summary", "outputs", "refresh_start", "refresh_complete", "apply_start",
        "apply_progress", "apply_complete", "apply_errored", "provision_start",
        "provision_progress", "provision_complete", "provision_errored", "test_abstract",
    }
)

_KEY_IN_ADDRESS = re.compile(r'\["(?P<key>[^"]+)"\]$')


@dataclass(frozen=True)
class ChangeCounts:
    add: int = 0
    change: int = 0
    remove: int = 0
    import_: int = 0
    operation: str = ""

    @property
    def is_noop(self) -> bool:
        return self.add == 0 and self.change == 0 and self.remove == 0 and self.import_ == 0


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    summary: str
    detail: str = ""
    address: str | None = None

    @property
    def text(self) -> str:
        return f"{self.summary}: {self.detail}".strip(": ") if self.detail else self.summary

    @property
    def is_state_lock(self) -> bool:
        return "error acquiring the state lock" in self.summary.lower()

    @property
    def is_capacity(self) -> bool:
        """The error belongs to one availability domain (no room now, or the shape is not offered there) or to
        throttling, so the capacity hunt may go on; see oci_errors for the classes."""
        from tierzero.adapters.oci_errors import classify

        error = classify(self.text)
        return error is not None and error.scope != "request"


@dataclass(frozen=True)
class TofuEvent:
    """One line of the JSON UI stream. `raw` keeps the full message for anything not lifted out."""

    type: str
    level: str
    message: str
    command: str = ""
    address: str | None = None
    action: str | None = None
    elapsed_seconds: float | None = None
    changes: ChangeCounts | None = None
    diagnostic: Diagnostic | None = None
    outputs: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def resource_key(self) -> str | None:
        """The for_each key of the resource the event is about: `name` in `x.y["name"]`."""
        if self.address is None:
            return None
        match = _KEY_IN_ADDRESS.search(self.address)
        return match["key"] if match else None


def parse_line(line: str, command: str = "") -> TofuEvent | None:
    """Parse one stream line; None for blank lines. Non-JSON noise becomes a `log` event."""
    line = line.strip()
    if not line:
        return None
    try:
        raw = json.loads(line)
    except json.JSONDecodeError:
        return TofuEvent(type="log", level="info", message=line, command=command, raw={"@message": line})
    if not isinstance(raw, dict):
        return TofuEvent(type="log", level="info", message=line, command=command, raw={"@message": line})
    kind = str(raw.get("type", "log"))
    return TofuEvent(
        type=kind,
        level=str(raw.get("@level", "info")),
        message=str(raw.get("@message", "")),
        command=command,
        address=_address(raw),
        action=_action(raw),
        elapsed_seconds=_elapsed(raw),
        changes=_changes(raw.get("changes")),
        diagnostic=_diagnostic(raw.get("diagnostic")),
        outputs=raw.get("outputs") if isinstance(raw.get("outputs"), dict) else None,
        raw=raw,
    )


def _address(raw: dict[str, Any]) -> str | None:
    for holder in ("hook", "change"):
        section = raw.get(holder)
        if isinstance(section, dict) and isinstance(section.get("resource"), dict):
            addr = section["resource"].get("addr")
            return str(addr) if addr is not None else None
    diagnostic = raw.get("diagnostic")
    if isinstance(diagnostic, dict) and diagnostic.get("address"):
        return str(diagnostic["address"])
    return None


def _action(raw: dict[str, Any]) -> str | None:
    for holder in ("hook", "change"):
        section = raw.get(holder)
        if isinstance(section, dict) and section.get("action"):
            return str(section["action"])
    return None


def _elapsed(raw: dict[str, Any]) -> float | None:
    hook = raw.get("hook")
    if isinstance(hook, dict) and isinstance(hook.get("elapsed_seconds"), (int, float)):
        return float(hook["elapsed_seconds"])
    return None


def _changes(value: Any) -> ChangeCounts | None:
    if not isinstance(value, dict):
        return None
    return ChangeCounts(
        add=int(value.get("add", 0)),
        change=int(value.get("change", 0)),
        remove=int(value.get("remove", 0)),
        import_=int(value.get("import", 0)),
        operation=str(value.get("operation", "")),
    )


def _diagnostic(value: Any) -> Diagnostic | None:
    if not isinstance(value, dict):
        return None
    return Diagnostic(
        severity=str(value.get("severity", "error")),
        summary=str(value.get("summary", "")),
        detail=str(value.get("detail", "")),
        address=value.get("address"),
    )


@dataclass(frozen=True)
class LockInfo:
    """Who holds the state lock, as the lock diagnostic reports it."""

    id: str = ""
    who: str = ""
    operation: str = ""
    created: str = ""
    path: str = ""


_LOCK_FIELD = re.compile(r"^\s*(ID|Path|Operation|Who|Created):\s*(.*?)\s*$", re.M)


def parse_lock_info(detail: str) -> LockInfo:
    fields = {name.lower(): value for name, value in _LOCK_FIELD.findall(detail)}
    return LockInfo(
        id=fields.get("id", ""),
        who=fields.get("who", ""),
        operation=fields.get("operation", ""),
        created=fields.get("created", ""),
        path=fields.get("path", ""),
    )


def stderr_diagnostics(stderr: str) -> list[Diagnostic]:
    """Commands without -json report errors as text blocks starting with `Error: `."""
    blocks = [b.strip(" │╷╵\n") for b in stderr.split("Error: ")[1:]]
    found = []
    for block in blocks:
        summary, _, detail = block.partition("\n")
        text = "\n".join(line.strip(" │") for line in detail.splitlines()).strip()
        found.append(Diagnostic("error", summary.strip(), text))
    return found


def hint_for(message: str, tool: str, where: str) -> str:
    text = message.lower()
    if "saved plan is stale" in text:
        return f"the state changed since the plan was made; plan again ({where})"
    if "init" in text and ("required" in text or "backend" in text or "lock file" in text):
        return f"run `{tool} init` again in the working directory ({where})"
    if "notauthenticated" in text or "401" in text:
        return f"check the ~/.oci/config profile and its API key ({where})"
    return f"see the full output ({where})"
