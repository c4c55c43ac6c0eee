"""Grafana Alloy shipping metrics and pod logs to Grafana Cloud; the token stays in a Secret."""

from __future__ import annotations

import json

from tierzero.render.gitops.component import Component, RenderContext, secret
from tierzero.render.gitops.versions import chart
from tierzero.spec.addons import GrafanaAlloy

NAMESPACE = "alloy"
TOKEN_SECRET = "grafana-cloud"
TOKEN_ENV = "GRAFANA_CLOUD_TOKEN"


def alloy_config(spec: GrafanaAlloy, cluster: str) -> str:
    """Alloy configuration: scrape annotated pods, tail pod logs via the API, write both out."""
    url_p, url_l, user = json.dumps(spec.prometheus_url), json.dumps(spec.loki_url), json.dumps(spec.username)
    label = json.dumps(cluster)
    return f"""discovery.kubernetes "pods" {{
  role = "pod"
}}

prometheus.scrape "pods" {{
  targets    = discovery.kubernetes.pods.targets
  forward_to = [prometheus.remote_write.grafana_cloud.receiver]
}}

prometheus.remote_write "grafana_cloud" {{
  external_labels = {{ cluster = {label} }}
  endpoint {{
    url = {url_p}
    basic_auth {{
      username = {user}
      password = sys.env("{TOKEN_ENV}")
    }}
  }}
}}

loki.source.kubernetes "pods" {{
  targets    = discovery.kubernetes.pods.targets
  forward_to = [loki.write.grafana_cloud.receiver]
}}

loki.write "grafana_cloud" {{
  external_labels = {{ cluster = {label} }}
  endpoint {{
    url = {url_l}
    basic_auth {{
      username = {user}
      password = sys.env("{TOKEN_ENV}")
    }}
  }}
}}
"""


def build(ctx: RenderContext) -> list[Component]:
    spec: GrafanaAlloy = ctx.cluster.addons.grafana_alloy  # type: ignore[assignment]
    token = secret(TOKEN_SECRET, NAMESPACE, {"token": ctx.secrets.resolve(spec.token)})
    values = {
        "alloy": {
            "configMap": {"create": True, "content": alloy_config(spec, ctx.cluster.name)},
            "extraEnv": [{"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": TOKEN_SECRET, "key": "token"}}}],
        },
        "controller": {"type": "deployment", "replicas": 1},
    }
    return [Component(name="alloy", namespace=NAMESPACE, source=chart("grafana_alloy", spec.version), values=values, secrets=[token])]
