"""The sandbox's Proxmox VE starts as a fresh 9.1 install and refuses what one refuses: each rule of
`tierzero.sandbox.pve_rules` and `tierzero.sandbox.guests`, seen through the production client
(proxmoxer), with the source it follows. The hosts are the SSH stand-ins (their files, /dev/kvm,
bridges and `pveum`), the images come from the Image Factory stand-in."""

from __future__ import annotations

import asyncio
import hashlib
import re
import urllib.request

import pytest

from tierzero.adapters.proxmox import ProxmoxClient, TaskFailed
from tierzero.sandbox.fakepve import start_fakepve
from tierzero.sandbox.guests import KVM_MISSING

from .pve_stock import TIERZERO, Stock, refused, run_task, stock_fixture  # noqa: F401  (the "stock" fixture)

# ---------------------------------------------------------------------------- the installer's layout

async def test_storage_is_what_the_installer_writes(stock: Stock) -> None:
    """pve-installer 9.1.0 Proxmox/Install/StorageConfig.pm get_lvm_thin_config: `local` holds
    iso,vztmpl,backup,import (import since 9.0.7), `local-lvm` rootdir,images; no snippets anywhere."""
    root = stock.root()
    local, thin = await root.call("get", "storage/local"), await root.call("get", "storage/local-lvm")
    assert (local["type"], local["path"], local["content"]) == ("dir", "/var/lib/vz", "iso,vztmpl,backup,import")
    assert (thin["type"], thin["vgname"], thin["thinpool"], thin["content"]) == ("lvmthin", "pve", "data", "rootdir,images")
    assert sorted(s["storage"] for s in await root.call("get", "storage")) == ["local", "local-lvm"]


def test_the_zfs_layout_has_local_zfs_instead() -> None:
    """pve-installer 9.1.0 StorageConfig.pm get_zfs_config: `local-zfs` (rpool/data, sparse) for disks."""
    server = start_fakepve(["pve1"], layout="zfs")
    try:
        assert sorted(server.pve.storages) == ["local", "local-zfs"]
        assert server.pve.storages["local-zfs"]["pool"] == "rpool/data" and server.pve.storages["local-zfs"]["content"] == "images,rootdir"
    finally:
        server.stop()


async def test_no_acl_entry_and_tokens_are_privilege_separated(stock: Stock) -> None:
    """pve-installer 9.1.0 Install.pm line 1561 (user.cfg holds root@pam only); pve-access-control
    9.0.4 User.pm generate_token line 813 (privsep defaults to 1) and RPCEnvironment.pm permissions():
    a separated token without ACL entries holds nothing, its privsep-0 sibling all of root@pam's."""
    separated, whole = await stock.token("sep"), await stock.token("whole", privsep=0)
    assert stock.pve.acl == {} and stock.pve.token_privsep == {"root@pam!sep": 1, "root@pam!whole": 0}
    assert (await refused(separated, "get", "cluster/status")).message.startswith("Permission check failed (/, Sys.Audit)")
    assert await whole.cluster_status() and await stock.root().cluster_status()
    assert (await separated.call("get", "access/permissions")) == {}
    assert (await refused(separated, "get", "cluster/ceph/status")).message.startswith("Permission check failed (/, Sys.Audit|Datastore.Audit)")


# ---------------------------------------------------------------------------- download-url

async def test_download_url_refuses_snippets_content(stock: Stock) -> None:
    """pve-storage 9.1.0 src/PVE/API2/Storage/Status.pm line 765: content is one of iso, vztmpl, import."""
    err = await refused(stock.root(), "post", "nodes/pve1/storage/local/download-url", url=stock.image_url(), filename="u.yaml", content="snippets")
    assert err.status == 400 and "value 'snippets' does not have a value in the enumeration 'iso, vztmpl, import'" in err.message


async def test_download_url_needs_the_content_type_on_the_storage(stock: Stock) -> None:
    """Status.pm line 822: `storage 'local' is not configured for content-type 'import'` (500), as on a
    host installed before installer 9.0.7 or upgraded from 8.x; PUT /storage/local (Config.pm update
    299-306, which replaces the whole list) enables it."""
    root = stock.root()
    await root.call("put", "storage/local", content="iso,vztmpl,backup")
    err = await refused(root, "post", "nodes/pve1/storage/local/download-url", url=stock.image_url(), filename="t.qcow2", content="import")
    assert err.status == 500 and "storage 'local' is not configured for content-type 'import'" in err.message
    await root.call("put", "storage/local", content="iso,vztmpl,backup,import,snippets")
    assert await run_task(root, "post", "nodes/pve1/storage/local/download-url", url=stock.image_url(), filename="t.qcow2", content="import") == "OK"


async def test_download_url_refuses_names_import_cannot_take(stock: Stock) -> None:
    """Status.pm 831-845: import takes *.ova/qcow2/raw/vmdk only (so not the factory's .raw.xz),
    iso *.iso/img; a file storage only (line 817)."""
    root = stock.root()
    err = await refused(root, "post", "nodes/pve1/storage/local/download-url", url=stock.image_url(path="nocloud-amd64.raw.xz"),
                        filename="talos.raw.xz", content="import")
    assert err.status == 400 and "invalid filename or wrong extension" in err.message
    err = await refused(root, "post", "nodes/pve1/storage/local/download-url", url=stock.image_url(), filename="talos.qcow2", content="iso")
    assert err.status == 400 and "wrong file extension" in err.message
    err = await refused(root, "post", "nodes/pve1/storage/local-lvm/download-url", url=stock.image_url(), filename="t.qcow2", content="import")
    assert err.status == 500 and "can't upload to storage type 'lvmthin', not a file based storage!" in err.message


async def test_download_url_decompresses_isos_only_and_not_xz(stock: Stock) -> None:
    """Status.pm 894-896 and Storage.pm decompressor_info 1751-1790: decompression is for iso only,
    by gz/lzo/zst/bz2; anything else fails the task."""
    root = stock.root()
    url = stock.image_url()
    assert await run_task(root, "post", "nodes/pve1/storage/local/download-url", url=url, filename="a.qcow2", content="import",
                          compression="gz") == "decompression not supported for import"
    assert await run_task(root, "post", "nodes/pve1/storage/local/download-url", url=stock.image_url(path="metal-amd64.iso"),
                          filename="a.iso", content="iso", compression="xz") == "no decompression method found"


async def test_download_url_keeps_or_refuses_an_existing_file_and_checks_checksums(stock: Stock) -> None:
    """pve-common 9.0.15 src/PVE/Tools.pm download_file_from_url 1782-1839: an existing file is kept
    with a matching checksum, refused without one; a downloaded file must match the checksum given."""
    root = stock.root()
    url = stock.image_url()
    digest = hashlib.sha256(urllib.request.urlopen(url).read()).hexdigest()
    path = "nodes/pve1/storage/local/download-url"
    assert await run_task(root, "post", path, url=url, filename="t.qcow2", content="import", checksum="0" * 64,
                          **{"checksum-algorithm": "sha256"}) == f"checksum mismatch: got '{digest}' != expect '{'0' * 64}'"
    assert await run_task(root, "post", path, url=url, filename="t.qcow2", content="import") == "OK"
    assert await run_task(root, "post", path, url=url, filename="t.qcow2", content="import") == \
        "refusing to override existing file '/var/lib/vz/import/t.qcow2'"
    assert await run_task(root, "post", path, url=url, filename="t.qcow2", content="import", checksum=digest,
                          **{"checksum-algorithm": "sha256"}) == "OK"


async def test_download_url_permissions(stock: Stock) -> None:
    """apidata.json POST .../download-url: Datastore.AllocateTemplate on the storage, and Sys.Audit
    with Sys.Modify on / or Sys.AccessNetwork on the node; a failed `or` is a bare message
    (pve-access-control 9.0.4 RPCEnvironment.pm exec_api2_perm_check 473-478)."""
    url, path = stock.image_url(), "nodes/pve1/storage/local/download-url"
    nothing = await stock.token("nothing")
    assert (await refused(nothing, "post", path, url=url, filename="t.qcow2", content="import")).message.startswith(
        "Permission check failed (/storage/local, Datastore.AllocateTemplate)")
    template_only = await stock.token("tmpl", role="TemplateOnly", privs="Datastore.AllocateTemplate")
    err = await refused(template_only, "post", path, url=url, filename="t.qcow2", content="import")
    assert err.status == 403 and err.message.strip() == "Permission check failed"
    ours = await stock.token("tierzero", role="TierZero")
    assert await run_task(ours, "post", path, url=url, filename="t.qcow2", content="import") == "OK"


async def test_a_file_on_local_is_on_that_node_only(stock: Stock) -> None:
    """pve-docs 9.1.3 pvesm.adoc: a storage without `shared` is each node's own."""
    root = stock.root()
    assert await run_task(root, "post", "nodes/pve1/storage/local/download-url", url=stock.image_url(), filename="t.qcow2", content="import") == "OK"
    assert [c["volid"] for c in await root.storage_content("pve1", "local", "import")] == ["local:import/t.qcow2"]
    assert await root.storage_content("pve2", "local", "import") == []


# ---------------------------------------------------------------------------- root-only operations

async def test_vm_keys_outside_the_privilege_groups_are_root_only(stock: Stock) -> None:
    """qemu-server 9.1.0 src/PVE/API2/Qemu.pm $check_vm_modify_config_perm 961-1006 and serial 834:
    a plain die, HTTP 500, for any token, even one holding all of root's privileges."""
    whole = await stock.token("whole", privsep=0)
    base = {"vmid": 200, "name": "t", "memory": 512, "net0": "virtio,bridge=vmbr0"}
    err = await refused(whole, "post", "nodes/pve1/qemu", **base, args="-cpu host")
    assert err.status == 500 and "only root can set 'args' config" in err.message
    err = await refused(whole, "post", "nodes/pve1/qemu", **base, serial0="/dev/ttyS0")
    assert err.status == 500 and "only root can set 'serial0' config for real devices" in err.message
    assert await run_task(stock.root(), "post", "nodes/pve1/qemu", **base, args="-cpu host") == "OK"


async def test_usb_hostpci_and_custom_cpu_models_need_their_own_rights(stock: Stock) -> None:
    """qemu-server 9.1.0 API2/Qemu.pm check_usb_perm 850-873, check_hostpci_perm 889-903,
    $check_cpu_model_access 709-727."""
    client = await stock.token("devices", role="Devices", privs=TIERZERO)
    base = {"vmid": 220, "name": "t", "memory": 512}
    err = await refused(client, "post", "nodes/pve1/qemu", **base, usb0="host=1234:5678")
    assert err.status == 500 and "only root can set 'usb0' config for real devices" in err.message
    err = await refused(client, "post", "nodes/pve1/qemu", **base, hostpci0="host=0000:01:00.0")
    assert err.status == 500 and "only root can set 'hostpci0' config for non-mapped devices" in err.message
    err = await refused(client, "post", "nodes/pve1/qemu", **base, hostpci0="mapping=gpu")
    assert err.status == 403 and "Permission check failed (/mapping/pci/gpu, Mapping.Use)" in err.message
    no_audit = await stock.token("noaudit", role="NoAudit", privs=TIERZERO.replace("Sys.Audit,", ""))
    err = await refused(no_audit, "post", "nodes/pve1/qemu", **base, cpu="custom-fast")
    assert err.status == 403 and "Permission check failed (/nodes, Sys.Audit)" in err.message
    assert await run_task(client, "post", "nodes/pve1/qemu", **base, usb0="host=spice", cpu="host") == "OK"


async def test_lxc_feature_flags_beyond_nesting_are_root_only(stock: Stock) -> None:
    """pve-container 6.0.18 src/PVE/LXC.pm check_ct_modify_config_perm 1745-1750: 403 for anyone but
    root@pam (its tokens too); `pct set` as root on the node may."""
    await run_task(stock.root(), "post", "nodes/pve1/aplinfo", storage="local", template="debian-12-standard_12.12-1_amd64.tar.zst")
    whole = await stock.token("whole", privsep=0)
    create = {"vmid": 300, "ostemplate": "local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst", "rootfs": "local-lvm:4",
              "net0": "name=eth0,bridge=vmbr0,ip=dhcp", "unprivileged": 1}
    err = await refused(whole, "post", "nodes/pve1/lxc", **create, features="nesting=1,keyctl=1")
    assert err.status == 403 and "changing feature flags (except nesting) is only allowed for root@pam" in err.message
    assert await run_task(whole, "post", "nodes/pve1/lxc", **create, features="nesting=1") == "OK"
    await stock.ssh("pve1", "pct set 300 --features nesting=1,keyctl=1")
    assert set(stock.pve.ct(300).config["features"].split(",")) == {"nesting=1", "keyctl=1"}


async def test_a_container_needs_its_template_on_the_storage(stock: Stock) -> None:
    """pve-container 6.0.18 API2/LXC.pm 413/625 and LXC/Create.pm restore_archive 53; pve-storage
    9.1.0 Storage.pm abs_filesystem_path 784: the OS template must exist (a fresh install has none)."""
    status = await run_task(stock.root(), "post", "nodes/pve1/lxc", vmid=301, ostemplate="local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst",
                            rootfs="local-lvm:4")
    assert status == "unable to create CT 301 - can't find file 'local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst'"


async def test_a_vm_nic_needs_sdn_use_on_its_bridge(stock: Stock) -> None:
    """qemu-server 9.1.0 QemuServer.pm check_bridge_access 6330; pve-guest-common GuestHelpers.pm
    check_vnet_access 397-421: SDN.Use on /sdn/zones/localnetwork/<bridge>."""
    no_sdn = await stock.token("nosdn", role="NoSdn", privs=TIERZERO.replace("SDN.Use,", ""))
    err = await refused(no_sdn, "post", "nodes/pve1/qemu", vmid=201, name="t", net0="virtio,bridge=vmbr0")
    assert err.status == 403 and "Permission check failed (/sdn/zones/localnetwork/vmbr0, SDN.Use)" in err.message


async def test_create_checks_vm_allocate_and_storage_before_the_config_keys(stock: Stock) -> None:
    """qemu-server 9.1.0 API2/Qemu.pm create_vm 1255-1322: Datastore.AllocateSpace on `storage`,
    then VM.Allocate (a bare "Permission check failed"), then each drive's storage, then the keys."""
    base = {"vmid": 210, "name": "t", "memory": 512, "cores": 2}
    no_allocate = await stock.token("noalloc", role="NoAlloc", privs=TIERZERO.replace("VM.Allocate,", "").replace("VM.Config.Memory,", ""))
    err = await refused(no_allocate, "post", "nodes/pve1/qemu", **base)
    assert err.status == 403 and err.message.rstrip().endswith("Permission check failed")
    no_space = await stock.token("nospace", role="NoSpace", privs="VM.Allocate,VM.Config.CPU")
    err = await refused(no_space, "post", "nodes/pve1/qemu", **base, storage="local-lvm")
    assert err.status == 403 and "Permission check failed (/storage/local-lvm, Datastore.AllocateSpace)" in err.message
    err = await refused(no_space, "post", "nodes/pve1/qemu", **base, scsi0="local-lvm:4")
    assert err.status == 403 and "Permission check failed (/storage/local-lvm, Datastore.AllocateSpace)" in err.message
    err = await refused(no_space, "post", "nodes/pve1/qemu", **base)
    assert err.status == 403 and "Permission check failed (/vms/210, VM.Config.Memory)" in err.message


async def test_startup_needs_sys_modify_on_root(stock: Stock) -> None:
    """qemu-server 9.1.0 API2/Qemu.pm $check_vm_modify_config_perm 984-987; pve-access-control
    9.0.4 RPCEnvironment.pm check 291-305."""
    client = await stock.token("opts", role="Opts", privs=TIERZERO)
    base = {"vmid": 211, "name": "t", "memory": 512}
    err = await refused(client, "post", "nodes/pve1/qemu", **base, startup="order=1")
    assert err.status == 403 and "Permission check failed (/, Sys.Modify)" in err.message
    modify = await stock.token("modify", role="Modify", privs=TIERZERO + ",Sys.Modify")
    assert await run_task(modify, "post", "nodes/pve1/qemu", **base, startup="order=1") == "OK"


# ---------------------------------------------------------------------------- disks and starts

async def _talos_disk(stock: Stock, root: ProxmoxClient) -> str:
    assert await run_task(root, "post", "nodes/pve1/storage/local/download-url", url=stock.image_url(), filename="t.qcow2", content="import") == "OK"
    return "local:import/t.qcow2"


async def test_import_from_is_consumed_into_a_new_disk(stock: Stock) -> None:
    """qemu-server 9.1.0 API2/Qemu.pm 161-280 and 452-566: the source must be an images/import
    volume; the disk is a new volume at the source's size; the cloud-init drive is vm-<id>-cloudinit."""
    root = stock.root()
    source = await _talos_disk(stock, root)
    err = await refused(root, "post", "nodes/pve1/qemu", vmid=202, scsi0="local-lvm:0,import-from=local:iso/x.iso")
    assert err.status == 400 and "local:iso/x.iso has wrong type 'iso' - needs to be 'images' or 'import'" in err.message
    assert await run_task(root, "post", "nodes/pve1/qemu", vmid=202, name="t", scsi0=f"local-lvm:0,import-from={source}",
                          ide2="local-lvm:cloudinit") == "OK"
    config = await root.vm_config("pve1", 202)
    assert config["scsi0"] == "local-lvm:vm-202-disk-0,size=1246M" and config["ide2"] == "local-lvm:vm-202-cloudinit,media=cdrom"
    assert stock.pve.storages["local-lvm"]["volumes"]["vm-202-disk-0"]["image"]["version"] == "v1.13.9"


async def test_import_checks_the_untrusted_source_file(stock: Stock) -> None:
    """pve-storage 9.1.0 Plugin.pm file_size_info 1201-1207 and 1239-1241 (untrusted), called by
    qemu-server 9.1.0 API2/Qemu.pm create_disks 540-543 and by download-url's image check
    (API2/Storage/Status.pm 877-889; pve-common Tools.pm 1852-1853)."""
    root = stock.root()
    status = await run_task(root, "post", "nodes/pve1/qemu", vmid=205, name="t", scsi0="local-lvm:0,import-from=local:import/gone.qcow2")
    assert status == "unable to create VM 205 - failed to stat '/var/lib/vz/import/gone.qcow2'"  # Qemu.pm 1499 "$emsg $err"
    not_qcow2 = f"{stock.factory.url}/image/{'0' * 64}/v1.13.9/nocloud-amd64.raw.xz"  # whatever the factory answers, not a qcow2 image
    stock.pve.fetch_url = lambda url: b"<html>not an image</html>"
    status = await run_task(root, "post", "nodes/pve1/storage/local/download-url", url=not_qcow2, filename="t.qcow2", content="import")
    assert status == "failed to verify file: failed to query file information with qemu-img"


async def test_a_start_reads_the_cloud_init_snippet_from_the_node(stock: Stock) -> None:
    """qemu-server 9.1.0 Cloudinit.pm read_cloudinit_snippets_file 650-659 and pve-storage Storage.pm
    abs_filesystem_path: task errors at start, not at config time."""
    root = stock.root()
    source = await _talos_disk(stock, root)
    await run_task(root, "post", "nodes/pve1/qemu", vmid=203, name="t", scsi0=f"local-lvm:0,import-from={source}", ide2="local-lvm:cloudinit",
                   cicustom="user=local:snippets/t.yaml", net0="virtio=BC:24:11:00:02:03,bridge=vmbr0", kvm=0)
    assert await run_task(root, "post", "nodes/pve1/qemu/203/status/start") == "can't find file 'local:snippets/t.yaml'"
    await root.set_vm_config("pve1", 203, cicustom="user=local:iso/t.yaml")
    assert await run_task(root, "post", "nodes/pve1/qemu/203/status/start") == "local:iso/t.yaml is not in the snippets directory"
    await root.set_vm_config("pve1", 203, cicustom="user=local:snippets/t.yaml")
    await stock.ssh("pve1", "mkdir -p /var/lib/vz/snippets && cat > /var/lib/vz/snippets/t.yaml", input="#cloud-config\n")
    assert await run_task(root, "post", "nodes/pve1/qemu/203/status/start") == "OK"


async def test_kvm_and_the_bridge_are_checked_at_start(stock: Stock) -> None:
    """qemu-server 9.1.0 QemuServer.pm config_to_command 3189-3191 (no /dev/kvm, checked before
    QEMU runs), vm_start_nolock 5767 and 5809; pve-common 9.0.15 Network.pm tap_plug line 131 (a
    bridge the node lacks kills QEMU: only the task log names it)."""
    root = stock.root()
    stock.hosts.hosts["pve1"].kvm = False
    await run_task(root, "post", "nodes/pve1/qemu", vmid=204, name="t", memory=512, net0="virtio,bridge=vmbr1")
    assert await run_task(root, "post", "nodes/pve1/qemu/204/status/start") == KVM_MISSING  # before the bridge
    await root.set_vm_config("pve1", 204, kvm=0)
    upid = await asyncio.to_thread(root._raw, "post", "nodes/pve1/qemu/204/status/start", {})
    with pytest.raises(TaskFailed) as failed:
        await root.wait_task(upid)
    assert failed.value.exitstatus == "start failed: QEMU exited with code 1"
    assert "bridge 'vmbr1' does not exist" in failed.value.log_tail
    await root.set_vm_config("pve1", 204, net0="virtio,bridge=vmbr0")
    assert await run_task(root, "post", "nodes/pve1/qemu/204/status/start") == "OK"


# ---------------------------------------------------------------------------- nodes

async def test_nodes_report_their_hosts_memory_and_the_installers_network(stock: Stock) -> None:
    """pve-installer 9.1.0 Install.pm 1093-1177: vmbr0 on the one NIC, not VLAN aware, no vmbr1;
    the NIC's name is pinned (proxinstall 1920, Sys/Net.pm 24): nic0."""
    root = stock.root()
    memory = (await root.call("get", "nodes/pve1/status"))["memory"]
    host = stock.hosts.hosts["pve1"]
    assert memory["total"] == host.memory_total and memory["free"] == host.memory_available
    bridges = await root.call("get", "nodes/pve1/network", type="any_bridge")
    assert [b["iface"] for b in bridges] == ["vmbr0"] and not bridges[0].get("bridge_vlan_aware")
    assert bridges[0]["bridge_ports"] == "nic0"
    assert [i["iface"] for i in await root.call("get", "nodes/pve1/network", type="eth")] == ["nic0"]


async def test_the_appliance_index_is_the_one_pve_manager_installs(stock: Stock) -> None:
    """pve-manager 9.1.2 debian/postinst 170-173 and aplinfo/aplinfo.dat; Nodes.pm apl_download 1666-1735."""
    root = stock.root()
    offered = {a["template"] for a in await root.call("get", "nodes/pve1/aplinfo")}
    assert "debian-12-standard_12.12-1_amd64.tar.zst" in offered and "debian-12-standard_12.7-1_amd64.tar.zst" not in offered
    err = await refused(root, "post", "nodes/pve1/aplinfo", storage="local", template="debian-12-standard_12.7-1_amd64.tar.zst")
    assert err.status == 400 and "no such template" in err.message
    err = await refused(root, "post", "nodes/pve1/aplinfo", storage="local-lvm", template="debian-12-standard_12.12-1_amd64.tar.zst")
    assert err.status == 500 and "storage 'local-lvm' does not support templates" in err.message


async def test_pveum_refuses_unknown_privileges_roles_and_tokens(stock: Stock) -> None:
    """pve-access-control 9.0.4 Role.pm 97-160, 145 and 222-223, AccessControl.pm 1222-1228 and
    check_token_exist 698-709."""
    bad = await stock.ssh("pve1", ["pveum", "role", "add", "X", "--privs", "VM.Everything"], check=False)
    assert bad.exit_status != 0 and "invalid privilege 'VM.Everything'" in bad.stderr
    no_role = await stock.ssh("pve1", ["pveum", "acl", "modify", "/", "--tokens", "root@pam!t", "--roles", "Nope"], check=False)
    assert "role 'Nope' does not exist" in no_role.stderr
    no_token = await stock.ssh("pve1", ["pveum", "acl", "modify", "/", "--tokens", "root@pam!t", "--roles", "Administrator"], check=False)
    assert "no such token 't' for user 'root@pam'" in no_token.stderr
    builtin = await stock.ssh("pve1", ["pveum", "role", "delete", "PVEAuditor"], check=False)
    assert builtin.exit_status != 0 and builtin.stderr == "auto-generated role 'PVEAuditor' cannot be deleted\n"
    modify = await stock.ssh("pve1", ["pveum", "role", "modify", "PVEAuditor", "--privs", "VM.Audit"], check=False)
    assert modify.stderr == "auto-generated role 'PVEAuditor' cannot be modified\n"


async def test_a_host_downloading_an_unregistered_schematic_gets_the_factorys_404(stock: Stock) -> None:
    """The offline ID alone is not enough: image-factory v1.5.0 serves images only of schematics
    posted with POST /schematics (internal/schematic/storage), and download-url reports wget's
    failure (pve-common 9.0.15 Tools.pm line 1827 and run_command errmsg 545-582: `download failed: `
    and wget's last stderr line, GNU wget http.c "%s ERROR %d: %s.", not the answer's body)."""
    from tierzero.render.talos.schematic import Schematic

    sid = Schematic(official_extensions=("siderolabs/iscsi-tools", "siderolabs/qemu-guest-agent")).id
    url = f"{stock.factory.url}/image/{sid}/v1.13.9/nocloud-amd64.qcow2"
    status = await run_task(stock.root(), "post", "nodes/pve1/storage/local/download-url", url=url, filename="t.qcow2", content="import")
    assert re.fullmatch(r"download failed: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ERROR 404: Not Found\.", status), status
