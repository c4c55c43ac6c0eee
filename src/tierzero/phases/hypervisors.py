"""Phase "hypervisors": turn the hosts into one quorate Proxmox VE cluster (with a QDevice for two
hosts), optionally with Ceph and Tailscale, and give tierzero an API token.

Every step looks before it acts: `pvecm status` before create/add, the token list before adding a
token, `ceph mon dump`/`ceph-volume lvm list`/`ceph osd pool ls` before creating Ceph daemons.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from typing import TYPE_CHECKING, Any, Mapping

from tierzero.adapters.proxmox import TOKEN_NAME, TOKEN_SECRET_NAME, TOKEN_USER
from tierzero.adapters.proxmox_privileges import ROLE_NAME, ROLE_PRIVILEGES
from tierzero.adapters.retry import RetryExhausted, Transient, retry_async
from tierzero.adapters.ssh import retry_policy
from tierzero.engine.step import Step, StepContext
from tierzero.errors import OperationError
from tierzero.phases.host_prepare import prepare_steps
from tierzero.phases.vm_network import network_steps
from tierzero.phases.hosts import host_address, host_ssh, parse_pvecm, pve_node, witness_name
from tierzero.phases.pve_api_ca import CLUSTER_CA, ca_inputs, pin_step
from tierzero.phases.pve_repos import TAILSCALE_KEYRING, apt_repositories, parse_codename, tailscale_source
from tierzero.phases.pve_prepare import (
    capabilities,
    capability_inputs,
    ensure_storage_content,
    ensure_token_access,
    storage_content_inputs,
    wanted_content,
)

if TYPE_CHECKING:
    from tierzero.spec.models import Platform, ProxmoxNode, QDevice

GiB = 1024**3
MIN_PVE = (8, 2)
MIN_IMAGE_SPACE = 4 * GiB
MEMORY_SLACK = 0.08
EMULATION_HINT = (
    "without /dev/kvm the VMs run under QEMU software emulation (TCG), several times slower; "
    "accept it with `hypervisors.proxmox.allow_software_emulation: true`, or enable virtualisation on the host"
)


def _p(name: str) -> str:
    return f"hypervisors/{name}"


def _first(spec: Platform) -> str:
    return spec.proxmox.nodes[0].name


def _guests_on(spec: Platform, node: str) -> float:
    total = sum(n.memory_gb for c in spec.clusters for _, n in c.nodes() if n.node == node)
    return total + sum(s.memory_gb for s in spec.services if s.node == node)


# ---------------------------------------------------------------------------- preflight

def _preflight(name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        ssh = host_ssh(ctx, name)
        version = (await ssh.run("pveversion", hint="is Proxmox VE installed on this host?")).stdout.strip()
        found = re.search(r"pve-manager/(\d+)\.(\d+)", version)
        # 8.2: the `import` storage content (the Talos image download) and the Sys.AccessNetwork
        # privilege (tierzero's role) exist from there on; the sandbox models 9.1.
        if not found or (int(found.group(1)), int(found.group(2))) < MIN_PVE:
            raise OperationError(f"{name} runs {version or 'no Proxmox VE'}; tierzero needs Proxmox VE {MIN_PVE[0]}.{MIN_PVE[1]} or later (9 recommended)",
                                 hint="install or upgrade Proxmox VE on the host (`apt update && apt full-upgrade`)")
        mem = (await ssh.run("free -b")).stdout
        row = next((line.split() for line in mem.splitlines() if line.startswith("Mem:")), None)
        if row is None:
            raise OperationError(f"cannot read memory of {name} from `free -b`")
        total, available = int(row[1]), int(row[-1])
        disk = int((await ssh.run("df -B1 --output=avail /var/lib/vz")).stdout.split()[-1])
        node = pve_node(ctx, name)
        need = (_guests_on(ctx.spec, name) + node.memory_reserve_gb) * GiB
        # MemTotal sits a few percent under the nominal size (kernel, firmware): allow for it.
        if total < need * (1 - MEMORY_SLACK):
            raise OperationError(
                f"{name} has {total / GiB:.1f} GiB of memory; its VMs, LXCs and the reserve need {need / GiB:.1f} GiB",
                hint="move VMs to another node, shrink memory_gb, or lower memory_reserve_gb",
            )
        if disk < MIN_IMAGE_SPACE:
            raise OperationError(f"{name} has only {disk / GiB:.1f} GiB free in /var/lib/vz", hint="free space for the Talos image (4 GiB)")
        hostname = (await ssh.run("hostname")).stdout.strip()
        if hostname != name:
            raise OperationError(f"host {name} calls itself {hostname!r}", hint="the Proxmox node name is the hostname: rename the node in the spec or the host")
        resolved = await ssh.run(["getent", "hosts", hostname], check=False)
        addr = resolved.stdout.split()[0] if resolved.ok and resolved.stdout.split() else ""
        if not addr or addr.startswith("127.") or addr == "::1":
            raise OperationError(
                f"{name}: the hostname {hostname!r} resolves to {addr or 'nothing'}, not the host's address",
                hint=f"add `<address> {hostname}.<domain> {hostname}` to /etc/hosts; corosync and pvecm need it",
            )
        kvm = (await ssh.run("test -e /dev/kvm", check=False)).ok
        if not kvm and not inputs["tcg"]:
            raise OperationError(f"{name} has no /dev/kvm", hint=EMULATION_HINT)
        if not kvm:
            ctx.log(f"{name}: no /dev/kvm, VMs will use software emulation (accepted by allow_software_emulation)", level="warn")
        return {"pve_version": f"{found.group(1)}.{found.group(2)}", "memory_total": total, "memory_available": available, "disk_available": disk, "kvm": kvm, "address": addr}

    return run


# ---------------------------------------------------------------------------- cluster

async def _status(ctx: StepContext, name: str) -> Any:
    res = await host_ssh(ctx, name).run("pvecm status", check=False)
    return parse_pvecm(res.stdout + res.stderr, res.exit_status)


async def _create(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
    name, cluster = _first(ctx.spec), ctx.spec.proxmox.cluster_name
    st = await _status(ctx, name)
    if st.in_cluster and st.name and st.name != cluster:
        raise OperationError(f"{name} already belongs to cluster {st.name!r}, not {cluster!r}", hint="set cluster_name to the existing cluster's name")
    if not st.in_cluster:
        await host_ssh(ctx, name).run(["pvecm", "create", cluster])
        return {"created": True, "cluster": cluster}
    return {"created": False, "cluster": cluster}


async def _root_key(ctx: StepContext, name: str) -> str:
    ssh = host_ssh(ctx, name)
    res = await ssh.run("cat /root/.ssh/id_rsa.pub", check=False)
    if not res.ok:
        await ssh.run("ssh-keygen -q -t rsa -b 4096 -N '' -f /root/.ssh/id_rsa")
        res = await ssh.run("cat /root/.ssh/id_rsa.pub")
    return res.stdout.strip()


async def _authorize(ctx: StepContext, on: str, key: str, root_file: str = "/root/.ssh/authorized_keys") -> None:
    """Let `key` log in as root on host `on` (pvecm add --use_ssh and qdevice setup need it)."""
    q = shlex.quote(key)
    await host_ssh(ctx, on).run(f"mkdir -p /root/.ssh && grep -qxF {q} {root_file} || echo {q} >> {root_file}")


async def _trust(ctx: StepContext, on: str, address: str) -> None:
    a = shlex.quote(address)
    await host_ssh(ctx, on).run(f"ssh-keygen -F {a} >/dev/null || ssh-keyscan -t ed25519,rsa {a} >> /root/.ssh/known_hosts")


def _join(name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        first, cluster = _first(ctx.spec), ctx.spec.proxmox.cluster_name
        st = await _status(ctx, name)
        if st.in_cluster:
            if st.name and st.name != cluster:
                raise OperationError(f"{name} already belongs to cluster {st.name!r}", hint="remove it from that cluster (pvecm delnode) first")
            return {"joined": False}
        first_addr = host_address(ctx, first)
        await _authorize(ctx, first, await _root_key(ctx, name))
        await _trust(ctx, name, first_addr)
        await host_ssh(ctx, name).run(["pvecm", "add", first_addr, "--use_ssh"], hint="check that the node holds no guests and can reach the first node on 22/tcp and 5405/udp")
        return {"joined": True}

    return run


def _witness(spec: Platform) -> QDevice:
    if spec.proxmox.qdevice is None:
        raise OperationError("the spec has no hypervisors.proxmox.qdevice", hint="add a qdevice for a two-host cluster")
    return spec.proxmox.qdevice


async def _qdevice(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
    first, witness = _first(ctx.spec), witness_name(ctx)
    st = await _status(ctx, first)
    if st.qdevice:
        return {"witness": witness, "configured": False}
    wssh = host_ssh(ctx, witness)
    sudo = "" if wssh.target.user == "root" else "sudo "
    if not (await wssh.run(f"{sudo}dpkg -s corosync-qnetd", check=False)).ok:
        await wssh.run(f"{sudo}apt-get update -q || true")  # a stale index must not block the install
        await wssh.run(f"{sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y corosync-qnetd")
    waddr = host_address(ctx, witness)
    for node in ctx.spec.proxmox.nodes:
        ssh = host_ssh(ctx, node.name)
        if not (await ssh.run("dpkg -s corosync-qdevice", check=False)).ok:
            await ssh.run("env DEBIAN_FRONTEND=noninteractive apt-get install -y corosync-qdevice")
    # Only the node running the setup SSHes to the witness (ssh-copy-id, then ssh/scp in batch
    # mode); the others get their certificates through it (pve-cluster 9.0.7 pvecm.pm qdevice
    # setup 155-292). So only its root key goes on the witness.
    key = shlex.quote(await _root_key(ctx, first))
    await wssh.run(f"{sudo}mkdir -p /root/.ssh && {sudo}grep -qxF {key} /root/.ssh/authorized_keys || echo {key} | {sudo}tee -a /root/.ssh/authorized_keys")
    await _trust(ctx, first, waddr)
    await host_ssh(ctx, first).run(["pvecm", "qdevice", "setup", waddr], hint=f"the witness must accept root SSH from {first} and run corosync-qnetd on 5403/tcp")
    return {"witness": witness, "configured": True}


async def _quorum(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
    first = _first(ctx.spec)
    want = len(ctx.spec.proxmox.nodes)
    seen: dict[str, Any] = {}

    async def check() -> Any:
        st = await _status(ctx, first)
        seen["st"] = st
        if not st.in_cluster:
            raise OperationError(f"{first} is not in a cluster", hint="run the hypervisors phase from the start")
        if not st.quorate or len(st.members) < want:
            raise Transient(f"quorate={st.quorate}, {len(st.members)}/{want} members")
        return st

    ctx.wait(f"quorum of {ctx.spec.proxmox.cluster_name}")
    try:
        st = await retry_async(check, policy=retry_policy(ctx.connections, "wait"), on_retry=ctx.retry, what="the quorum check")
    except RetryExhausted as exc:
        st = seen.get("st")
        members = ", ".join(st.members) if st else "?"
        raise OperationError(
            f"the Proxmox cluster is not quorate with all {want} nodes (members seen: {members}): {exc.message}",
            hint="bring every host (and the QDevice witness) online and check corosync (`journalctl -u corosync`), then run again",
        ) from exc
    nodes = await host_ssh(ctx, first).run("pvecm nodes")
    names = parse_pvecm(nodes.stdout).members
    return {"cluster": ctx.spec.proxmox.cluster_name, "members": names, "quorate": st.quorate, "qdevice": st.qdevice}


# ---------------------------------------------------------------------------- token and tailscale

async def _token(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
    """tierzero's API token, privilege-separated as `pveum` makes tokens, with the role it needs
    (see tierzero.phases.pve_prepare); the secret is shown once, so a lost one means a new token."""
    token_id = f"{TOKEN_USER}!{TOKEN_NAME}"
    if all(n.token_id for n in ctx.spec.proxmox.nodes):
        return {"token_id": ctx.spec.proxmox.nodes[0].token_id, "created": False}
    first = _first(ctx.spec)
    ssh = host_ssh(ctx, first)
    listed = json.loads((await ssh.run(["pveum", "user", "token", "list", TOKEN_USER, "--output-format", "json"])).stdout or "[]")
    mine = next((t for t in listed if t.get("tokenid") == TOKEN_NAME), None)
    created = False
    if mine is not None and not ctx.secrets.get(TOKEN_SECRET_NAME):
        ctx.log(f"token {token_id} exists but its secret is lost: recreating it", level="warn")
        await ssh.run(["pveum", "user", "token", "remove", TOKEN_USER, TOKEN_NAME])
        mine = None
    if mine is None:
        res = await ssh.run(["pveum", "user", "token", "add", TOKEN_USER, TOKEN_NAME, "--privsep", "1", "--output-format", "json"])
        secret = json.loads(res.stdout)["value"]
        ssh.redactor.add(secret)
        ctx.secrets.put(TOKEN_SECRET_NAME, secret)
        created = True
    elif int(mine.get("privsep", 1)) == 0:
        ctx.log(f"token {token_id} holds all of {TOKEN_USER}'s privileges (privsep 0): separating it, it gets role {ROLE_NAME} only")
        await ssh.run(["pveum", "user", "token", "modify", TOKEN_USER, TOKEN_NAME, "--privsep", "1"])
    access = await ensure_token_access(ctx, first)
    return {"token_id": token_id, "created": created, "privsep": 1, **access}


def _tailscale(name: str):
    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        ts = ctx.spec.proxmox.tailscale
        ssh = host_ssh(ctx, name)
        if not (await ssh.run("command -v tailscale", check=False)).ok:
            # Tailscale's APT repository, as its install.sh adds it, then the package: each step checked.
            codename = parse_codename((await ssh.run("cat /etc/os-release")).stdout)
            key_url, source_path, source = tailscale_source(codename)
            await ssh.run(["curl", "-fsSL", key_url, "-o", TAILSCALE_KEYRING], hint=f"check that {name} reaches pkgs.tailscale.com")
            await ssh.run(f"cat > {shlex.quote(source_path)}", input=source)
            await ssh.run("apt-get update -q", hint=f"check that {name} reaches pkgs.tailscale.com")
            await ssh.run(["apt-get", "install", "-y", "-q", "tailscale"])
        status = await ssh.run("tailscale status --json", check=False)
        try:
            if json.loads(status.stdout or "{}").get("BackendState") == "Running":
                return {"up": True, "changed": False}
        except ValueError:
            pass
        if ts.auth_key is None:  # the spec refuses an enabled Tailscale without a key; this is that rule, held
            raise OperationError("tailscale is enabled but has no auth_key", hint="set hypervisors.proxmox.tailscale.auth_key")
        key = ctx.secrets.resolve(ts.auth_key)
        cmd = ["tailscale", "up", f"--authkey={key}", f"--hostname={name}"]
        if ts.tags:
            cmd.append("--advertise-tags=" + ",".join(ts.tags))
        if ts.advertise_routes:
            cmd.append("--advertise-routes=" + ",".join(ts.advertise_routes))
        await ssh.run(cmd, secrets=[key], hint="check the auth key is valid and not expired")
        return {"up": True, "changed": True}

    return run


# ---------------------------------------------------------------------------- steps

def steps(spec: Platform) -> list[Step]:
    if not spec.has_proxmox:
        return []  # Talos directly on A1 instances: no hypervisor to set up
    px = spec.proxmox
    first = px.nodes[0].name
    out: list[Step] = list(prepare_steps(spec))
    prepared = {s.id.rsplit("/", 1)[-1] for s in out}
    for node in px.nodes:
        out.append(Step(
            _p(f"preflight/{node.name}"), "hypervisors", f"check {node.name}: SSH, Proxmox VE, memory, disk, hostname, /dev/kvm",
            _preflight(node.name),
            inputs=functools.partial(_preflight_inputs, node),
            needs=(_p(f"prepare/{node.name}"),) if node.name in prepared else (),
        ))
    out.append(Step(_p("cluster/create"), "hypervisors", f"create Proxmox cluster {px.cluster_name} on {first}", _create,
                    inputs=lambda ctx: {"cluster": ctx.spec.proxmox.cluster_name, "first": first}, needs=(_p(f"preflight/{first}"),), real_only=True))
    joins = []
    previous = _p("cluster/create")
    for node in px.nodes[1:]:  # one at a time: concurrent joins race on corosync.conf
        sid = _p(f"cluster/join/{node.name}")
        joins.append(sid)
        out.append(Step(sid, "hypervisors", f"join {node.name} to {px.cluster_name}", _join(node.name),
                        inputs=functools.partial(_join_inputs, node.name),
                        needs=(previous, _p(f"preflight/{node.name}")), real_only=True))
        previous = sid
    quorum_needs = [_p("cluster/create"), *joins]
    apt = {node.name: _p(f"apt/{node.name}") for node in px.nodes}
    if (px.qdevice is not None and len(px.nodes) % 2 == 0) or px.tailscale.enabled:  # what installs packages on the hosts
        for node in px.nodes:
            out.append(Step(apt[node.name], "hypervisors", f"APT repositories on {node.name}: pve-no-subscription unless it has a subscription",
                            apt_repositories(node.name), inputs=lambda ctx: {"repositories": "no-subscription"},
                            needs=(_p(f"preflight/{node.name}"),), real_only=True))
    if px.qdevice is not None and len(px.nodes) % 2 == 0:
        out.append(Step(_p("qdevice"), "hypervisors", f"QDevice on {px.qdevice.host} (corosync-qnetd)", _qdevice,
                        inputs=lambda ctx: {"witness": _witness(ctx.spec).model_dump(mode="json"), "nodes": [n.name for n in ctx.spec.proxmox.nodes]},
                        needs=(*quorum_needs, *apt.values()), real_only=True))
        quorum_needs.append(_p("qdevice"))
    out.append(Step(_p("quorum"), "hypervisors", "wait for a quorate cluster with every node", _quorum,
                    inputs=lambda ctx: {"nodes": [n.name for n in ctx.spec.proxmox.nodes]}, needs=tuple(quorum_needs)))
    out.append(Step(_p("api-ca"), "hypervisors", f"pin the API's TLS certificate: the cluster CA ({CLUSTER_CA}) read over SSH",
                    pin_step(first), inputs=functools.partial(ca_inputs, first=first), needs=(_p("quorum"),)))
    out.append(Step(_p("api-token"), "hypervisors", f"API token {TOKEN_USER}!{TOKEN_NAME} (privsep 1), role {ROLE_NAME} and its ACL on /", _token,
                    inputs=lambda ctx: {"given": [n.token_id for n in ctx.spec.proxmox.nodes], "role": list(ROLE_PRIVILEGES)},
                    needs=(_p("quorum"), _p("api-ca")), real_only=True))
    network = network_steps(spec, after=_p("api-token"))
    out.extend(network)
    out.append(Step(_p("capabilities"), "hypervisors", "check the token's privileges, storages, bridge, free memory and the Image Factory from the hosts",
                    capabilities, inputs=capability_inputs, needs=(network[-1].id if network else _p("api-token"),)))
    summary_needs = [_p("quorum"), _p("api-token"), _p("capabilities")]
    if wanted_content(spec):
        out.append(Step(_p("storage-content"), "hypervisors", f"storage {px.image_storage}: content {','.join(wanted_content(spec))} (PUT /storage/{px.image_storage})",
                        ensure_storage_content, inputs=storage_content_inputs, needs=(_p("capabilities"),), real_only=True))
        summary_needs.append(_p("storage-content"))
    if px.tailscale.enabled:
        for node in px.nodes:
            sid = _p(f"tailscale/{node.name}")
            summary_needs.append(sid)
            out.append(Step(sid, "hypervisors", f"Tailscale on {node.name}", _tailscale(node.name),
                            inputs=lambda ctx: ctx.spec.proxmox.tailscale.model_dump(mode="json"), needs=(apt[node.name],), real_only=True))
    if px.ceph.enabled:
        from tierzero.phases.ceph import ceph_steps

        ceph = ceph_steps(spec)
        out.extend(ceph)
        summary_needs.append(ceph[-1].id)
    out.append(Step(_p("summary"), "hypervisors", "report the Proxmox cluster", _summary, needs=tuple(summary_needs)))
    return out


def _preflight_inputs(node: ProxmoxNode, ctx: StepContext) -> dict[str, Any]:
    return {"node": node.model_dump(mode="json"), "guests_gb": _guests_on(ctx.spec, node.name), "tcg": ctx.spec.proxmox.allow_software_emulation}


def _join_inputs(node: str, ctx: StepContext) -> dict[str, Any]:
    return {"cluster": ctx.spec.proxmox.cluster_name, "node": node}


async def _summary(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
    q = ctx.output(_p("quorum"))
    health = ctx.outputs.get(_p("ceph/health"), {})
    return {"cluster": q["cluster"], "members": q["members"], "quorate": q["quorate"], "qdevice": q.get("qdevice", False),
            "ceph_health": health.get("status"), "ceph_reasons": health.get("reasons", [])}
