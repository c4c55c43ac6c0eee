"""clusters[].addons: what the GitOps tree installs, each with the settings it needs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tierzero.spec.base import Model
from tierzero.spec.refs import SecretRef

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class Addon(Model):
    enabled: bool = True
    version: str | None = Field(default=None, description="override the pinned chart version")


class CertManager(Addon):
    acme_email: str = Field(pattern=EMAIL)
    acme_server: Literal["production", "staging"] = "production"
    cloudflare_api_token: SecretRef | None = Field(default=None, description="enables DNS-01 through Cloudflare")
    dns_zones: list[str] = Field(default_factory=list, description="zones the DNS-01 solver serves")


class TailscaleOperator(Addon):
    oauth_client_id: SecretRef
    oauth_client_secret: SecretRef
    hostname: str = "tierzero-operator"
    tags: list[str] = Field(default_factory=lambda: ["tag:k8s-operator"])


class OciCcm(Addon):
    use_instance_principals: bool = True
    load_balancer_subnet: str | None = Field(default=None, description="subnet OCID for load balancers; default the cluster subnet")


class GrafanaAlloy(Addon):
    prometheus_url: str = Field(pattern=r"^https://")
    loki_url: str = Field(pattern=r"^https://")
    username: str
    token: SecretRef


class MetalLB(Addon):
    implementation: Literal["metallb", "cilium"] = Field(default="cilium", description="MetalLB, or Cilium LB-IPAM with L2 announcements")
    addresses: list[str] = Field(min_length=1, description="address ranges like 10.10.0.200-10.10.0.220 or CIDRs")
    interfaces: list[str] = Field(default_factory=lambda: ["^eth[0-9]+"])


class Rfc2136(Model):
    host: str
    port: int = Field(default=53, ge=1, le=65535)
    zone: str
    tsig_keyname: str
    tsig_secret: SecretRef
    tsig_algorithm: Literal["hmac-sha256", "hmac-sha512", "hmac-sha1"] = "hmac-sha256"


class ExternalDns(Addon):
    provider: Literal["rfc2136", "cloudflare"]
    domain_filters: list[str] = Field(min_length=1)
    rfc2136: Rfc2136 | None = None
    cloudflare_api_token: SecretRef | None = None

    @model_validator(mode="after")
    def _provider_settings(self) -> "ExternalDns":
        if self.provider == "rfc2136" and self.rfc2136 is None:
            raise ValueError("provider rfc2136 needs an `rfc2136` block")
        if self.provider == "cloudflare" and self.cloudflare_api_token is None:
            raise ValueError("provider cloudflare needs `cloudflare_api_token`")
        return self


class IngressNginx(Addon):
    service_type: Literal["LoadBalancer", "NodePort"] = "LoadBalancer"
    default_class: bool = True


class InfisicalWiring(Addon):
    service: str = Field(description="name of an infisical entry in services[]")
    mode: Literal["infisical-operator", "external-secrets"] = "external-secrets"
    project_slug: str = "platform"
    environment: str = "prod"


class Addons(Model):
    cert_manager: CertManager | None = None
    tailscale_operator: TailscaleOperator | None = None
    oci_ccm: OciCcm | None = None
    grafana_alloy: GrafanaAlloy | None = None
    metallb: MetalLB | None = None
    external_dns: ExternalDns | None = None
    ingress_nginx: IngressNginx | None = None
    infisical: InfisicalWiring | None = None

    def enabled(self) -> dict[str, Addon]:
        """Enabled add-ons by their spec key, in a stable order."""
        return {k: v for k, v in ((k, getattr(self, k)) for k in type(self).model_fields) if v is not None and v.enabled}
