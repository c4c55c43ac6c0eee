"""The APT source edits of tierzero.phases.pve_repos, on the files a fresh install has (pve-docs
pve-package-repos.adoc; pve-manager 9.1.2 configs/pve-sources.sources)."""

from __future__ import annotations

import pytest

from tierzero.errors import OperationError
from tierzero.phases.pve_repos import disable_enterprise, no_subscription_source, parse_codename
from tierzero.sandbox.pve_hosts.commands import failing_repositories, fresh_pve_files

PVE9 = "Types: deb\nURIs: https://enterprise.proxmox.com/debian/pve\nSuites: trixie\nComponents: pve-enterprise\n" \
       "Signed-By: /usr/share/keyrings/proxmox-archive-keyring.gpg\n"


def test_deb822_enterprise_stanzas_are_disabled_once_and_others_kept() -> None:
    other = "Types: deb\nURIs: http://download.proxmox.com/debian/pve\nSuites: trixie\nComponents: pve-no-subscription\n"
    path = "/etc/apt/sources.list.d/pve-enterprise.sources"
    changed = disable_enterprise(path, PVE9 + "\n" + other)
    assert changed is not None
    stanzas = changed.strip().split("\n\n")
    assert stanzas[0].endswith("Enabled: no") and "Enabled" not in stanzas[1]
    assert failing_repositories({path: changed.encode()}) == []
    assert disable_enterprise(path, changed) is None  # already done: nothing to write
    explicitly_on = PVE9.replace("Types: deb\n", "Types: deb\nEnabled: yes\n")
    assert disable_enterprise(path, explicitly_on).count("Enabled:") == 1  # type: ignore[union-attr]


def test_one_line_lists_are_commented_out() -> None:
    path = "/etc/apt/sources.list.d/pve-enterprise.list"
    text = "deb https://enterprise.proxmox.com/debian/pve bookworm pve-enterprise\n"
    changed = disable_enterprise(path, text)
    assert changed == "# " + text
    assert failing_repositories({path: text.encode()}) and failing_repositories({path: changed.encode()}) == []


def test_no_subscription_entry_and_release_by_codename() -> None:
    path, content = no_subscription_source(parse_codename(fresh_pve_files("pve1", "10.0.0.1")["/etc/os-release"].decode()))
    assert path == "/etc/apt/sources.list.d/proxmox.sources" and "Suites: trixie\n" in content and "pve-no-subscription" in content
    assert no_subscription_source("bookworm") == ("/etc/apt/sources.list.d/pve-no-subscription.list",
                                                  "deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription\n")
    with pytest.raises(OperationError, match="VERSION_CODENAME"):
        parse_codename('ID=debian\n')
