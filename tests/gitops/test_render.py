"""The GitOps tree: layout, add-ons, encryption, determinism, and schema validity."""

from __future__ import annotations

import posixpath
from types import SimpleNamespace

import pytest
import yaml

from tierzero.render.gitops import render_gitops_tree
from tierzero.workspace.plan import seal
from tierzero.render.gitops.versions import CHARTS, FLUX_VERSION
from tierzero.render.gitops.flux import components_path

from tierzero.render.validate import ValidationReport
from tierzero.render.validate import validate_tree as _validate_tree

from .conftest import CRDS, blueprint, full_spec

COMPONENTS = components_path("main")
LATER = f"Flux {FLUX_VERSION}'s own manifests, added at deploy"


def validate_tree(files: dict[str, bytes], **kw: object) -> ValidationReport:
    """As `plan --validate` checks a tree for which no checked gotk-components.yaml is at hand."""
    report = _validate_tree(files, supplied={COMPONENTS: LATER}, **kw)  # type: ignore[arg-type]
    report.unverified = [u for u in report.unverified if u != f"{COMPONENTS}: {LATER}"]
    return report


def docs(files: dict[str, bytes], path: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(files[path]) if d]


def find(files: dict[str, bytes], kind: str, name: str | None = None) -> list[tuple[str, dict]]:
    out = []
    for path, data in files.items():
        if path.endswith(".yaml") and posixpath.basename(path) not in ("kustomization.yaml", ".sops.yaml"):
            for doc in yaml.safe_load_all(data):
                if doc and doc.get("kind") == kind and (name is None or doc["metadata"]["name"] == name):
                    out.append((path, doc))
    return out


def render(project, previous=None, facts=None) -> SimpleNamespace:
    """The tree as it is written: rendered, then its Secrets sealed (kept from `previous` when unchanged)."""
    result = render_gitops_tree(project.loaded.platform, project.cluster, project.secrets, project.secrets.recipient(), facts)
    sealed, _ = seal(result.secrets, project.secrets.recipient(), project.secrets.age_key(), previous)
    return SimpleNamespace(files=dict(sorted({**result.files, **sealed}.items())), secrets=len(result.secrets),
                           addons=result.addons, engine=result.engine, notes=result.notes)


@pytest.fixture
def starter(project_factory):
    return project_factory()


def test_starter_tree_layout_and_validity(starter):
    result = render(starter)
    files = result.files
    assert {".sops.yaml", "clusters/main/kustomization.yaml", "clusters/main/flux-system/kustomization.yaml",
            "clusters/main/flux-system/gotk-sync.yaml", "clusters/main/infrastructure.yaml", "clusters/main/apps.yaml",
            "infrastructure/controllers/kustomization.yaml", "infrastructure/configs/kustomization.yaml",
            "apps/kustomization.yaml"} <= set(files)
    report = validate_tree(files, crd_schemas=CRDS)
    assert report.ok, report.problems
    assert report.unverified == []
    assert report.checked >= 12
    assert result.addons == ["cert_manager", "oci_ccm", "ingress_nginx"]
    assert list(files) == sorted(files)


def test_flux_system_is_laid_out_as_flux_bootstrap_does(starter):
    files = render(starter).files
    flux = docs(files, "clusters/main/flux-system/kustomization.yaml")[0]
    assert flux["resources"] == ["gotk-components.yaml", "gotk-sync.yaml"]  # nothing fetched from GitHub by Flux or by tierzero
    assert COMPONENTS not in files  # Flux's own file, added at deploy once checked against its digest
    repo, ks = docs(files, "clusters/main/flux-system/gotk-sync.yaml")
    assert repo["spec"]["url"] == "ssh://git@github.com/example/homelab-platform.git" and repo["spec"]["secretRef"] == {"name": "flux-system"}
    assert ks["spec"]["path"] == "./clusters/main" and ks["spec"]["sourceRef"] == {"kind": "GitRepository", "name": "flux-system"}
    for path in files:
        if path.endswith("kustomization.yaml"):
            assert not any("://" in str(r) for r in docs(files, path)[0].get("resources") or []), path
    report = _validate_tree(files, crd_schemas=CRDS)
    assert report.problems == ["clusters/main/flux-system/kustomization.yaml: resource 'gotk-components.yaml' does not exist"]


def test_flux_kustomizations_order_and_decrypt(starter):
    files = render(starter).files
    ks = {d["metadata"]["name"]: d["spec"] for _, d in find(files, "Kustomization") if d["metadata"]["name"] != "oci-cloud-controller-manager"}
    assert ks["infra-configs"]["dependsOn"] == [{"name": "infra-controllers"}]
    assert ks["apps"]["dependsOn"] == [{"name": "infra-configs"}]
    for name in ("infra-controllers", "infra-configs", "apps"):
        assert ks[name]["decryption"] == {"provider": "sops", "secretRef": {"name": "sops-age"}}
        assert ks[name]["prune"] is True and ks[name]["wait"] is True and ks[name]["interval"]
    assert ks["flux-system"]["path"] == "./clusters/main"


def test_helm_releases_are_pinned(starter):
    files = render(starter).files
    releases = {d["metadata"]["name"]: d for _, d in find(files, "HelmRelease")}
    assert releases["ingress-nginx"]["spec"]["chart"]["spec"]["version"] == CHARTS["ingress_nginx"].version
    oci = {d["metadata"]["name"]: d for _, d in find(files, "OCIRepository")}
    assert oci["cert-manager"]["spec"]["ref"] == {"tag": CHARTS["cert_manager"].version}
    assert releases["cert-manager"]["spec"]["values"]["crds"]["enabled"] is True


def test_spec_version_overrides_the_pinned_chart(project_factory):
    spec = blueprint()
    spec["clusters"][0]["addons"]["ingress_nginx"]["version"] = "4.12.0"
    files = render(project_factory(spec)).files
    (_, release), = find(files, "HelmRelease", "ingress-nginx")
    assert release["spec"]["chart"]["spec"]["version"] == "4.12.0"


def test_oci_load_balancer_stays_flexible_at_10_mbps(starter):
    files = render(starter, facts={"subnet_ocid": "ocid1.subnet.oc1..lbsubnet"}).files
    (_, release), = find(files, "HelmRelease", "ingress-nginx")
    annotations = release["spec"]["values"]["controller"]["service"]["annotations"]
    assert annotations["service.beta.kubernetes.io/oci-load-balancer-shape"] == "flexible"
    assert annotations["service.beta.kubernetes.io/oci-load-balancer-shape-flex-min"] == "10"
    assert annotations["service.beta.kubernetes.io/oci-load-balancer-shape-flex-max"] == "10"
    assert annotations["service.beta.kubernetes.io/oci-load-balancer-subnet1"] == "ocid1.subnet.oc1..lbsubnet"


def test_ccm_config_secret_uses_instance_principals(starter):
    files = render(starter, facts={"compartment_ocid": "ocid1.compartment.oc1..c", "vcn_ocid": "ocid1.vcn.oc1..v"}).files
    path = "infrastructure/controllers/kube-system.oci-cloud-controller-manager.sops.yaml"
    assert b"useInstancePrincipals" not in files[path]
    secret = starter.decrypt(files[path])
    config = yaml.safe_load(secret["stringData"]["cloud-provider.yaml"])
    assert config["useInstancePrincipals"] is True
    assert config["compartment"] == "ocid1.compartment.oc1..c" and config["vcn"] == "ocid1.vcn.oc1..v"
    assert config["auth"] == {"region": "eu-frankfurt-1"}
    (_, repo), = find(files, "GitRepository", "oci-cloud-controller-manager")
    assert repo["spec"]["ref"]["tag"].startswith("v1.")


def test_sops_config_rules(starter):
    files = render(starter).files
    rules = yaml.safe_load(files[".sops.yaml"])["creation_rules"]
    recipient = starter.secrets.recipient()
    assert all(r["age"] == recipient for r in rules)
    assert all(r.get("encrypted_regex") == "^(data|stringData)$" for r in rules)
    assert not any("talos" in r["path_regex"] for r in rules)  # the repository holds no Talos configs
    assert not any(b"AGE-SECRET-KEY" in data for data in files.values())


def test_render_is_deterministic_with_previous(starter, tmp_path):
    first = render(starter).files
    prev = tmp_path / "prev"
    for path, data in first.items():
        (prev / path).parent.mkdir(parents=True, exist_ok=True)
        (prev / path).write_bytes(data)
    second = render(starter, previous=prev).files
    assert second == first


@pytest.mark.parametrize("engine", ["flux", "argocd"])
def test_full_spec_validates_and_never_leaks(project_factory, environ, engine):
    spec, env = full_spec(engine=engine)
    environ(env)
    project = project_factory(spec)
    project.secrets.put("infisical/infisical/client-id", "client-id-canary-0001")
    project.secrets.put("infisical/infisical/client-secret", "client-secret-canary-0002")
    result = render(project)
    files = result.files
    report = validate_tree(files, crd_schemas=CRDS)
    assert report.ok, report.problems
    assert all("external-secrets.io" in u for u in report.unverified), report.unverified  # no oracle schema for ESO
    blob = b"\n".join(files.values())
    for word in (b"TODO", b"REPLACE_ME", b"CHANGEME", b"FIXME"):
        assert not any(word in data for path, data in files.items() if not path.endswith(".sops.yaml"))
    for value in [*env.values(), "client-id-canary-0001", "client-secret-canary-0002"]:
        assert value.encode() not in blob
    # Every Secret decrypts back, with the real sops, to the values the spec references.
    plain = b""
    secrets = [p for p in files if p.endswith(".sops.yaml") and p != ".sops.yaml"]
    assert len(secrets) == result.secrets == 5
    for path in secrets:
        doc = project.decrypt(files[path])
        assert doc["kind"] == "Secret"
        plain += yaml.safe_dump(doc).encode()
    for name in ("TS_ID", "TS_SECRET", "GC_TOKEN", "TSIG"):
        assert env[name].encode() in plain
    assert b"client-secret-canary-0002" in plain


def test_flux_dependencies(project_factory, environ):
    spec, env = full_spec()
    environ(env)
    files = render(project_factory(spec)).files
    (_, ts), = find(files, "HelmRelease", "tailscale-operator")
    assert ts["spec"]["dependsOn"] == [{"name": "cert-manager"}]
    assert not find(files, "ClusterSecretStore")  # no machine identity stored yet: the store waits for deploy


def test_infisical_store_points_at_the_service(project_factory, environ):
    spec, env = full_spec()
    environ(env)
    project = project_factory(spec)
    project.secrets.put("infisical/infisical/client-id", "cid-0001")
    project.secrets.put("infisical/infisical/client-secret", "csecret-0002")
    files = render(project).files
    (_, store), = find(files, "ClusterSecretStore", "infisical")
    infisical = store["spec"]["provider"]["infisical"]
    assert infisical["hostAPI"] == "http://10.10.0.30:8080"
    assert infisical["auth"]["universalAuthCredentials"]["clientSecret"]["key"] == "clientSecret"
    secret = project.decrypt(files["infrastructure/controllers/external-secrets.infisical-universal-auth.sops.yaml"])
    assert secret["stringData"] == {"clientId": "cid-0001", "clientSecret": "csecret-0002"}


def test_infisical_operator_mode(project_factory, environ):
    spec, env = full_spec()
    spec["clusters"][0]["addons"]["infisical"]["mode"] = "infisical-operator"
    environ(env)
    files = render(project_factory(spec)).files
    assert find(files, "HelmRelease", "infisical-operator")
    assert not find(files, "HelmRelease", "external-secrets")


def test_metallb_and_cilium_lb_ipam(project_factory, environ):
    spec, env = full_spec(lb="metallb")
    environ(env)
    files = render(project_factory(spec)).files
    (_, pool), = find(files, "IPAddressPool")
    assert pool["spec"]["addresses"] == ["10.10.0.200-10.10.0.220", "10.10.0.224/28"]
    assert find(files, "L2Advertisement") and find(files, "HelmRelease", "metallb")
    ns = {d["metadata"]["name"]: d for _, d in find(files, "Namespace")}
    assert ns["metallb-system"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"

    spec, env = full_spec(lb="cilium")
    files = render(project_factory(spec)).files
    (_, pool), = find(files, "CiliumLoadBalancerIPPool")
    assert pool["apiVersion"] == "cilium.io/v2"
    assert pool["spec"]["blocks"] == [{"start": "10.10.0.200", "stop": "10.10.0.220"}, {"cidr": "10.10.0.224/28"}]
    (_, policy), = find(files, "CiliumL2AnnouncementPolicy")
    assert policy["apiVersion"] == "cilium.io/v2alpha1" and policy["spec"]["loadBalancerIPs"] is True
    assert not find(files, "HelmRelease", "metallb")


def test_cert_manager_dns01_with_cloudflare(project_factory, environ):
    spec, env = full_spec(cert="dns01", dns="cloudflare")
    environ(env)
    project = project_factory(spec)
    files = render(project).files
    (_, issuer), = find(files, "ClusterIssuer")
    solver = issuer["spec"]["acme"]["solvers"][0]
    assert solver["dns01"]["cloudflare"]["apiTokenSecretRef"] == {"name": "cloudflare-api-token", "key": "api-token"}
    assert solver["selector"] == {"dnsZones": ["example.org"]}
    secret = project.decrypt(files["infrastructure/configs/cert-manager.cloudflare-api-token.sops.yaml"])
    assert secret["stringData"]["api-token"] == env["CF_TOKEN"]
    (_, dns), = find(files, "HelmRelease", "external-dns")
    assert dns["spec"]["values"]["provider"] == {"name": "cloudflare"}
    assert validate_tree(files, crd_schemas=CRDS).ok


def test_http01_issuer_by_default(starter):
    (_, issuer), = find(render(starter).files, "ClusterIssuer")
    assert issuer["spec"]["acme"]["solvers"] == [{"http01": {"ingress": {"ingressClassName": "nginx"}}}]
    assert issuer["spec"]["acme"]["server"].startswith("https://acme-v02.")


def test_argocd_applications(project_factory, environ):
    spec, env = full_spec(engine="argocd")
    environ(env)
    files = render(project_factory(spec)).files
    apps = {d["metadata"]["name"]: d for _, d in find(files, "Application")}
    assert {"root", "argocd", "infra-controllers", "cert-manager", "tailscale-operator", "infra-configs", "apps"} <= set(apps)
    assert not find(files, "HelmRelease") and not find(files, "Kustomization")
    wave = {n: int(a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for n, a in apps.items()}
    assert wave["cert-manager"] < wave["tailscale-operator"] < wave["infra-configs"] < wave["apps"]
    cm = apps["cert-manager"]["spec"]["source"]
    assert cm["targetRevision"] == CHARTS["cert_manager"].version and cm["helm"]["valuesObject"]["crds"]["enabled"] is True
    kust = docs(files, "clusters/main/argocd/kustomization.yaml")[0]
    assert any(r.startswith("https://raw.githubusercontent.com/argoproj/argo-cd/v") for r in kust["resources"])


def test_gitops_path_prefix_and_ssh_repo(project_factory):
    spec = blueprint()
    spec["clusters"][0]["gitops"].update(repo_url="git@github.com:example/platform.git", path="k8s/homelab")
    files = render(project_factory(spec)).files
    (_, repo), = find(files, "GitRepository", "flux-system")
    assert repo["spec"]["url"] == "ssh://git@github.com/example/platform.git"
    assert repo["spec"]["secretRef"] == {"name": "flux-system"}
    (_, ks), = find(files, "Kustomization", "infra-controllers")
    assert ks["spec"]["path"] == "./k8s/homelab/infrastructure/controllers"


def test_env_reference_unset_names_the_variable(project_factory, monkeypatch):
    spec, env = full_spec()
    for name in env:
        monkeypatch.delenv(name, raising=False)
    project = project_factory(spec)
    with pytest.raises(Exception) as info:
        render(project)
    assert "TS_ID" in str(info.value)
