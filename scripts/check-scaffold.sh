#!/usr/bin/env bash
# Proves `aisaas scaffold service` on a scratch copy of this checkout (which it leaves alone): it
# generates a service (default name: inventory), regenerates the gRPC code, builds everything and
# runs the generated test suite against SQLite and a throwaway PostgreSQL.
# The copy builds in AISAAS_BUILD_CACHE (or this checkout's .build), so the dependencies built for
# the tests are reused; only the package's own modules are compiled again.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-inventory}
type="$(tr '[:lower:]' '[:upper:]' <<<"${name:0:1}")${name:1}"
build=${AISAAS_BUILD_CACHE:-$PWD/.build}
export AISAAS_BUILD_CACHE=$build

work=$(mktemp -d /tmp/aisaas-scaffold.XXXXXX)
chmod 755 "$work"
cleanup() {
    scripts/test-postgres.sh stop "$work/pg" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# The checkout's files as they are (committed or not), without build products.
mkdir "$work/package"
git ls-files --cached --others --exclude-standard -z | xargs -0 cp --parents -t "$work/package"

swift build --scratch-path "$build" --product aisaas
aisaas="$(swift build --scratch-path "$build" --show-bin-path)/aisaas"
"$aisaas" scaffold service "$name" --root "$work/package"

# A second run with the same name is refused and changes nothing.
snapshot() { (cd "$work/package" && find . -type f | sort | xargs sha256sum | sha256sum); }
before=$(snapshot)
if "$aisaas" scaffold service "$name" --root "$work/package" --skip-generate >/dev/null 2>&1; then
    echo "scaffolding '$name' twice was accepted" >&2
    exit 1
fi
[ "$before" = "$(snapshot)" ] || { echo "a refused scaffold changed files" >&2; exit 1; }

eval "$(scripts/test-postgres.sh start "$work/pg")"
cd "$work/package"
swift build --scratch-path "$build" --build-tests
swift test --scratch-path "$build" --skip-build --filter "${type}ServiceTests"
"$aisaas" "$name-service" --help | grep -q "${name^^}_SERVICE_PORT"
: >"$work/empty.env"  # no settings but the ones given here
DATA_DIR="$work/data" "$aisaas" migrate --service "$name" --env-file "$work/empty.env"
echo "the scaffolded '$name' service builds and its tests pass"
