#!/usr/bin/env bash
# Regenerates Sources/AISaaSProtos from Protos/. Installs protoc from Debian if missing and builds the
# protoc plugins from the package's own pinned dependencies (swift-protobuf, grpc-swift-protobuf).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v protoc >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq protobuf-compiler
fi
# AISAAS_BUILD_CACHE=DIR builds the plugins there, as scripts/test.sh builds the package.
scratch=()
[ -n "${AISAAS_BUILD_CACHE:-}" ] && scratch=(--scratch-path "$AISAAS_BUILD_CACHE")
swift build "${scratch[@]}" --product protoc-gen-swift
swift build "${scratch[@]}" --product protoc-gen-grpc-swift-2
bin="$(swift build "${scratch[@]}" --show-bin-path)"

out=Sources/AISaaSProtos
find "$out" -name '*.pb.swift' -delete
protoc \
    --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
    --plugin=protoc-gen-grpc-swift="$bin/protoc-gen-grpc-swift-2" \
    --proto_path=Protos \
    --proto_path=/usr/include \
    --swift_out="$out" --swift_opt=Visibility=Public \
    --grpc-swift_out="$out" --grpc-swift_opt=Visibility=Public \
    $(find Protos -name "*.proto" | sort)
echo "generated into $out"
