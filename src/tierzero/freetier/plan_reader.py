"""Read `tofu show -json plan.out` (format_version 1.x) into what the tenancy holds once the plan is applied.

Holdings = prior state + creates + updates − deletes. During a create-before-destroy replace
(actions ["create", "delete"]) the old and the new object exist together, so both are held.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tierzero.errors import InputError

# Plan actions, as tofu writes them, and the label a row shows.
ACTION_LABELS: dict[tuple[str, ...], str] = {
    ("no-op",): "no-op",
    ("create",): "create",
    ("update",): "update",
    ("delete",): "delete",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace (create first)",
    ("read",): "read",
    ("forget",): "forget",
}
EXISTING = "existing"  # in prior state, with no resource change listed
OLD_COPY_SUFFIX = " (old copy)"


@dataclass(frozen=True)
class Held:
    """One managed object and why it is (or stops being) in the tenancy."""

    address: str
    type: str
    values: dict[str, Any]
    action: str
    held: bool = True  # False for a deleted object, kept only so the report can show it
    before: dict[str, Any] | None = None  # the object a replace or delete removes
    deposed: bool = False  # an old copy left behind by an interrupted create-before-destroy
    unknown: Any = None  # the change's `after_unknown`: true where a value is known only after apply


def _managed_prior(module: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    stack = [module] if module else []
    while stack:
        current = stack.pop()
        for resource in current.get("resources") or ():
            if resource.get("mode", "managed") == "managed":
                yield resource
        children = current.get("child_modules") or ()
        stack.extend(reversed(list(children)))


def _check_format(plan: Any) -> None:
    if not isinstance(plan, dict):
        raise InputError("the plan JSON is not an object", hint="produce it with: tofu show -json plan.out > plan.json")
    version = plan.get("format_version")
    if not isinstance(version, str) or version.split(".")[0] != "1":
        raise InputError(
            f"unsupported plan format_version {version!r}; tierzero reads format 1.x",
            hint="produce it with: tofu show -json plan.out > plan.json",
        )
    changes = plan.get("resource_changes", [])
    if not isinstance(changes, list):
        raise InputError("resource_changes in the plan JSON is not a list")


def _values(obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else {}


def read_holdings(plan: dict[str, Any]) -> list[Held]:
    """Objects held after apply (held=True, prior ones first) followed by deleted ones (held=False)."""
    _check_format(plan)
    holdings: dict[str, Held] = {}
    prior_root = _values(_values(_values(plan.get("prior_state")).get("values")).get("root_module"))
    for resource in _managed_prior(prior_root):
        address = resource.get("address")
        if isinstance(address, str):
            deposed = resource.get("deposed_key")
            key = _deposed_address(address, deposed)
            holdings[key] = Held(key, str(resource.get("type", "")), _values(resource.get("values")), EXISTING, deposed=bool(deposed))
    deleted: list[Held] = []
    for position, rc in enumerate(plan.get("resource_changes") or ()):
        if isinstance(rc, dict) and rc.get("mode", "managed") == "managed":
            _apply_change(rc, position, holdings, deleted)
    return list(holdings.values()) + deleted


def _apply_change(rc: dict[str, Any], position: int, holdings: dict[str, Held], deleted: list[Held]) -> None:
    address, rtype = rc.get("address"), str(rc.get("type", ""))
    change = _values(rc.get("change"))
    actions = change.get("actions")
    if not isinstance(address, str) or not isinstance(actions, list):
        raise InputError(f"resource_changes[{position}] has no address or no change.actions")
    key = tuple(str(a) for a in actions)
    label = ACTION_LABELS.get(key)
    if label is None:
        raise InputError(f"{address}: unknown plan actions {list(key)}")
    if key == ("read",):
        return
    before, after = _values(change.get("before")), _values(change.get("after"))
    unknown = change.get("after_unknown") or None
    moved_from = rc.get("previous_address")
    if isinstance(moved_from, str) and moved_from != address and moved_from in holdings:
        # A `moved` block: the prior object now lives at the new address; count it once.
        holdings[address] = holdings.pop(moved_from)
    deposed = rc.get("deposed")
    if deposed:
        # A deposed object has its own identity: its change must not touch the current object at the address.
        address = _deposed_address(address, deposed)
    prior = holdings.get(address)
    previous = before or (prior.values if prior else {})
    if key == ("delete",):
        holdings.pop(address, None)
        deleted.append(Held(address, rtype, previous, label, held=False, before=previous, deposed=bool(deposed)))
    elif deposed or key in (("no-op",), ("forget",)):
        # A forgotten object leaves the state but not the tenancy: it still counts.
        holdings[address] = Held(address, rtype, after or previous, label, deposed=bool(deposed))
    elif key == ("create", "delete"):
        holdings[address] = Held(address, rtype, after, label, before=previous, unknown=unknown)
        old_address = address + OLD_COPY_SUFFIX
        holdings[old_address] = Held(old_address, rtype, previous, "old copy until destroyed")
    else:  # create, update, delete-then-create: the new object takes the old one's place
        holdings[address] = Held(address, rtype, after, label, before=previous if key != ("create",) else None, unknown=unknown)


def _deposed_address(address: str, deposed: Any) -> str:
    return f"{address} (deposed {deposed})" if deposed else address


def first_block(values: dict[str, Any], name: str) -> dict[str, Any]:
    """A nested block: plans write it as a list of objects (a one-element list for a single block)."""
    block = values.get(name)
    if isinstance(block, list):
        block = block[0] if block else None
    return block if isinstance(block, dict) else {}
