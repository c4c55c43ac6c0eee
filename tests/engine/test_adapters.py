"""The Kubernetes and OCI adapters, through the official clients, against the stand-ins."""

from __future__ import annotations

import datetime as dt

from collections.abc import Iterator

import pytest

from tierzero.adapters.connections import Connections, Endpoint
from tierzero.adapters.kubernetes import Kube, plural_of
from tierzero.adapters.oci import InstanceInfo, Oci, throwaway_signer
from tierzero.adapters.retry import Policy, RetryExhausted
from tierzero.sandbox.kubernetes import KubeApiServer, KubeState, node_object
from tierzero.sandbox.oci import OciApiServer, OciState, instance


@pytest.fixture
def kube_server() -> Iterator[KubeApiServer]:
    state = KubeState([node_object("cp-1", "10.10.0.11", "controlplane"), node_object("w-1", "10.10.0.21")], fail_first=2)
    server = KubeApiServer(state).start()
    yield server
    server.stop()


def _kube(server: KubeApiServer) -> Kube:
    conns = Connections(target="sandbox")
    conns.add("kubernetes", "main", Endpoint("127.0.0.1", server.port, scheme="http", verify=False, extra={"token": "sandbox"}))
    return Kube.connect(conns, "main")


def test_kube_waits_for_api_then_lists_nodes(kube_server: KubeApiServer) -> None:
    kube = _kube(kube_server)
    retries: list = []
    version = kube.wait_for_api(policy=Policy(base=0.01, cap=0.02, deadline=5), on_retry=lambda a, c, d: retries.append(c))
    assert version == "v1.36.2" and len(retries) == 2 and "503" in retries[0]
    nodes = {n.name: n for n in kube.nodes()}
    assert nodes["cp-1"].ready and nodes["cp-1"].roles == ("control-plane",) and nodes["w-1"].ready


def test_kube_wait_gives_up_at_deadline() -> None:
    server = KubeApiServer(KubeState(fail_first=10_000)).start()
    try:
        with pytest.raises(RetryExhausted, match="Kubernetes API"):
            _kube(server).wait_for_api(policy=Policy(base=0.01, cap=0.02, deadline=0.2))
    finally:
        server.stop()


def test_kube_apply_create_replace_and_flux_conditions(kube_server: KubeApiServer) -> None:
    kube = _kube(kube_server)
    kube_server.state.fail_first = 0
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}
    assert kube.apply(ns)[0] == "created"
    assert kube.apply(ns)[0] == "unchanged"
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "apps"}, "stringData": {"k": "v"}}
    assert kube.apply(secret)[0] == "created"
    secret["stringData"] = {"k": "w"}
    action, obj = kube.apply(secret)
    assert action == "replaced" and obj["metadata"]["generation"] == 2
    ks = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
          "metadata": {"name": "platform", "namespace": "flux-system"}, "spec": {"path": "./platform", "interval": "10m"}}
    assert kube.list("kustomize.toolkit.fluxcd.io/v1", "Kustomization", None) == []  # no CRD yet: the kind is unknown
    kube.apply({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "kustomizations.kustomize.toolkit.fluxcd.io"},
                "spec": {"group": "kustomize.toolkit.fluxcd.io", "scope": "Namespaced", "names": {"kind": "Kustomization", "plural": "kustomizations"},
                         "versions": [{"name": "v1", "served": True, "storage": True}]}})
    assert kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}})[0] == "created"
    assert kube.apply(ks)[0] == "created"
    assert kube.conditions("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "platform") == {}  # no controller ran
    kube_server.state.write_status("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "platform", "flux-system",
                                   {"conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded"}]})
    assert kube.is_ready("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "platform")
    # `flux reconcile` nudges with a merge patch of one annotation: the rest of the object stays.
    patched = kube.patch("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "platform", "flux-system",
                         {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "now"}}})
    assert patched["metadata"]["annotations"] == {"reconcile.fluxcd.io/requestedAt": "now"} and patched["spec"]["path"] == "./platform"
    assert kube.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "platform", "flux-system")["metadata"]["annotations"]
    assert kube.get("helm.toolkit.fluxcd.io/v2", "HelmRelease", "nope", "flux-system") is None
    assert kube.delete(secret) and not kube.delete(secret)
    assert plural_of("HelmRelease") == "helmreleases" and plural_of("Policy") == "policies"


def test_oci_reads_instances_budgets_and_cost_through_sdk() -> None:
    comp = "ocid1.compartment.oc1..x"
    state = OciState([instance("a1-1", "VM.Standard.A1.Flex", 1, 6, "AD-1", comp, "eu-frankfurt-1")],
                     [{"id": "ocid1.budget.oc1..b", "displayName": "tierzero", "amount": 1.0, "lifecycleState": "ACTIVE",
                       "actualSpend": 0.0, "compartmentId": comp, "resetPeriod": "MONTHLY"}])
    server = OciApiServer(state).start()
    try:
        endpoint = Endpoint("127.0.0.1", server.port, scheme="http", extra={"signer": throwaway_signer(), "region": "eu-frankfurt-1"})
        client = Oci(endpoint, region="eu-frankfurt-1", tenancy="ocid1.tenancy.oc1..t")
        insts = client.instances(comp)
        assert [(i.name, i.state, i.ocpus, i.memory_gb) for i in insts] == [("a1-1", "RUNNING", 1.0, 6.0)]
        assert client.budgets()[0]["amount"] == 1.0
        assert client.cost_this_month() == (0.0, "USD")
        assert "POST /20200107/usage" in state.requests and "GET /20160918/instances" in state.requests
    finally:
        server.stop()


def test_live_instances_are_judged_by_the_limits_in_force_that_day() -> None:
    from tierzero.phases.validate import free_tier_problems

    old_design = [InstanceInfo(f"a1-{i}", f"i{i}", "VM.Standard.A1.Flex", "RUNNING", 1.33, 8, "AD-1") for i in range(3)]
    assert free_tier_problems(old_design, on=dt.date(2026, 6, 14)) == []  # 4 OCPU / 24 GB allowance
    after = free_tier_problems(old_design, on=dt.date(2026, 6, 15))  # halved to 2 OCPU / 12 GB
    assert after and all("/month" in line for line in after), after
    fits = [InstanceInfo("a1", "i", "VM.Standard.A1.Flex", "RUNNING", 2, 12, "AD-1"),
            InstanceInfo("old", "t", "VM.Standard.A1.Flex", "TERMINATED", 4, 24, "AD-1")]
    assert free_tier_problems(fits, on=dt.date(2026, 11, 22)) == []
    paid = [InstanceInfo("y", "j", "VM.Standard.E4.Flex", "RUNNING", 1, 8, "AD-1")]
    assert any("E4.Flex" in line for line in free_tier_problems(paid, on=dt.date(2026, 11, 22)))


def test_kube_over_tls_verifies_the_stand_in_certificate(tmp_path) -> None:
    server = KubeApiServer(KubeState([node_object("cp-1")]), tls_dir=tmp_path).start()
    try:
        good = Connections(target="sandbox")
        good.add("kubernetes", "main", Endpoint("127.0.0.1", server.port, verify=server.ca_file))
        assert [n.name for n in Kube.connect(good, "main").nodes()] == ["cp-1"]
        bad = Connections(target="sandbox")
        bad.add("kubernetes", "main", Endpoint("127.0.0.1", server.port, verify=True))  # system CAs only
        with pytest.raises(Exception, match="(?i)certificate|ssl"):
            Kube.connect(bad, "main").version()
    finally:
        server.stop()


def test_kube_prefers_the_kubeconfig_once_it_exists(tmp_path, kube_server: KubeApiServer) -> None:
    import yaml

    kube_server.state.fail_first = 0
    path = tmp_path / "kubeconfig"
    conns = Connections(target="real")
    conns.add("kubernetes", "main", Endpoint("127.0.0.1", 1, extra={"kubeconfig": str(path)}))  # nothing listens on port 1
    first = Kube.connect(conns, "main")
    assert not first.uses_kubeconfig
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "admin@main",
        "clusters": [{"name": "main", "cluster": {"server": kube_server.url}}],
        "users": [{"name": "admin", "user": {"token": "t"}}],
        "contexts": [{"name": "admin@main", "context": {"cluster": "main", "user": "admin"}}],
    }))
    again = Kube.connect(conns, "main")
    assert again is not first and again.uses_kubeconfig and again.version() == "v1.36.2"


def test_the_sandbox_keeps_its_oci_api_key_and_starts_without_the_sdk(tmp_path) -> None:
    """The throwaway signing key is made once per workspace (0600) and the OCI stand-in starts
    without importing the SDK: only the check that calls OCI loads it."""
    import json as _json
    import subprocess
    import sys

    from tierzero.sandbox.oci import throwaway_key

    key = throwaway_key(tmp_path)
    assert key.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----") and (key.stat().st_mode & 0o777) == 0o600
    before = key.read_bytes()
    assert throwaway_key(tmp_path) == key and key.read_bytes() == before
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from tierzero.sandbox.oci import throwaway_key\n"
        f"throwaway_key(Path({str(tmp_path)!r}))\n"
        "print(json.dumps([m for m in ('oci', 'kubernetes') if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert _json.loads(out.strip().splitlines()[-1]) == []
