"""Config patches with Talos semantics: strategic merge (multi-document aware) and RFC 6902."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonpatch
import yaml

from tierzero.errors import InputError
from tierzero.render.talos.yamlio import Document, load_stream

PATCH_KEY = "$patch"
DELETE = "delete"

# Lists Talos replaces instead of appending, per document kind ("" is the v1alpha1 document).
REPLACED_PATHS: dict[str, set[tuple[str, ...]]] = {
    "": {
        ("cluster", "network", "podSubnets"),
        ("cluster", "network", "serviceSubnets"),
        ("cluster", "apiServer", "auditPolicy"),
    },
    "KubeNetworkConfig": {("podSubnets",), ("serviceSubnets",)},
    "KubeAuditPolicyConfig": {("configuration",)},
}
# Lists Talos merges element-wise when an element's key matches ("*" stands for any list index).
KEYED_LISTS: dict[str, dict[tuple[str, ...], tuple[str, ...]]] = {
    "": {
        ("machine", "network", "interfaces"): ("interface", "deviceSelector"),
        ("machine", "network", "interfaces", "*", "vlans"): ("vlanId",),
        ("cluster", "apiServer", "admissionControl"): ("name",),
    },
}


@dataclass(frozen=True)
class Patch:
    """One --config-patch: either strategic-merge documents or RFC 6902 operations."""

    source: str
    documents: tuple[Document, ...] = ()
    operations: tuple[dict[str, Any], ...] = ()

    @property
    def is_json6902(self) -> bool:
        return bool(self.operations)


def load_patch(spec: str, files: Mapping[str, bytes] | None = None) -> Patch:
    """Parse `@file` or inline YAML/JSON the way talosctl does: a list is RFC 6902, anything else strategic.
    `@file` is looked up in `files` ({the name after @: bytes}, read by the caller: the spec
    loader for a spec); InputError when it is not there."""
    source = "inline patch"
    text = spec
    if spec.startswith("@"):
        source = spec[1:]
        data = (files or {}).get(source)
        if data is None:
            raise InputError(f"cannot read patch file {source}", hint="a relative @file is read beside the spec; create it or fix the reference")
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise InputError(f"{source}: the patch file is not UTF-8 text") from None
    try:
        docs = load_stream(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: invalid YAML/JSON: {exc}") from exc
    if not docs:
        raise InputError(f"{source}: the patch is empty")
    if len(docs) == 1 and isinstance(docs[0], list):
        try:
            _ = jsonpatch.JsonPatch(docs[0])._ops  # type: ignore[attr-defined]  # building the operations validates them
        except (jsonpatch.InvalidJsonPatch, TypeError, KeyError, AttributeError) as exc:
            raise InputError(f"{source}: invalid RFC 6902 patch: {exc}") from exc
        return Patch(source=source, operations=tuple(docs[0]))
    for doc in docs:
        if not isinstance(doc, dict):
            raise InputError(f"{source}: a strategic merge patch document must be a mapping")
    return Patch(source=source, documents=tuple(docs))


def load_patches(specs: Sequence[str], files: Mapping[str, bytes] | None = None) -> list[Patch]:
    return [load_patch(spec, files) for spec in specs]


def apply_patches(docs: list[Document], patches: Sequence[Patch]) -> list[Document]:
    """Apply patches in order to a copy of `docs`."""
    result = copy.deepcopy(docs)
    for patch in patches:
        result = _apply_json6902(result, patch) if patch.is_json6902 else _apply_strategic(result, patch)
    return result


def _apply_json6902(docs: list[Document], patch: Patch) -> list[Document]:
    if len(docs) != 1:
        raise InputError(
            f"{patch.source}: JSON6902 patches are not supported for multi-document machine configuration",
            hint="write the patch as a strategic merge patch instead",
        )
    try:
        return [jsonpatch.apply_patch(docs[0], list(patch.operations))]
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise InputError(f"{patch.source}: cannot apply RFC 6902 patch: {exc}") from exc


def document_key(doc: Document) -> tuple[str, str | None]:
    """(kind, name) identifying a document; the v1alpha1 document has kind ""."""
    kind = doc.get("kind")
    if kind is None:
        return ("", None)
    name = doc.get("name")
    return (str(kind), str(name) if name is not None else None)


def _apply_strategic(docs: list[Document], patch: Patch) -> list[Document]:
    for patch_doc in patch.documents:
        key = document_key(patch_doc)
        index = next((i for i, doc in enumerate(docs) if document_key(doc) == key), None)
        if patch_doc.get(PATCH_KEY) == DELETE:
            if index is not None:
                del docs[index]
            continue
        if index is None:
            docs.append(_strip_directives(copy.deepcopy(patch_doc)))
        else:
            _merge_map(docs[index], patch_doc, key[0], ())
    return docs


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not _is_delete(v) and k != PATCH_KEY}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _is_delete(value: Any) -> bool:
    return isinstance(value, dict) and value.get(PATCH_KEY) == DELETE


def _merge_map(left: dict[str, Any], right: dict[str, Any], kind: str, path: tuple[str, ...]) -> None:
    for key, value in right.items():
        if key == PATCH_KEY:
            continue
        here = (*path, key)
        if _is_delete(value):
            left.pop(key, None)
        elif key in left and isinstance(left[key], dict) and isinstance(value, dict):
            if here in REPLACED_PATHS.get(kind, set()):
                left[key] = _strip_directives(copy.deepcopy(value))
            else:
                _merge_map(left[key], value, kind, here)
        elif key in left and isinstance(left[key], list) and isinstance(value, list):
            left[key] = _merge_list(left[key], value, kind, here)
        else:
            left[key] = _strip_directives(copy.deepcopy(value))


def _merge_list(left: list[Any], right: list[Any], kind: str, path: tuple[str, ...]) -> list[Any]:
    if path in REPLACED_PATHS.get(kind, set()):
        return _strip_directives(copy.deepcopy(right))
    keys = _keyed_list_fields(kind, path)
    merged = list(left)
    for item in right:
        match = _find_keyed(merged, item, keys) if keys else None
        if match is None:
            merged.append(_strip_directives(copy.deepcopy(item)))
        else:
            _merge_map(merged[match], item, kind, (*path, "*"))
    return merged


def _keyed_list_fields(kind: str, path: tuple[str, ...]) -> tuple[str, ...]:
    return KEYED_LISTS.get(kind, {}).get(path, ())


def _find_keyed(items: list[Any], item: Any, fields: tuple[str, ...]) -> int | None:
    if not isinstance(item, dict):
        return None
    for field_name in fields:
        if field_name not in item:
            continue
        wanted = json.dumps(item[field_name], sort_keys=True)
        for index, existing in enumerate(items):
            if isinstance(existing, dict) and json.dumps(existing.get(field_name), sort_keys=True) == wanted:
                return index
    return None
