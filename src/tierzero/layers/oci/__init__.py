"""The cloud layer: the OpenTofu module in this directory (*.tf) and the call that applies it."""

from tierzero.layers.oci.layer import CloudLayerResult, apply_cloud_layer, prepare_cloud_layer, read_cloud_outputs

__all__ = ["CloudLayerResult", "apply_cloud_layer", "prepare_cloud_layer", "read_cloud_outputs"]
