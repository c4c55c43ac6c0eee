"""Native Talos machine-config generation: secrets, configs, patches, client material, schematics."""
