"""The scheduled etcd backup (spec: clusters[].etcd_backups.schedule): siderolabs/talos-backup as a
CronJob in the GitOps tree, with the Talos ServiceAccount that lets it call the Talos API, and the S3
credentials as a SOPS-encrypted Secret. The control planes get the machine-config side from
`talos_api_access_patch` (render/talos_spec.py applies it).

Facts (siderolabs/talos-backup at tag v0.1.0-beta.3, the latest release):
- Image ghcr.io/siderolabs/talos-backup:v0.1.0-beta.3, linux/amd64 and linux/arm64 (Makefile
  REGISTRY/USERNAME, .kres.yaml image-talos-backup PLATFORM); the binary is /talos-backup
  (cronjob.sample.yaml `command`).
- Environment (pkg/config/service.go): BUCKET, AWS_REGION, CUSTOM_S3_ENDPOINT, S3_PREFIX,
  CLUSTER_NAME, AGE_X25519_PUBLIC_KEY, USE_PATH_STYLE, DISABLE_ENCRYPTION; the keys come the AWS SDK
  for Go v2's way (config.LoadDefaultConfig: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; pkg/s3/s3.go).
  ENABLE_COMPRESSION exists only after this release (commit 3022fec), so it is not set.
- USE_PATH_STYLE is inverted in this release: path-style addressing is on when the variable is the
  string "false" (`UsePathStyle: os.Getenv(usePathStyleEnvVar) == "false"`, commit 1e05599), and
  it applies with CUSTOM_S3_ENDPOINT only. tierzero addresses buckets path-style everywhere
  (adapters/s3_objects.py; MinIO needs it), so it renders USE_PATH_STYLE: "false".
- The snapshot is written to the working directory, then `<S3_PREFIX>/<CLUSTER_NAME>-<RFC 3339>.snap.age`
  is uploaded (pkg/talos/talos.go, pkg/s3/s3.go); the sample mounts an emptyDir at /tmp as workingDir.
- Talos API credentials: a `talos.dev/v1alpha1` ServiceAccount with `spec.roles`; Talos writes a
  Secret of the same name holding a talosconfig, which the pod mounts at /var/run/secrets/talos.dev
  (cronjob.sample.yaml; Talos docs "Talos API access from Kubernetes", talosctl inject serviceaccount).
  The role needed for EtcdSnapshot is os:etcd:backup (talos-backup README). The sample's extra v1
  Secret annotated kubernetes.io/service-account.name is not rendered: Talos' controller owns that
  Secret, and Kubernetes' token controller would treat the annotation as a token request for a
  Kubernetes ServiceAccount that does not exist.
"""

from __future__ import annotations

from typing import Any

from tierzero.errors import InputError
from tierzero.render.gitops.component import Component, ConfigOnly, Manifest, RenderContext, secret

IMAGE = "ghcr.io/siderolabs/talos-backup:v0.1.0-beta.3"
NAME = "talos-backup"
TALOS_SECRET = "talos-backup-talos"  # the Talos ServiceAccount, and the Secret Talos writes for it
S3_SECRET = "talos-backup-s3"
ROLE = "os:etcd:backup"
TALOS_SECRETS_MOUNT = "/var/run/secrets/talos.dev"
SCHEDULED_DIR = "scheduled"  # under the cluster's prefix; tierzero.adapters.snapshot_bucket reads it back


def talos_service_account(namespace: str) -> Manifest:
    return {"apiVersion": "talos.dev/v1alpha1", "kind": "ServiceAccount", "metadata": {"name": TALOS_SECRET, "namespace": namespace},
            "spec": {"roles": [ROLE]}}


def cron_job(ctx: RenderContext) -> Manifest:
    backups = ctx.cluster.etcd_backups
    bucket = backups.bucket
    assert bucket is not None and backups.schedule is not None
    env: list[dict[str, Any]] = [
        {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": "AWS_ACCESS_KEY_ID"}}},
        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": "AWS_SECRET_ACCESS_KEY"}}},
        {"name": "AWS_REGION", "value": bucket.region},
        {"name": "CUSTOM_S3_ENDPOINT", "value": bucket.endpoint.rstrip("/")},
        {"name": "USE_PATH_STYLE", "value": "false"},  # sic: path-style in v0.1.0-beta.3 (module docstring)
        {"name": "BUCKET", "value": bucket.bucket},
        {"name": "S3_PREFIX", "value": f"{backups.prefix(ctx.cluster.name)}/{SCHEDULED_DIR}"},
        {"name": "CLUSTER_NAME", "value": ctx.cluster.name},
        {"name": "AGE_X25519_PUBLIC_KEY", "value": ctx.recipient},
    ]
    container = {
        "name": NAME,
        "image": IMAGE,
        "command": ["/talos-backup"],
        "workingDir": "/tmp",
        "env": env,
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "talos-secrets", "mountPath": TALOS_SECRETS_MOUNT, "readOnly": True}],
    }
    pod = {
        "restartPolicy": "OnFailure",
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "talos-secrets", "secret": {"secretName": TALOS_SECRET}}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": NAME, "namespace": backups.namespace},
        "spec": {
            "schedule": backups.schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",  # one snapshot at a time; a slow upload never doubles up
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {"backoffLimit": 3, "template": {"metadata": {"labels": {"app.kubernetes.io/name": NAME}}, "spec": pod}}},
        },
    }


def build(ctx: RenderContext) -> list[Component]:
    """The talos-backup component of a cluster with `etcd_backups.schedule`, else nothing."""
    backups = ctx.cluster.etcd_backups
    if backups.schedule is None:
        return []
    bucket = backups.bucket
    assert bucket is not None  # the spec refuses a schedule without a bucket
    if not ctx.recipient:
        raise InputError(f"clusters[{ctx.cluster.name}].etcd_backups.schedule: no age recipient to encrypt the scheduled snapshots to",
                         hint="run `tierzero init` to create the workspace age key")
    keys = {"AWS_ACCESS_KEY_ID": ctx.secrets.resolve(bucket.access_key), "AWS_SECRET_ACCESS_KEY": ctx.secrets.resolve(bucket.secret_key)}
    return [Component(
        name=NAME,
        namespace=backups.namespace,
        source=ConfigOnly(),
        configs=[talos_service_account(backups.namespace), cron_job(ctx)],
        config_secrets=[secret(S3_SECRET, backups.namespace, keys)],
    )]


def talos_api_access_patch(namespace: str, multidoc: bool) -> dict[str, Any]:
    """The control-plane machine-config patch that lets pods in `namespace` get os:etcd:backup credentials.
    Contract < v1.14: `machine.features.kubernetesTalosAPIAccess{enabled, allowedRoles,
    allowedKubernetesNamespaces}` (v1alpha1.KubernetesTalosAPIAccessConfig in the official schemas v1.11-v1.13).
    From v1.14 that field is gone from v1alpha1 and the setting is its own document, `KubeTalosAPIAccessConfig`
    {allowedRoles, allowedKubernetesNamespaces} (k8s.KubeTalosAPIAccessConfigV1Alpha1 in the v1.14 and v1.15
    schemas, which have no `enabled` in it: the document itself is the switch)."""
    if multidoc:
        return {"apiVersion": "v1alpha1", "kind": "KubeTalosAPIAccessConfig", "allowedRoles": [ROLE], "allowedKubernetesNamespaces": [namespace]}
    return {"machine": {"features": {"kubernetesTalosAPIAccess": {"enabled": True, "allowedRoles": [ROLE], "allowedKubernetesNamespaces": [namespace]}}}}
