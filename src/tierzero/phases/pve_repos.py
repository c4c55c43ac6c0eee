"""APT repositories of a Proxmox VE host (part of the hypervisors phase).

A fresh install enables Proxmox's enterprise repositories (pve-enterprise, and Ceph's) and no
other Proxmox repository; without a subscription key they answer 401, so `apt-get update` fails
and nothing tierzero installs (corosync-qdevice, Tailscale's packages) can be fetched
reliably. On a host without an active subscription tierzero therefore does what the Proxmox docs
recommend: disable the enterprise entries and add the `pve-no-subscription` repository; then
`apt-get update` must succeed. A host with a subscription is left alone, and so is one without
Proxmox's enterprise sources (a community port such as PXVIRT on the A1 hosts, or sources the
user manages): only its package index is refreshed.

Sources: pve-docs `pve-package-repos.adoc` (9.1: "The pve-enterprise repository is enabled by
default", disabling with `Enabled: no`, the no-subscription entry in `proxmox.sources`; 8.x: the
one-line `.list` files); pve-manager 9.1.2 `configs/pve-sources.sources`,
`PVE/API2/Subscription.pm` 212-216 (`pvesubscription get`: `status: notfound` without a key).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from tierzero.engine.step import StepContext
from tierzero.errors import OperationError
from tierzero.phases.hosts import host_ssh
from tierzero.render.remote_files import write_file_script

SOURCES_DIR = "/etc/apt/sources.list.d"
ENTERPRISE_HOST = "enterprise.proxmox.com"
KEYRING = "/usr/share/keyrings/proxmox-archive-keyring.gpg"
# The enterprise entries a fresh install has, by release: deb822 files from PVE 9 (trixie) on,
# one-line lists before (PVE 8, bookworm).
ENTERPRISE_FILES = ("pve-enterprise.sources", "ceph.sources", "pve-enterprise.list", "ceph.list")


def disable_enterprise(path: str, text: str) -> str | None:
    """`text` of the APT source file `path` with its enabled enterprise.proxmox.com entries
    disabled, or None when it has none (nothing to write). deb822: `Enabled: no` added to each such
    stanza; one-line lists: the `deb` lines commented out."""
    if path.endswith(".list"):
        lines = text.splitlines(keepends=True)
        commented = [f"# {line}" if line.startswith("deb") and ENTERPRISE_HOST in line else line for line in lines]
        return "".join(commented) if commented != lines else None
    stanzas = re.split(r"\n\s*\n", text.strip("\n"))
    out: list[str] = []
    changed = False
    for stanza in stanzas:
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in stanza.splitlines() if not line.startswith("#"))}
        if ENTERPRISE_HOST in fields.get("uris", "") and fields.get("enabled", "yes").lower() != "no":
            stanza = re.sub(r"(?im)^enabled:.*\n?", "", stanza).rstrip("\n") + "\nEnabled: no"
            changed = True
        out.append(stanza)
    return "\n\n".join(out) + "\n" if changed else None


def no_subscription_source(codename: str) -> tuple[str, str]:
    """(path, content) of the pve-no-subscription repository for this Debian release."""
    if codename == "bookworm":  # PVE 8: one-line format
        return f"{SOURCES_DIR}/pve-no-subscription.list", f"deb http://download.proxmox.com/debian/pve {codename} pve-no-subscription\n"
    return f"{SOURCES_DIR}/proxmox.sources", (
        f"Types: deb\nURIs: http://download.proxmox.com/debian/pve\nSuites: {codename}\n"
        f"Components: pve-no-subscription\nSigned-By: {KEYRING}\n"
    )


TAILSCALE_URI = "https://pkgs.tailscale.com/stable/debian"
TAILSCALE_KEYRING = "/usr/share/keyrings/tailscale-archive-keyring.gpg"


def tailscale_source(codename: str) -> tuple[str, str, str]:
    """(key URL, source path, deb822 content) of Tailscale's stable APT repository for this Debian
    release: the key saved as TAILSCALE_KEYRING, the source signed by it. What install.sh does on
    Debian, written out so it is idempotent and reports each failure (Tailscale docs, "Install
    Tailscale on Debian Bookworm"/"Trixie": `<codename>.noarmor.gpg` into
    /usr/share/keyrings/tailscale-archive-keyring.gpg, then `apt-get update` and `apt-get install tailscale`)."""
    return (f"{TAILSCALE_URI}/{codename}.noarmor.gpg", f"{SOURCES_DIR}/tailscale.sources",
            f"Types: deb\nURIs: {TAILSCALE_URI}\nSuites: {codename}\nComponents: main\nSigned-By: {TAILSCALE_KEYRING}\n")


def parse_codename(os_release: str) -> str:
    found = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", os_release, re.M)
    if not found:
        raise OperationError("cannot tell the host's Debian release from /etc/os-release (no VERSION_CODENAME)")
    return found.group(1)


def apt_repositories(name: str):
    """The step: no-subscription repositories on host `name` unless it has a subscription, then
    a package index update that must succeed."""

    async def run(ctx: StepContext, inputs: Any) -> Mapping[str, Any]:
        ssh = host_ssh(ctx, name)
        subscription = await ssh.run(["pvesubscription", "get"], check=False)
        if subscription.ok and re.search(r"^status:\s*active\s*$", subscription.stdout, re.M | re.I):
            await ssh.run("apt-get update -q", hint="the host has a subscription: check its enterprise repository access")
            return {"subscription": True, "changed": []}
        codename = parse_codename((await ssh.run("cat /etc/os-release")).stdout)
        changed = []
        for file in ENTERPRISE_FILES:
            path = f"{SOURCES_DIR}/{file}"
            current = await ssh.run(["cat", path], check=False)
            if not current.ok:
                continue
            disabled = disable_enterprise(path, current.stdout)
            if disabled is not None:
                await ssh.run(write_file_script(path, "0644"), input=disabled)
                changed.append(path)
        if changed:  # an official install's enterprise sources: the no-subscription one replaces them
            path, content = no_subscription_source(codename)
            present = await ssh.run(["cat", path], check=False)
            if not present.ok or "pve-no-subscription" not in present.stdout:
                await ssh.run(write_file_script(path, "0644"), input=content)
                changed.append(path)
        if changed:  # narration (info): the run log keeps which files changed
            ctx.log(f"{name}: no subscription: enterprise repositories disabled, pve-no-subscription used ({', '.join(changed)})")
        await ssh.run("apt-get update -q", hint=f"check that {name} reaches deb.debian.org and download.proxmox.com")
        return {"subscription": False, "changed": changed}

    return run
