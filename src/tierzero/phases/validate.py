"""Validation: the reference design's checks, each a row (pass / fail / skip + evidence).

Every row observes the running world through the adapters, never the deploy's own notes: OCI
(instances, Always Free, cost), the Proxmox API (quorum, Ceph), each node's Talos API over mTLS
with the cluster's talosconfig (versions, etcd members), Kubernetes (nodes, Flux / Argo CD) and
each Infisical service (ready, its machine identity's Universal Auth login). A part that has no
credentials yet (the phase that makes them never ran) is a skip that says so. Calls use short
timeouts and retry transient errors for seconds, not the deploy's minutes, so a part that is down
fails its row promptly. The step runs on every deploy (`Step.always`) and fails when any row fails."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from tierzero.adapters.connections import Endpoint, UnknownEndpoint
from tierzero.adapters.retry import Policy
from tierzero.engine.step import Step, StepContext
from tierzero.errors import OperationError, TierzeroError

if TYPE_CHECKING:
    from tierzero.spec.models import Cluster, Infisical, Node, Platform, Proxmox

CALL_TIMEOUT = 10.0  # seconds for one request to a live system
RETRY_DEADLINE = 5.0  # transient errors (5xx, resets) are retried this long at most


@dataclass(frozen=True)
class Row:
    check: str
    status: str  # pass, fail, skip
    evidence: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "evidence": self.evidence}


def _row(check: str, ok: bool, evidence: str) -> Row:
    return Row(check, "pass" if ok else "fail", evidence)


def _compartment(ctx: StepContext) -> str:
    oci = ctx.spec.oci
    if oci is None:
        raise OperationError("the spec has no cloud.oci section")
    if oci.compartment_ocid:
        return oci.compartment_ocid
    for sid, out in ctx.outputs.items():
        if sid.startswith("cloud/"):
            for key in ("compartment_ocid", "compartment_id"):
                if isinstance(out.get(key), str):
                    return str(out[key])
    return oci.tenancy_ocid


def free_tier_problems(instances: list[Any], on: dt.date | None = None) -> list[str]:
    """Why these live instances would leave Always Free, judged by the dated limits and prices in
    force on `on` (today by default): the same assessment `tierzero check` makes of a spec."""
    from tierzero.freetier.cost import assess
    from tierzero.freetier.usage import Instance, Usage

    live = [i for i in instances if i.state not in ("TERMINATED", "TERMINATING")]
    usage = Usage(instances=[Instance(i.name, i.shape, i.ocpus, i.memory_gb) for i in live])
    return [f.line() for f in assess(usage, on=on).violations]


def module_display_name(spec: Platform, instance: str) -> str:
    """The display name the OCI module gives an instance (layers/oci/compute.tf: `<name_prefix>-<key>`,
    name_prefix being metadata.name, see tierzero.render.tofu_vars)."""
    return f"{spec.metadata.name}-{instance}"


def check_oci(ctx: StepContext) -> list[Row]:
    """Instances by the names the module gives them; the free tier judged on every instance of the
    tenancy (another stack's count too); this month's cost from the usage records."""
    if ctx.spec.oci is None:
        return [Row("OCI instances", "skip", "no cloud in the spec (own hosts)"), Row("cost this month", "skip", "no cloud in the spec")]
    from tierzero.adapters.oci import Oci

    client = Oci.connect(ctx.connections, ctx.spec)
    instances = client.tenancy_instances(also=_compartment(ctx))
    live = [i for i in instances if i.state not in ("TERMINATED", "TERMINATING")]
    wanted = {module_display_name(ctx.spec, n): n for n in ctx.spec.oci.instance_names()}
    by_name = {i.name: i for i in live if i.name in wanted}
    missing = [n for n in wanted if n not in by_name]
    stopped = [f"{n} {by_name[n].state}" for n in wanted if n in by_name and by_name[n].state != "RUNNING"]
    rows = [_row("OCI instances running", bool(wanted) and not missing and not stopped,
                 "; ".join([*(f"{n} missing" for n in missing), *stopped]) or ", ".join(f"{n} RUNNING" for n in wanted) or "the spec names no instance")]
    rows.append(_free_tier_row(live, set(wanted)))
    cost, currency, records = client.usage_this_month()
    if records == 0:
        rows.append(Row("cost this month", "skip", "the usage API holds no record for this month yet (OCI reports usage hours late)"))
    else:
        rows.append(_row("cost this month", cost == 0.0, f"{cost:.2f} {currency} over {records} usage item(s)" if cost == 0.0 or cost >= 0.005
                         else f"{cost:.4f} {currency} over {records} usage item(s)"))
    return rows


def _free_tier_row(live: list[Any], mine: set[str]) -> Row:
    check = "OCI within Always Free"
    if not live:  # nothing listed cannot show the tenancy fits: the listing saw nothing at all
        return Row(check, "fail", "no instance is listed anywhere in the tenancy, so the free tier cannot be judged")
    problems = free_tier_problems(live)
    a1 = [i for i in live if i.shape == "VM.Standard.A1.Flex"]
    others = sorted(i.name for i in live if i.name not in mine)
    evidence = (f"tenancy-wide: {len(live)} instance(s), A1 {sum(i.ocpus for i in a1):g} OCPU / {sum(i.memory_gb for i in a1):g} GB, "
                f"{sum(1 for i in live if i.shape == 'VM.Standard.E2.1.Micro')} micro")
    if others:
        evidence += f"; not this stack's: {', '.join(others)}"
    return _row(check, not problems, "; ".join([*problems, evidence]) if problems else evidence)


def _short(policy: Policy) -> Policy:
    return replace(policy, cap=min(policy.cap, 1.0), deadline=min(policy.deadline, RETRY_DEADLINE))


def _why(exc: BaseException) -> str:
    if isinstance(exc, TierzeroError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return f"no answer within {CALL_TIMEOUT:g}s"
    return f"{type(exc).__name__}: {exc}"


async def check_proxmox(ctx: StepContext) -> list[Row]:
    from tierzero.adapters.proxmox import connect, token_for

    if not ctx.spec.has_proxmox:
        why = "no Proxmox hosts in the spec (Talos runs directly on A1 instances)"
        return [Row("Proxmox quorum", "skip", why), Row("Ceph health", "skip", why)]
    px = ctx.spec.proxmox
    ceph_off = Row("Ceph health", "skip", "Ceph is disabled in the spec")
    try:
        await asyncio.to_thread(token_for, ctx)  # a sops process: off the loop, where the Talos check runs beside
    except OperationError as exc:
        why = f"{exc.message}: the hypervisors phase has not run"
        return [Row("Proxmox quorum", "skip", why), Row("Ceph health", "skip", why) if px.ceph.enabled else ceph_off]
    errors = []
    for node in px.nodes:  # the first node whose API answers: one host down must not hide the others
        try:
            client = connect(ctx.connections, node.name, *await asyncio.to_thread(token_for, ctx, node.name), timeout=CALL_TIMEOUT)
            api = replace(client, policy=_short(client.policy))
            status = await api.cluster_status()
            break
        except (TierzeroError, UnknownEndpoint) as exc:
            errors.append(f"{node.name}: {_why(exc)}")
    else:
        down = Row("Proxmox quorum", "fail", "no node's API answers: " + "; ".join(errors))
        return [down, Row("Ceph health", "fail", "no node's API answers") if px.ceph.enabled else ceph_off]
    return [_quorum_row(px, status), await _ceph_row(api) if px.ceph.enabled else ceph_off]


def _quorum_row(px: Proxmox, status: list[dict[str, Any]]) -> Row:
    cluster = next((i for i in status if i.get("type") == "cluster"), None)
    quorate = bool(cluster.get("quorate")) if cluster else True  # a single node without a cluster
    members = {str(i.get("name")): bool(i.get("online")) for i in status if i.get("type") == "node"}
    want = [n.name for n in px.nodes]
    online = [n for n in want if members.get(n)]
    offline = [n for n in want if n in members and not members[n]]
    missing = [n for n in want if n not in members]
    parts = [f"cluster {cluster.get('name', '?') if cluster else '(none)'} {'quorate' if quorate else 'NOT quorate'}",
             f"online members: {', '.join(online) or 'none'}"]
    parts += [f"{label}: {', '.join(names)}" for label, names in (("offline", offline), ("not members", missing)) if names]
    return _row("Proxmox quorum", quorate and not offline and not missing, "; ".join(parts))


async def _ceph_row(api: Any) -> Row:
    try:
        data = await api.call("get", "cluster/ceph/status")
    except TierzeroError as exc:
        return Row("Ceph health", "fail", exc.message)
    health = data.get("health") or {}
    status = str(health.get("status", "UNKNOWN"))
    checks = [f"{code}: {c.get('summary', {}).get('message', '')}" for code, c in (health.get("checks") or {}).items()]
    osds = data.get("osdmap") or {}
    if "num_osds" in osds:
        checks.append(f"{osds.get('num_up_osds', 0)}/{osds['num_osds']} OSDs up")
    return _row("Ceph health", status == "HEALTH_OK", "; ".join([status, *checks]))


async def check_talos(ctx: StepContext) -> list[Row]:
    results = await asyncio.gather(*(_talos_cluster(ctx, c) for c in ctx.spec.clusters))
    return [row for rows in results for row in rows]


async def _talos_call(ctx: StepContext, cluster: Cluster, node: Node, call: str) -> Any:
    from tierzero.phases.platform import node_ip, talos_client

    client = talos_client(ctx, cluster, node_ip(node))
    try:
        return await asyncio.wait_for(getattr(client, call)(), CALL_TIMEOUT)
    finally:
        await client.close()


async def _talos_cluster(ctx: StepContext, cluster: Cluster) -> list[Row]:
    from tierzero.render.talos_spec import secret_name

    nodes_check, etcd_check = f"{cluster.name}: Talos nodes", f"{cluster.name}: etcd members"
    # Without them the talosconfig hook would generate a new cluster PKI: never from a check.
    # Read off the loop (a sops process; the Proxmox check runs on it beside): the node calls below find it in the store's cache.
    stored = await asyncio.to_thread(lambda: any(ctx.secrets.get(secret_name(cluster, what)) for what in ("talosconfig", "secrets.yaml")))
    if not stored:
        why = f"no Talos secrets for {cluster.name} yet (`tierzero plan` or the platform phase makes them)"
        return [Row(nodes_check, "skip", why), Row(etcd_check, "skip", why)]
    nodes = [n for _, n in cluster.nodes()]
    first = cluster.control_planes[0]
    *versions, members = await asyncio.gather(*(_talos_call(ctx, cluster, n, "version") for n in nodes),
                                              _talos_call(ctx, cluster, first, "etcd_members"), return_exceptions=True)
    up = [f"{n.name} {v.tag}" for n, v in zip(nodes, versions) if not isinstance(v, BaseException)]
    down = [f"{n.name} ({_why(v)})" for n, v in zip(nodes, versions) if isinstance(v, BaseException)]
    # The version each node reports is the image it booted; it must be the spec's release.
    other = [f"{n.name} runs {v.tag}" for n, v in zip(nodes, versions) if not isinstance(v, BaseException) and v.tag != cluster.talos_version]
    evidence = f"{len(up)}/{len(nodes)} answer over mTLS: {', '.join(up) or 'none'}" + (f"; not answering: {', '.join(down)}" if down else "")
    if other:
        evidence += f"; not the spec's {cluster.talos_version}: {', '.join(other)}"
    rows = [_row(nodes_check, not down and not other, evidence)]
    cps = len(cluster.control_planes)
    if isinstance(members, BaseException):
        rows.append(Row(etcd_check, "fail", f"{first.name} cannot list etcd members: {_why(members)}"))
    else:
        names = ", ".join(sorted(m.hostname for m in members))
        rows.append(_row(etcd_check, len(members) == cps, f"{len(members)} members listed by {first.name} ({names}), {cps} control planes"))
    return rows


def _infisical_endpoint(ctx: StepContext, svc: Infisical) -> Endpoint:
    from urllib.parse import urlsplit

    from tierzero.render.services.infisical import API_PORT

    url = (ctx.outputs.get(f"services/stack/{svc.name}") or {}).get("url")
    default: Endpoint | None = None
    if isinstance(url, str):
        parts = urlsplit(url)
        default = Endpoint(parts.hostname or "", parts.port or 80, scheme=parts.scheme, verify=False)
    else:
        default = Endpoint(str(svc.ip.address), API_PORT, scheme="http", verify=False) if svc.ip.address else None
    return ctx.connections.endpoint("infisical", svc.name, default=default)


def check_services(ctx: StepContext) -> list[Row]:
    from concurrent.futures import ThreadPoolExecutor

    from tierzero.adapters.infisical import InfisicalClient
    from tierzero.phases.services import automation_identity_name
    from tierzero.render.services.infisical import secret_name

    rows: list[Row] = []
    for svc in ctx.spec.infisical_services():
        ready_check, login_check = f"{svc.name}: Infisical ready", f"{svc.name}: machine identity logs in"
        with ThreadPoolExecutor(2) as pool:  # two sops processes side by side
            client_id, client_secret = pool.map(ctx.secrets.get, [secret_name(svc.name, k) for k in ("client-id", "client-secret")])
        if not client_id or not client_secret:
            why = f"Infisical {svc.name} was never bootstrapped: no machine identity credentials are stored (services phase)"
            rows += [Row(ready_check, "skip", why), Row(login_check, "skip", why)]
            continue
        try:
            endpoint = _infisical_endpoint(ctx, svc)
        except UnknownEndpoint as exc:
            rows += [Row(ready_check, "fail", str(exc)), Row(login_check, "fail", str(exc))]
            continue
        client = InfisicalClient(endpoint, timeout=CALL_TIMEOUT)
        identity = automation_identity_name(svc)
        try:
            ready = client.ready()
            rows.append(_row(ready_check, ready, f"{endpoint.url}/api/status {'answers' if ready else 'does not answer'} 200"))
            try:  # the evidence carries neither the client id nor the secret nor the token
                token = client.universal_auth_login(client_id, client_secret)
                rows.append(Row(login_check, "pass", f"{identity} logs in with Universal Auth (token valid {token.get('expiresIn', '?')} s)"))
            except TierzeroError as exc:
                rows.append(Row(login_check, "fail", f"{identity}: {exc.message}"))
        finally:
            client.close()
    return rows


def check_kubernetes(ctx: StepContext) -> list[Row]:
    from tierzero.adapters.kubernetes import Kube

    rows = []
    for cluster in ctx.spec.clusters:
        kube = Kube.connect(ctx.connections, cluster.name)
        nodes = kube.nodes()
        want = {n.name for _, n in cluster.nodes()}
        ready = {n.name for n in nodes if n.ready}
        rows.append(_row(f"{cluster.name}: Kubernetes nodes Ready", want <= ready,
                         f"{len(ready & want)}/{len(want)} Ready" + (f"; not Ready: {', '.join(sorted(want - ready))}" if want - ready else "")))
        if cluster.gitops is None:
            rows.append(Row(f"{cluster.name}: Flux reconciled", "skip", "no gitops in the spec"))
            continue
        if cluster.gitops.engine == "argocd":
            apps = kube.list("argoproj.io/v1alpha1", "Application", "argocd")
            bad = [a["metadata"]["name"] for a in apps if a.get("status", {}).get("health", {}).get("status") != "Healthy"
                   or a.get("status", {}).get("sync", {}).get("status") != "Synced"]
            rows.append(_row(f"{cluster.name}: Argo CD synced", bool(apps) and not bad,
                             f"{len(apps) - len(bad)}/{len(apps)} Synced and Healthy" + (f"; not yet: {', '.join(bad)}" if bad else "")))
            continue
        rows.append(_flux_row(ctx, kube, cluster))
    return rows


def _flux_row(ctx: StepContext, kube: Any, cluster: Any) -> Row:
    """Every Kustomization and HelmRelease by name, judged against the commit really at the head
    of the branch (read from the remote now, not from the deploy's notes)."""
    from tierzero.phases.flux_status import flux_report
    from tierzero.phases.gitops_push import open_remote

    check = f"{cluster.name}: Flux reconciled"
    try:
        head = open_remote(ctx, cluster).head()
    except TierzeroError as exc:
        return Row(check, "fail", f"cannot read the head of {cluster.gitops.branch} from {cluster.gitops.repo_url}: {exc.message}")
    if head is None:
        return Row(check, "fail", f"{cluster.gitops.repo_url} has no branch {cluster.gitops.branch}: nothing was pushed")
    report = flux_report(kube, f"{cluster.gitops.branch}@sha1:{head}")
    return _row(check, report.ok, report.evidence())


Check = Callable[[StepContext], "list[Row] | Awaitable[list[Row]]"]
CHECKS: tuple[Check, ...] = (check_oci, check_proxmox, check_talos, check_kubernetes, check_services)


async def run_checks(ctx: StepContext) -> list[Row]:
    """Every check at once: async ones (Proxmox, Talos) on this loop, blocking ones in threads."""

    async def one(check: Check) -> list[Row]:
        name = check.__name__.removeprefix("check_")
        try:
            if inspect.iscoroutinefunction(check):
                return await check(ctx)  # type: ignore[no-any-return]
            return await asyncio.to_thread(check, ctx)  # type: ignore[arg-type]
        except (TierzeroError, UnknownEndpoint, OSError, TimeoutError) as exc:  # what the world answered: a failed row
            return [Row(name, "fail", exc.message if isinstance(exc, TierzeroError) else f"{type(exc).__name__}: {exc}")]
        except Exception as exc:  # noqa: BLE001 - a bug in the check itself: still a failed row, told as ours
            return [Row(name, "fail", f"internal error in the check ({type(exc).__name__}: {exc}); "
                                      "re-run with --debug and report it")]

    results = await asyncio.gather(*(one(c) for c in CHECKS))
    return [row for rows in results for row in rows]


async def _validate(ctx: StepContext, inputs: None) -> Mapping[str, Any]:
    rows = await run_checks(ctx)
    failed = [r for r in rows if r.status == "fail"]
    for row in rows:
        ctx.log(f"{row.status:4} {row.check}: {row.evidence}")
    if failed:
        raise OperationError("validation failed: " + "; ".join(f"{r.check} ({r.evidence})" for r in failed),
                             hint="fix the failing parts, then run `tierzero validate` (or deploy again)")
    return {"rows": [r.as_dict() for r in rows]}


def steps(spec: Platform) -> list[Step]:
    return [Step("validate/checks", "validate", "check the platform end to end", _validate, always=True)]
