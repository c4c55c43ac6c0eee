"""Apply the cloud layer from a spec in one call: stage the module (real or twin), write its
variables, init with the spec's state backend, then plan -> guard -> apply with capacity hunting.
Instances that exist keep the availability domain they run in (a hunt may have moved them;
going back would replace them), and the default guard is the free-tier one, which refuses any
A1 replacement except of an instance this very hunt failed to create.

Blocking: from asyncio code call it through `asyncio.to_thread`."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tierzero.adapters.backoff import Backoff
from tierzero.adapters.capacity import DEFAULT_BACKOFF, CapacityHunter
from tierzero.adapters.tofu import EventSink, Guard, PlanResult, TofuBinary, TofuRunner, find_binary
from tierzero.adapters.tofu_state import StateKey, native_encryption, require_protectable
from tierzero.adapters.tofu_workspace import TFVARS_FILE, stage_layer
from tierzero.freetier.guard import require_free
from tierzero.freetier.limits import Limits
from tierzero.render.tofu_vars import CloudOutputs, ad_candidates, parse_outputs, placed_ads, state_backend, tfvars_for
from tierzero.spec.models import Platform


@dataclass(frozen=True)
class CloudLayerResult:
    outputs: CloudOutputs
    plan: PlanResult
    capacity_retries: int


def prepare_cloud_layer(
    platform: Platform,
    workdir: Path,
    *,
    twin: bool = False,
    resolve_secret: Callable[[str], str] | None = None,
    binary: TofuBinary | None = None,
    on_event: EventSink | None = None,
    env: Mapping[str, str] | None = None,
    plugin_cache_dir: Path | None = None,
    state_key: StateKey | None = None,
) -> TofuRunner:
    """Stage the module into workdir and `init` it; returns the runner for further calls.

    With `state_key` the state and saved plans never rest in plaintext (tierzero.adapters.tofu_state);
    a spec whose state holds Talos machine configs is refused when that cannot be kept (Terraform with a
    remote backend)."""
    binary = binary or find_binary()
    backend = state_backend(platform, resolve_secret or _no_secrets)
    require_protectable(native=state_key is not None and native_encryption(binary.flavor, binary.version),
                        remote_backend=backend is not None, holds_secrets=bool(platform.talos_instances()), tool=binary.flavor)
    stage_layer("oci_twin" if twin else "oci", workdir)
    runner = TofuRunner(workdir, binary=binary, on_event=on_event, env=env, plugin_cache_dir=plugin_cache_dir, state_key=state_key,
                        secrets=_sensitive_values(env))
    runner.init(backend=backend)
    return runner


def apply_cloud_layer(
    platform: Platform,
    workdir: Path,
    *,
    guard: Guard | None = None,
    twin: bool = False,
    base_dir: Path = Path("."),
    ssh_public_key: str | None = None,
    limits: Limits | None = None,
    resolve_secret: Callable[[str], str] | None = None,
    on_event: EventSink | None = None,
    env: Mapping[str, str] | None = None,
    binary: TofuBinary | None = None,
    plugin_cache_dir: Path | None = None,
    hunt_deadline_seconds: float = 3600.0,
    backoff: Backoff = DEFAULT_BACKOFF,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    images: Mapping[str, str] | None = None,
    state_key: StateKey | None = None,
) -> CloudLayerResult:
    runner = prepare_cloud_layer(
        platform, workdir, twin=twin, resolve_secret=resolve_secret, binary=binary,
        on_event=on_event, env=env, plugin_cache_dir=plugin_cache_dir, state_key=state_key,
    )
    placed = placed_ads(runner.output())
    hunter: CapacityHunter = CapacityHunter(
        runner,
        variables=tfvars_for(platform, base_dir=base_dir, ssh_public_key=ssh_public_key, limits=limits, placed=placed, images=images),
        tfvars_path=workdir / TFVARS_FILE,
        ad_candidates=ad_candidates(platform),
        guard=guard or (lambda plan_json: require_free(plan_json, allow_replace=hunter.failed_addresses)),
        deadline_seconds=hunt_deadline_seconds,
        backoff=backoff,
        clock=clock,
        sleep=sleep,
        rng=rng,
    )
    plan, _ = hunter.run()
    return CloudLayerResult(parse_outputs(runner.output()), plan, hunter.attempts)


def read_cloud_outputs(workdir: Path, *, binary: TofuBinary | None = None, env: Mapping[str, str] | None = None,
                       state_key: StateKey | None = None) -> CloudOutputs:
    """The outputs of an applied cloud layer (an initialised workdir)."""
    return parse_outputs(TofuRunner(workdir, binary=binary, env=env, state_key=state_key).output())


def _sensitive_values(env: Mapping[str, str] | None) -> list[str]:
    """The values of sensitive variables passed in the environment (TF_VAR_talos_user_data: each machine
    config, base64), so no log line shows them even if the tool prints one."""
    import json

    raw = (env or {}).get("TF_VAR_talos_user_data")
    if not raw:
        return []
    return [v for v in json.loads(raw).values() if isinstance(v, str) and v]


def _no_secrets(ref: str) -> str:
    from tierzero.errors import InputError

    raise InputError(f"the state backend needs the secret {ref}, but no secret resolver was given")
