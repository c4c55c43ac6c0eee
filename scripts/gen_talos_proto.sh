#!/usr/bin/env bash
# Regenerate the Python modules for tierzero's reduced Talos machine API protos.
# Needs grpcio-tools (in the `test` extras). Runtime never runs this: the generated
# modules are committed next to the .proto files.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
pkg_dir="src/tierzero/adapters/talos_proto"

cd "$root/src"
"$python" -m grpc_tools.protoc \
  -I . \
  --python_out=. \
  --pyi_out=. \
  --grpc_python_out=. \
  tierzero/adapters/talos_proto/common.proto \
  tierzero/adapters/talos_proto/machine.proto

# protoc writes absolute imports rooted at the include path; make them package-relative
# so the modules work wherever the package is installed.
cd "$root/$pkg_dir"
sed -i -E 's/^from tierzero\.adapters\.talos_proto import ([a-z_]+_pb2)/from . import \1/' \
  common_pb2.py machine_pb2.py machine_pb2_grpc.py machine_pb2.pyi common_pb2.pyi
rm -f common_pb2_grpc.py  # common has no services
echo "regenerated $pkg_dir"
