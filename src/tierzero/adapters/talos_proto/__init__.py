"""Generated Python modules for tierzero's reduced Talos machine API (see the .proto files;
regenerate with scripts/gen_talos_proto.sh)."""
