#!/usr/bin/env bash
# Benchmarks the embedded platform (`aisaas all`, SQLite, release build) on this machine:
#   1. GET /user/current with a JWT (gateway → gRPC → user service → SQLite), 64 connections;
#   2. a trivial gateway route (GET /api, no service call) in the same run, for comparison;
#   3. idle resident memory of the process;
#   4. time from start until /health answers 200.
# Both routes are measured in ROUNDS rounds (default 3), one after the other within each round,
# and the report gives every round and the median: on a shared machine one run can be 15% off.
# Writes a Markdown report to bench/results/ with the machine it ran on.
# Usage: bench/run.sh [duration-seconds]   (needs wrk and curl; installs wrk from Debian if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20}
rounds=${ROUNDS:-3}
connections=64
threads=2

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
swift build -c release --product aisaas >/dev/null
binary="$(swift build -c release --show-bin-path)/aisaas"

work=$(mktemp -d /tmp/aisaas-bench.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
export DATA_DIR="$work/data" HTTP_PORT="$port" LOG_LEVEL=warning ADMIN_USERNAME=bench-admin ADMIN_PASSWORD=bench-admin-password
base="http://127.0.0.1:$port"

start_ns=$(date +%s%N)
"$binary" all >"$work/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/health")" = 200 ]; do
    sleep 0.02
    kill -0 $pid 2>/dev/null || { cat "$work/server.log"; exit 1; }
done
ready_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))

sleep 3
idle_rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)

curl -s -X POST "$base/user/register" -d '{"username":"bench-user","password":"bench-password"}' >/dev/null
token=$(curl -s -X PUT "$base/auth/login" -d '{"username":"bench-user","password":"bench-password"}' |
    python3 -c 'import sys, json; print(json.load(sys.stdin)["data"]["accessToken"])')

# Warm up, then measure.
wrk -t$threads -c$connections -d3s -H "Authorization: Bearer $token" "$base/user/current" >/dev/null
for round in $(seq "$rounds"); do
    wrk -t$threads -c$connections -d"${duration}s" --latency -H "Authorization: Bearer $token" "$base/user/current" >"$work/current-$round.txt"
    wrk -t$threads -c$connections -d"${duration}s" --latency "$base/api" >"$work/trivial-$round.txt"
done
loaded_rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)

summary() {  # file -> "rps|p50|p99|errors"
    awk '
        /Requests\/sec/ {rps=$2}
        /^ +50%/ {p50=$2}
        /^ +99%/ {p99=$2}
        /Non-2xx/ {errors=$NF}
        END {printf "%s|%s|%s|%s", rps, p50, p99, (errors == "" ? 0 : errors)}' "$1"
}
rows=""
for round in $(seq "$rounds"); do
    IFS='|' read -r cur_rps cur_p50 cur_p99 cur_err <<<"$(summary "$work/current-$round.txt")"
    IFS='|' read -r tri_rps tri_p50 tri_p99 tri_err <<<"$(summary "$work/trivial-$round.txt")"
    rows+="| $round | $cur_rps | $cur_p50 | $cur_p99 | $cur_err | $tri_rps | $tri_p50 | $tri_p99 | $tri_err |"$'\n'
done
# The median of each column over the rounds (latencies compared in ms).
median_row=$(printf '%s' "$rows" | python3 -c '
import statistics, sys
def ms(text):
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit): return float(text[:-len(unit)]) * factor
    return float(text)
rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in sys.stdin if line.strip()]
cells = []
for column in range(1, 9):
    values = [row[column] for row in rows]
    if column in (2, 3, 6, 7):
        cells.append("%.2fms" % statistics.median(ms(value) for value in values))
    else:
        cells.append("%.0f" % statistics.median(float(value) for value in values))
print("| median | " + " | ".join(cells) + " |")
')

mkdir -p bench/results
report="bench/results/$(date -u +%Y-%m-%d)-all-sqlite.md"
{
    echo "# aisaas all (SQLite), $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr); $(swift --version 2>/dev/null | head -n 1)"
    echo "Load: wrk, $threads threads, $connections connections, ${duration} s per route and round, $rounds rounds, on the same machine as the server."
    echo
    echo "| round | /user/current requests/s | p50 | p99 | non-2xx | /api requests/s | p50 | p99 | non-2xx |"
    echo "|---|---|---|---|---|---|---|---|---|"
    printf '%s' "$rows"
    echo "$median_row"
    echo
    echo "GET /user/current: JWT → gRPC → user service → SQLite. GET /api: the gateway alone (Swagger UI page)."
    echo
    echo "- /health answered 200 after ${ready_ms} ms from process start"
    echo "- idle resident memory: $((idle_rss_kb / 1024)) MB; after the load: $((loaded_rss_kb / 1024)) MB"
    echo
    echo '```'
    cat "$work/current-1.txt"
    echo '```'
} >"$report"
cat "$report"
