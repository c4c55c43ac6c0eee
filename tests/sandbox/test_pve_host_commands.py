"""The stand-in hosts' Proxmox commands start as on a fresh 9.1 install and refuse what the real
ones refuse (`tierzero.sandbox.pve_hosts`), each rule with its source, seen over SSH as the
product runs them."""

from __future__ import annotations

from .pve_stock import Stock, stock_fixture  # noqa: F401  (the "stock" fixture)


async def test_pvecm_add_refuses_a_host_holding_guests(stock: Stock) -> None:
    """pve-cluster 9.0.7 Setup.pm assert_joinable 646-699 (every refusal listed, then "Check if node
    may join a cluster failed!"), pvecm.pm add 431-447 (ssh-copy-id: "unable to copy ssh ID")."""
    await stock.ssh("pve1", "pvecm create lab")
    stock.pve.add_vm(150, "already-here", node="pve2")
    held = await stock.ssh("pve2", "pvecm add 192.168.10.11 --use_ssh", check=False)
    assert held.exit_status != 0
    assert held.stderr == "detected the following error(s):\n* this host already contains virtual guests\nCheck if node may join a cluster failed!\n"
    stock.pve.vms.clear()
    denied = await stock.ssh("pve2", "pvecm add 192.168.10.11 --use_ssh", check=False)
    assert denied.stderr == "unable to copy ssh ID: exit code 1\n"  # pve2's root key is not on pve1
    again = await stock.ssh("pve1", "pvecm add 192.168.10.12 --use_ssh", check=False)
    assert "* cluster config '/etc/pve/corosync.conf' already exists\n" in again.stderr
    assert "* corosync is already running, is this node already in a cluster?!\n" in again.stderr


async def test_pvecm_qdevice_setup_refusals_and_only_the_local_node_reaches_the_witness(stock: Stock) -> None:
    """pve-cluster 9.0.7 pvecm.pm qdevice setup 115-292: all members online, an even member count
    unless --force, then the local node's ssh-copy-id/ssh/scp to the witness (no other member
    SSHes there), the witness's CA copied from corosync-qnetd's NSS database."""
    from tierzero.sandbox.pve_hosts.commands import HostState

    hosts = stock.hosts.hosts
    witness = hosts["qw"] = HostState("qw", "192.168.10.50", witness=True)
    await stock.ssh("pve1", "pvecm create lab")
    odd = await stock.ssh("pve1", "pvecm qdevice setup 192.168.10.50", check=False)
    assert odd.stderr == "Clusters with an odd node count are not officially supported!\n"
    hosts["pve2"].in_cluster = True
    stock.hosts.cluster.members.append("pve2")
    hosts["pve2"].offline = True
    offline = await stock.ssh("pve1", "pvecm qdevice setup 192.168.10.50", check=False)
    assert offline.stderr == "All nodes must be online! Node pve2 is offline, aborting.\n"
    hosts["pve2"].offline = False
    for name in ("pve1", "pve2"):
        hosts[name].packages.add("corosync-qdevice")
        hosts[name].root_pubkey = f"ssh-rsa AAAA{name} root@{name}"
    refused_ssh = await stock.ssh("pve1", "pvecm qdevice setup 192.168.10.50", check=False)
    assert refused_ssh.stderr == "command 'ssh-copy-id -i /root/.ssh/id_rsa root@192.168.10.50' failed: exit code 1\n"
    witness.authorized.add(hosts["pve1"].root_pubkey)  # only the local node's key
    no_qnetd = await stock.ssh("pve1", "pvecm qdevice setup 192.168.10.50", check=False)
    assert no_qnetd.stderr.startswith("command 'scp -o BatchMode=yes root@[192.168.10.50]:/etc/corosync/qnetd/nssdb/qnetd-cacert.crt ")
    witness.packages.add("corosync-qnetd")
    await stock.ssh("pve1", "pvecm qdevice setup 192.168.10.50")
    assert stock.hosts.cluster.qdevice == "192.168.10.50"
    again = await stock.ssh("pve1", "pvecm qdevice setup 192.168.10.50", check=False)
    assert again.stderr == "QDevice already configured!\n"


async def test_a_fresh_host_knows_only_its_own_name_and_its_enterprise_repositories_fail(stock: Stock) -> None:
    """pve-installer 9.1.0 Install.pm 1071-1087 (/etc/hosts); pve-docs pve-package-repos.adoc
    96-120 (enterprise repositories enabled, 401 without a subscription)."""
    own = await stock.ssh("pve1", "getent hosts pve1")
    assert own.stdout.split()[:2] == ["192.168.10.11", "pve1.sandbox.lan"]
    assert not (await stock.ssh("pve1", "getent hosts pve2", check=False)).ok
    update = await stock.ssh("pve1", "apt-get update -q", check=False)
    assert update.exit_status == 100 and "https://enterprise.proxmox.com/debian/pve/dists/trixie/InRelease  401  Unauthorized" in update.stderr
    assert "status: notfound" in (await stock.ssh("pve1", "pvesubscription get")).stdout


async def test_pveceph_needs_the_no_subscription_repository_and_real_devices(stock: Stock) -> None:
    """pve-manager 9.1.2 pveceph.pm install 138-163 and 280-284 (enterprise by default: apt fails
    without a subscription); Ceph/Tools.pm check_ceph_inited 213-226; API2/Ceph/OSD.pm 372-376."""
    failed = await stock.ssh("pve1", "yes | pveceph install", check=False)
    assert failed.exit_status != 0 and failed.stderr == "apt failed during ceph installation (25600)\n"
    await stock.ssh("pve1", "yes | pveceph install --repository no-subscription")
    assert b"Components: no-subscription" in stock.hosts.hosts["pve1"].files["/etc/apt/sources.list.d/ceph.sources"]
    uninit = await stock.ssh("pve1", "pveceph mon create", check=False)
    assert uninit.stderr == "pveceph configuration not initialized - missing '/etc/pve/ceph.conf', missing '/etc/pve/ceph'\n"
    await stock.ssh("pve1", "pveceph init --network 192.168.10.0/24")
    await stock.ssh("pve1", "pveceph mon create")
    assert (await stock.ssh("pve1", "pveceph mon create", check=False)).stderr == "monitor 'pve1' already exists\n"
    assert (await stock.ssh("pve1", "pveceph osd create /dev/sdc", check=False)).stderr == "unable to get device info for '/dev/sdc'\n"
    assert (await stock.ssh("pve1", "pveceph osd create /dev/sda", check=False)).stderr == "device '/dev/sda' is already in use\n"
    await stock.ssh("pve1", "pveceph osd create /dev/sdb")


async def test_pveum_token_commands_need_a_user_that_exists(stock: Stock) -> None:
    """pve-access-control 9.1.1 User.pm 714/800 check_user_exist; AccessControl.pm 670-680:
    a fresh install's user.cfg holds root@pam only."""
    for verb in (["add", "nobody@pam", "t"], ["list", "nobody@pam"], ["remove", "nobody@pam", "t"]):
        refused = await stock.ssh("pve1", ["pveum", "user", "token", *verb], check=False)
        assert (refused.exit_status, refused.stderr) == (255, "no such user ('nobody@pam')\n")
    made = await stock.ssh("pve1", ["pveum", "user", "token", "add", "root@pam", "t", "--output-format", "json"])
    assert '"full-tokenid": "root@pam!t"' in made.stdout


async def test_pveum_acl_modify_needs_roles(stock: Stock) -> None:
    """PUT /access/acl: `roles` is not optional (shared/oracles/pve/apidata.json; ACL.pm 139-143);
    pve-common JSONSchema.pm: "property is missing and it is not optional"."""
    await stock.ssh("pve1", ["pveum", "user", "token", "add", "root@pam", "t"])
    refused = await stock.ssh("pve1", ["pveum", "acl", "modify", "/", "--tokens", "root@pam!t"], check=False)
    assert refused.exit_status == 255
    assert refused.stderr == "400 Parameter verification failed.\nroles: property is missing and it is not optional\n"
    assert stock.hosts.cluster.acl == []


async def test_a_host_from_the_installer_keeps_its_hostname_and_hosts_file_across_a_reboot(stock: Stock) -> None:
    """No cloud-init on a host the Proxmox VE installer made: nothing rewrites /etc/hosts at boot."""
    import asyncio

    host = stock.hosts.hosts["pve1"]
    assert host.image_user is None
    host.files["/etc/hosts"] += b"192.168.10.12 pve2.lab pve2\n"
    host.hostname = "renamed"
    before, boot_id = dict(host.files), host.boot_id
    stock.hosts.reboot_seconds = 0.01
    await stock.ssh("pve1", "systemctl reboot")
    for _ in range(500):
        if host.boot_id != boot_id and not host.rebooting:
            break
        await asyncio.sleep(0.01)
    assert host.boot_id != boot_id  # it did boot
    assert host.files["/etc/hosts"] == before["/etc/hosts"] and host.hostname == "renamed"


async def test_tailscale_installs_only_from_its_repository_and_install_sh_needs_the_internet(stock: Stock) -> None:
    """Tailscale docs "Install Tailscale on Debian Trixie": key and source, then apt; the hosts
    have no internet, so piping install.sh from tailscale.com fails (curl exit 6)."""
    from tierzero.phases.pve_repos import TAILSCALE_KEYRING, tailscale_source

    piped = await stock.ssh("pve1", "curl -fsSL https://tailscale.com/install.sh | sh", check=False)
    assert piped.exit_status == 6 and "Could not resolve host: tailscale.com" in piped.stderr
    early = await stock.ssh("pve1", "apt-get install -y tailscale", check=False)
    assert early.exit_status == 100 and "Unable to locate package tailscale" in early.stderr
    key_url, path, source = tailscale_source("trixie")
    # a fresh host's enterprise sources fail every update: the product's APT step runs first (here: a subscribed host)
    stock.hosts.hosts["pve1"].subscribed = True
    await stock.ssh("pve1", f"cat > {path}", input=source)
    unsigned = await stock.ssh("pve1", "apt-get update -q", check=False)  # the keyring is not there yet
    assert unsigned.exit_status == 100 and "NO_PUBKEY" in unsigned.stderr
    await stock.ssh("pve1", ["curl", "-fsSL", key_url, "-o", TAILSCALE_KEYRING])
    await stock.ssh("pve1", "apt-get update -q")
    await stock.ssh("pve1", "apt-get install -y tailscale")
    assert "tailscale" in stock.hosts.hosts["pve1"].packages
