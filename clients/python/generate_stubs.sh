#!/bin/sh
# Generates the Python message and gRPC stubs the client imports
# (sessionmanager.v1.*, buf.validate.*, google.rpc.error_details_pb2) into DIR:
#
#   clients/python/generate_stubs.sh DIR
#   PYTHONPATH=DIR:clients/python python3 your_worker.py
#
# Needs protoc, grpc_python_plugin and the well-known protos in /usr/include
# (Debian: protobuf-compiler-grpc, libprotobuf-dev), like the e2e test.
set -eu
if [ $# -ne 1 ]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
out=$1
root=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
plugin=$(command -v grpc_python_plugin) || { echo "grpc_python_plugin not found (Debian: protobuf-compiler-grpc)" >&2; exit 1; }
mkdir -p "$out"
cd "$root"
exec protoc -I proto -I proto-vendor -I /usr/include \
  --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$plugin" \
  sessionmanager/v1/session.proto \
  sessionmanager/v1/session_manager_service.proto \
  buf/validate/validate.proto \
  google/rpc/error_details.proto
