"""The built-in resources a stock Kubernetes v1.36 API server serves: every kind of a GA
(`v<N>`) API version, with its plural and scope. Beta and alpha APIs are left out: a stock
cluster serves no new beta API by default since v1.24 (KEP-3136, "Beta APIs Off by Default") and
no alpha one. Subresources (`pods/log`, `deployments/scale`) are not objects and are left out.

Source: the group/version/kind list of Kubernetes v1.36's OpenAPI (kubernetes-validate 1.37.0,
`kubernetes-json-schema/v1.36.0-local/_definitions.json`, x-kubernetes-group-version-kind), with
the plural and scope lightkube-models 1.37.0.8 generated from the same OpenAPI (`_api_info.plural`,
NamespacedResource or GlobalResource). tests/sandbox/test_kube_rules.py derives the table again
from both and compares.
"""

from __future__ import annotations

KUBERNETES_VERSION = "v1.36"

# apiVersion kind plural scope
_TABLE = """
    admissionregistration.k8s.io/v1 MutatingAdmissionPolicy          mutatingadmissionpolicies         Cluster
    admissionregistration.k8s.io/v1 MutatingAdmissionPolicyBinding   mutatingadmissionpolicybindings   Cluster
    admissionregistration.k8s.io/v1 MutatingWebhookConfiguration     mutatingwebhookconfigurations     Cluster
    admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy        validatingadmissionpolicies       Cluster
    admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding validatingadmissionpolicybindings Cluster
    admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration   validatingwebhookconfigurations   Cluster
    apiextensions.k8s.io/v1         CustomResourceDefinition         customresourcedefinitions         Cluster
    apiregistration.k8s.io/v1       APIService                       apiservices                       Cluster
    apps/v1                         ControllerRevision               controllerrevisions               Namespaced
    apps/v1                         DaemonSet                        daemonsets                        Namespaced
    apps/v1                         Deployment                       deployments                       Namespaced
    apps/v1                         ReplicaSet                       replicasets                       Namespaced
    apps/v1                         StatefulSet                      statefulsets                      Namespaced
    authentication.k8s.io/v1        SelfSubjectReview                selfsubjectreviews                Cluster
    authentication.k8s.io/v1        TokenReview                      tokenreviews                      Cluster
    authorization.k8s.io/v1         LocalSubjectAccessReview         localsubjectaccessreviews         Namespaced
    authorization.k8s.io/v1         SelfSubjectAccessReview          selfsubjectaccessreviews          Cluster
    authorization.k8s.io/v1         SelfSubjectRulesReview           selfsubjectrulesreviews           Cluster
    authorization.k8s.io/v1         SubjectAccessReview              subjectaccessreviews              Cluster
    autoscaling/v1                  HorizontalPodAutoscaler          horizontalpodautoscalers          Namespaced
    autoscaling/v2                  HorizontalPodAutoscaler          horizontalpodautoscalers          Namespaced
    batch/v1                        CronJob                          cronjobs                          Namespaced
    batch/v1                        Job                              jobs                              Namespaced
    certificates.k8s.io/v1          CertificateSigningRequest        certificatesigningrequests        Cluster
    coordination.k8s.io/v1          Lease                            leases                            Namespaced
    discovery.k8s.io/v1             EndpointSlice                    endpointslices                    Namespaced
    events.k8s.io/v1                Event                            events                            Namespaced
    flowcontrol.apiserver.k8s.io/v1 FlowSchema                       flowschemas                       Cluster
    flowcontrol.apiserver.k8s.io/v1 PriorityLevelConfiguration       prioritylevelconfigurations       Cluster
    networking.k8s.io/v1            IPAddress                        ipaddresses                       Cluster
    networking.k8s.io/v1            Ingress                          ingresses                         Namespaced
    networking.k8s.io/v1            IngressClass                     ingressclasses                    Cluster
    networking.k8s.io/v1            NetworkPolicy                    networkpolicies                   Namespaced
    networking.k8s.io/v1            ServiceCIDR                      servicecidrs                      Cluster
    node.k8s.io/v1                  RuntimeClass                     runtimeclasses                    Cluster
    policy/v1                       PodDisruptionBudget              poddisruptionbudgets              Namespaced
    rbac.authorization.k8s.io/v1    ClusterRole                      clusterroles                      Cluster
    rbac.authorization.k8s.io/v1    ClusterRoleBinding               clusterrolebindings               Cluster
    rbac.authorization.k8s.io/v1    Role                             roles                             Namespaced
    rbac.authorization.k8s.io/v1    RoleBinding                      rolebindings                      Namespaced
    resource.k8s.io/v1              DeviceClass                      deviceclasses                     Cluster
    resource.k8s.io/v1              ResourceClaim                    resourceclaims                    Namespaced
    resource.k8s.io/v1              ResourceClaimTemplate            resourceclaimtemplates            Namespaced
    resource.k8s.io/v1              ResourceSlice                    resourceslices                    Cluster
    scheduling.k8s.io/v1            PriorityClass                    priorityclasses                   Cluster
    storage.k8s.io/v1               CSIDriver                        csidrivers                        Cluster
    storage.k8s.io/v1               CSINode                          csinodes                          Cluster
    storage.k8s.io/v1               CSIStorageCapacity               csistoragecapacities              Namespaced
    storage.k8s.io/v1               StorageClass                     storageclasses                    Cluster
    storage.k8s.io/v1               VolumeAttachment                 volumeattachments                 Cluster
    storage.k8s.io/v1               VolumeAttributesClass            volumeattributesclasses           Cluster
    v1                              Binding                          bindings                          Namespaced
    v1                              ComponentStatus                  componentstatuses                 Cluster
    v1                              ConfigMap                        configmaps                        Namespaced
    v1                              Endpoints                        endpoints                         Namespaced
    v1                              Event                            events                            Namespaced
    v1                              LimitRange                       limitranges                       Namespaced
    v1                              Namespace                        namespaces                        Cluster
    v1                              Node                             nodes                             Cluster
    v1                              PersistentVolume                 persistentvolumes                 Cluster
    v1                              PersistentVolumeClaim            persistentvolumeclaims            Namespaced
    v1                              Pod                              pods                              Namespaced
    v1                              PodTemplate                      podtemplates                      Namespaced
    v1                              ReplicationController            replicationcontrollers            Namespaced
    v1                              ResourceQuota                    resourcequotas                    Namespaced
    v1                              Secret                           secrets                           Namespaced
    v1                              Service                          services                          Namespaced
    v1                              ServiceAccount                   serviceaccounts                   Namespaced
"""

BUILTIN: dict[tuple[str, str], tuple[str, bool]] = {
    (api, kind): (plural, scope == "Namespaced") for api, kind, plural, scope in (line.split() for line in _TABLE.strip().splitlines())
}
