"""tierzero: one spec to a GitOps-managed Talos Kubernetes platform on Proxmox VE, at $0."""

__version__ = "0.1.0"
