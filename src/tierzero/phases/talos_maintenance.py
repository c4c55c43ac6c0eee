"""A Talos node in maintenance mode (booted without reading its machine config) gets it over the
Talos API, without a client certificate."""

from __future__ import annotations

from tierzero.adapters.protocols import TalosMaintenanceApi
from tierzero.adapters.talos_errors import TalosNotImplemented, TalosUnavailable
from tierzero.engine.step import StepContext
from tierzero.errors import OperationError


async def apply_in_maintenance(ctx: StepContext, maint: TalosMaintenanceApi, node: str, ip: str, config: bytes) -> bool:
    """Apply `config` to the node `node` at `ip` through `maint` (closed here). True if the node took
    it; False if no node answers there in maintenance mode (not up yet, or configured already: the
    handshake without a client certificate fails). A refusal (the config rejected, ...) raises
    OperationError: waiting will not change it.

    Maintenance mode is proven by the node accepting ApplyConfiguration, not by Version: Talos
    <= 1.12 refuses Version to a caller without a client certificate ("API is not implemented in
    maintenance mode", siderolabs/talos v1.12.11 internal/app/maintenance/server.go
    assertAdminRole), 1.13 and later answer it (v1.13.9 machined.go rules: Reader)."""
    try:
        try:
            release = f"Talos {(await maint.version(timeout=5.0)).tag}"
        except TalosNotImplemented:
            release = "Talos 1.12 or older, which does not tell its version in maintenance mode"
        ctx.log(f"{node} answers without a client certificate ({release}): applying its machine config in maintenance mode")
        await maint.apply_configuration(config, "auto")
        return True
    except TalosUnavailable:
        return False
    except OperationError as err:
        raise OperationError(f"{node} ({ip}) refused its machine config in maintenance mode: {err.message}", hint=err.hint) from err
    finally:
        await maint.close()
