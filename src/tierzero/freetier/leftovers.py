"""Storage an instance leaves in the tenancy when it goes: billable, and outside the state afterwards.

Facts, from oracle/terraform-provider-oci v8.28.0 (`internal/service/core/core_instance_resource.go`) and the
OCI Go SDK it vendors (`core/terminate_instance_request_response.go`, `core/update_instance_source_*_details.go`):

- Destroying `oci_core_instance` calls TerminateInstance with `preserve_boot_volume` and
  `preserve_data_volumes_created_at_launch` only when the state sets them (`GetOkExists`). The API defaults are
  "The default value is `false`" for preserveBootVolume and "The default value is `true`" for
  preserveDataVolumesCreatedAtLaunch: volumes made by `launch_volume_attachments` outlive the instance unless
  told otherwise, and a boot volume does when `preserve_boot_volume = true`.
- The values used are the ones in state (`before`), so a replace keeps the old object's setting.
- Replacing the boot volume in place (an update of `source_details.source_id`) keeps the old one when
  `source_details.is_preserve_boot_volume_enabled = true`.

Every preserved volume counts toward the Always Free block-storage total (200 GB, boot volumes included)
and is billed per GB-month beyond it.
"""

from __future__ import annotations

from typing import Any

from tierzero.freetier.plan_reader import Held, first_block
from tierzero.freetier.plan_values import amount

INSTANCE = "oci_core_instance"
DEFAULT_BOOT_VOLUME_GB = 50.0
BOOT_VOLUME = "oci_core_boot_volume"
VOLUME = "oci_core_volume"
LAUNCH_VOLUME_SIZE_PATHS = (
    "launch_volume_attachments.*.launch_create_volume_details.*.size_in_gbs",
    "launch_volume_attachments.*.launch_create_volume_details.*.size_in_mbs",
)


def boot_volume_gb(address: str, values: dict[str, Any]) -> float:
    size = amount(first_block(values, "source_details").get("boot_volume_size_in_gbs"), address,
                  "source_details.boot_volume_size_in_gbs", DEFAULT_BOOT_VOLUME_GB)
    return DEFAULT_BOOT_VOLUME_GB if size is None else size


def launch_volumes_gb(address: str, values: dict[str, Any]) -> list[float]:
    """Sizes (GB) of the block volumes an instance creates at launch (`launch_volume_attachments`)."""
    sizes = []
    attachments = values.get("launch_volume_attachments")
    for i, attachment in enumerate(attachments if isinstance(attachments, list) else []):
        details = first_block(attachment if isinstance(attachment, dict) else {}, "launch_create_volume_details")
        where = f"launch_volume_attachments.{i}.launch_create_volume_details"
        gb = amount(details.get("size_in_gbs"), address, f"{where}.size_in_gbs")
        mb = amount(details.get("size_in_mbs"), address, f"{where}.size_in_mbs")
        if gb is not None or mb is not None:
            sizes.append(gb if gb is not None else (mb or 0.0) / 1024)
    return sizes


def _flag(values: dict[str, Any], name: str, default: bool) -> bool:
    value = values.get(name)
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return default if value is None else bool(value)


def _left_on_terminate(held: Held, before: dict[str, Any], why: str) -> list[Held]:
    left = []
    if _flag(before, "preserve_boot_volume", False):
        size = boot_volume_gb(held.address, before)
        left.append(Held(f"{held.address} (preserved boot volume)", BOOT_VOLUME, {"size_in_gbs": size}, f"left by {why}"))
    if _flag(before, "preserve_data_volumes_created_at_launch", True):
        for i, size in enumerate(launch_volumes_gb(held.address, before)):
            left.append(Held(f"{held.address} (launch volume {i}, preserved)", VOLUME, {"size_in_gbs": size}, f"left by {why}"))
    return left


def _left_on_boot_volume_swap(held: Held, before: dict[str, Any]) -> list[Held]:
    old, new = first_block(before, "source_details"), first_block(held.values, "source_details")
    if not _flag(new, "is_preserve_boot_volume_enabled", False) or old.get("source_id") == new.get("source_id"):
        return []
    size = boot_volume_gb(held.address, before)
    return [Held(f"{held.address} (replaced boot volume, preserved)", BOOT_VOLUME, {"size_in_gbs": size}, "left by update")]


def leftovers(holdings: list[Held]) -> list[Held]:
    """Volumes that deleting, replacing or re-imaging an instance leaves behind, held after the apply.

    A create-before-destroy replacement is not here: its old copy is already held until the end, with its volumes."""
    left: list[Held] = []
    for held in holdings:
        if held.type != INSTANCE or not held.before:
            continue
        if held.action in ("delete", "replace"):
            left += _left_on_terminate(held, held.before, held.action)
        elif held.action == "update":
            left += _left_on_boot_volume_swap(held, held.before)
    return left
