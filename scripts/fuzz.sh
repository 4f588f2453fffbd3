#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, with AddressSanitizer) of the parsers of untrusted input:
# JSON, multipart/form-data and Server-Sent Events (Sources/WireFormats, which depends on nothing,
# so it is compiled here with swiftc alone). Each fuzzer runs for SECONDS (default 20) from the
# seeds in fuzz/seeds/<name> and the corpus it grows in .build/fuzz-corpus/<name>; a crash stops
# the script, the input that caused it saved as .build/fuzz-corpus/crash-*.
#   scripts/fuzz.sh [SECONDS] [FuzzJSON|FuzzMultipart|FuzzServerSentEvents ...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(FuzzJSON FuzzMultipart FuzzServerSentEvents)

build=$(mktemp -d /tmp/aisaas-fuzz.XXXXXX)
trap 'rm -rf "$build"' EXIT
flags=(-O -sanitize=fuzzer,address -parse-as-library)
swiftc "${flags[@]}" -emit-module -emit-library -static -module-name WireFormats \
    -emit-module-path "$build/WireFormats.swiftmodule" -o "$build/libWireFormats.a" Sources/WireFormats/*.swift
for target in "${targets[@]}"; do
    # The linker warns about every sanitizer symbol it cannot export; only errors matter.
    swiftc "${flags[@]}" -I "$build" -L "$build" -lWireFormats "fuzz/$target.swift" -o "$build/$target" 2> >(grep -v "Cannot export local symbol" >&2)
    corpus=".build/fuzz-corpus/$target"
    mkdir -p "$corpus"
    echo "== $target for ${seconds}s"
    "$build/$target" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 -artifact_prefix=.build/fuzz-corpus/ \
        "$corpus" "fuzz/seeds/$target" 2>&1 | tail -n 8
done
