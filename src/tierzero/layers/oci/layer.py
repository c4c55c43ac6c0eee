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
from tierzero.adapters.tofu_workspace import TFVARS_FILE, stage_layer, write_json
from tierzero.freetier.guard import require_free
from tierzero.freetier.limits import Limits
from tierzero.render.tofu_vars import CloudOutputs, ad_candidates, parse_outputs, placed_ads, state_backend, talos_user_data_env, tfvars_for
from tierzero.spec.loader import read_referenced
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
    host_image: str | None = None,
    state_key: StateKey | None = None,
    talos_user_data: Callable[[Mapping[str, str]], Mapping[str, bytes]] | None = None,
) -> CloudLayerResult:
    """`talos_user_data(addresses)`: each Talos instance's machine config, given the public address of
    each cluster's network load balancer (its certificates must name it). The load balancers are created
    first when they do not exist yet (a targeted, guarded apply), so the configs the instances boot with
    already carry the address."""
    runner = prepare_cloud_layer(
        platform, workdir, twin=twin, resolve_secret=resolve_secret, binary=binary,
        on_event=on_event, env=env, plugin_cache_dir=plugin_cache_dir, state_key=state_key,
    )
    outputs = runner.output()
    placed = placed_ads(outputs)
    variables = tfvars_for(platform, files=read_referenced(platform, base_dir), ssh_public_key=ssh_public_key, limits=limits, placed=placed,
                           images=images, host_image=host_image)
    if talos_user_data is not None and platform.talos_instances():
        addresses = _load_balancer_addresses(runner, outputs, platform, twin, variables, workdir / TFVARS_FILE,
                                             guard or (lambda plan_json: require_free(plan_json)))
        configs = talos_user_data(addresses)
        runner.env.update(talos_user_data_env(configs))
        for value in _sensitive_values(runner.env):
            runner.redactor.add(value)
    hunter: CapacityHunter = CapacityHunter(
        runner,
        variables=variables,
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


def _load_balancer_addresses(runner: TofuRunner, outputs: Mapping[str, object], platform: Platform, twin: bool,
                             variables: Mapping[str, object], tfvars: Path, guard: Guard) -> dict[str, str]:
    """Cluster -> public address of its network load balancer, creating the ones missing first: a plan
    targeted at them (and what they need: compartment, VCN, subnet), guarded, applied."""
    clusters = sorted({c.name for c, _, _ in platform.talos_instances()})
    known = _addresses(outputs)
    missing = [c for c in clusters if c not in known]
    if missing:
        resource = "terraform_data.nlb" if twin else "oci_network_load_balancer_network_load_balancer.talos"
        write_json(tfvars, variables)
        plan = runner.plan(extra_args=[f'-target={resource}["{c}"]' for c in missing])
        guard(plan.plan)
        runner.apply(plan)
        known = _addresses(runner.output())
    return {c: known[c] for c in clusters if c in known}


def _addresses(outputs: Mapping[str, object]) -> dict[str, str]:
    found = outputs.get("network_load_balancers")
    if not isinstance(found, Mapping):
        return {}
    return {str(c): str(v["ip_address"]) for c, v in found.items() if isinstance(v, Mapping) and v.get("ip_address")}


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
