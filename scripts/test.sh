#!/usr/bin/env bash
# Runs every test suite on a fresh machine: installs what the tests need from the Debian packages
# (PostgreSQL, ffmpeg, Prometheus, etcd, iproute2, curl, python3-venv) and a Python virtual environment with the official `openai`
# package from PyPI, starts a throwaway PostgreSQL cluster on a free loopback port, and runs
# `swift test` against SQLite and PostgreSQL. Extra arguments go to `swift test` (e.g. --filter X).
# AISAAS_BUILD_CACHE=DIR keeps the build outside the clone; AISAAS_PYTHON_VENV=DIR puts the
# virtual environment elsewhere than ~/.cache/aisaas/openai-venv.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
need=()
command -v swift >/dev/null || { echo "swift toolchain not found on PATH" >&2; exit 1; }
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v runuser >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
# Speech to text transcodes with ffmpeg; its tests use the real program.
{ command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; } || need+=(ffmpeg)
# A real Prometheus scrapes the platform in the observability tests (promtool checks deploy/).
command -v prometheus >/dev/null || need+=(prometheus)
# The service registry tests run a real etcd (DISCOVERY=etcd).
command -v etcd >/dev/null || need+=(etcd-server)
# The multi-host test makes hosts of network namespaces (iproute2's ip, as root) and calls the
# gateways from one of them with curl.
command -v ip >/dev/null || need+=(iproute2)
command -v curl >/dev/null || need+=(curl)
# The etcd TLS test makes its certificates with openssl.
command -v openssl >/dev/null || need+=(openssl)
# The OpenAI SDK tests run the official Python package from a virtual environment; Debian's
# python3 makes one only with python3-venv (which ships ensurepip).
venv=${AISAAS_PYTHON_VENV:-$HOME/.cache/aisaas/openai-venv}
sdk_ready() { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import openai' 2>/dev/null; }
if ! sdk_ready && ! python3 -c 'import ensurepip' 2>/dev/null; then need+=(python3-venv); fi
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}"
    else sudo apt-get update -qq && sudo apt-get install -y -qq "${need[@]}"; fi
fi

if ! sdk_ready; then
    echo "creating $venv with the openai package"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'openai>=1.40'
fi
export OPENAI_SDK_PYTHON="$venv/bin/python"

work=$(mktemp -d /tmp/aisaas-test.XXXXXX)
chmod 755 "$work"
cleanup() {
    scripts/test-postgres.sh stop "$work/pg" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

eval "$(scripts/test-postgres.sh start "$work/pg")"
echo "PostgreSQL for tests: $TEST_POSTGRES_URL"

scratch=()
if [ -n "${AISAAS_BUILD_CACHE:-}" ]; then
    mkdir -p "$AISAAS_BUILD_CACHE"
    scratch=(--scratch-path "$AISAAS_BUILD_CACHE")
fi

if [ $# -gt 0 ]; then
    swift test "${scratch[@]}" "$@"
else
    # The multi-host test starts a dozen processes at once; alone, it neither starves the suites
    # with tight deadlines nor is starved by them on a 2-core machine.
    swift test "${scratch[@]}" --skip MultiHostTests
    swift test "${scratch[@]}" --skip-build --filter MultiHostTests
fi
