#!/usr/bin/env bash
# Benchmarks the AI invocation path (`POST /ai/invoke/chat_completion`, cc-auth-v1 signed) of the
# embedded platform (`aisaas all`, release build) against the fake OpenAI-compatible provider
# (bench/FakeProviderServer), each measurement beside the same fake called directly:
#   1. overhead: the fake answers after 50 ms; fake directly vs through the gateway, 64 connections;
#   2. streaming: time to the first byte of a streamed completion, directly vs through the
#      gateway, sequential curl runs (median and p95);
#   3. capacity: the fake answers at once; the full path (signature check in the user service,
#      rate limit, quota, provider call, usage record) on SQLite, then on PostgreSQL (a throwaway
#      cluster from scripts/test-postgres.sh);
#   4. diagnostic: one connection with the fake answering at once, the fixed cost of one call.
# The signature carries no nonce, so wrk may replay the same signed request until it expires
# (3600 s): the gateway allows that unless AKSK_REQUIRE_NONCE is on.
# Writes a Markdown report to bench/results/ with the machine it ran on.
# Usage: bench/run-ai.sh [duration-seconds]   (needs wrk, curl, python3; installs wrk from Debian
# if missing; TTFB_RUNS=N changes the number of curl runs per TTFB series, default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
duration=${1:-20}
connections=64
threads=2
ttfb_runs=${TTFB_RUNS:-300}
delay_ms=50
question="Say hello to the benchmark in one short sentence."

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
# The whole package: aisaas and fake-provider.
build_log=$(mktemp)
swift build -c release >"$build_log" 2>&1 || { tail -n 40 "$build_log"; exit 1; }
rm -f "$build_log"
bin="$(swift build -c release --show-bin-path)"

work=$(mktemp -d /tmp/aisaas-bench-ai.XXXXXX)
pg_dir=""
running=()
cleanup() {
    stop_running
    if [ -n "$pg_dir" ]; then
        scripts/test-postgres.sh stop "$pg_dir" 2>/dev/null
        rm -rf "$pg_dir"
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Starts the fake provider; sets fake_pid and fake_url (http://127.0.0.1:PORT/v1).
start_fake() {  # name, fake-provider options…
    local name=$1
    shift
    "$bin/fake-provider" "$@" >"$work/$name-fake.out" 2>"$work/$name-fake.log" &
    fake_pid=$!
    running+=("$fake_pid")
    until [ -s "$work/$name-fake.out" ]; do
        sleep 0.02
        kill -0 "$fake_pid" 2>/dev/null || { cat "$work/$name-fake.log"; exit 1; }
    done
    fake_url=$(head -n 1 "$work/$name-fake.out")
}

# Starts `aisaas all` on a fresh data folder against $fake_url, registers a user and signs the
# benchmark requests; sets platform_pid, base, and writes $work/$name-{plain,stream}.headers.
start_platform() {  # name, extra KEY=value settings…
    local name=$1
    shift
    local port
    port=$(free_port)
    base="http://127.0.0.1:$port"
    env DATA_DIR="$work/$name-data" HTTP_PORT="$port" LOG_LEVEL=warning \
        ADMIN_USERNAME=bench-admin ADMIN_PASSWORD=bench-admin-password \
        AI_PROVIDERS=openai AI_PROVIDER_OPENAI_BASE_URL="$fake_url" \
        AI_RATE_LIMIT_PER_MINUTE=1000000 AKSK_REQUIRE_NONCE=false "$@" \
        "$bin/aisaas" all >"$work/$name-server.log" 2>&1 &
    platform_pid=$!
    running+=("$platform_pid")
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/health")" = 200 ]; do
        sleep 0.05
        kill -0 "$platform_pid" 2>/dev/null || { cat "$work/$name-server.log"; exit 1; }
    done
    local keys
    keys=$(curl -s -X POST "$base/user/register" -H 'content-type: application/json' \
        -d '{"username":"bench-device","password":"bench-password"}')
    export AISAAS_ACCESS_KEY AISAAS_SECRET_KEY
    AISAAS_ACCESS_KEY=$(python3 -c 'import sys, json; print(json.load(sys.stdin)["data"]["accessKey"])' <<<"$keys")
    AISAAS_SECRET_KEY=$(python3 -c 'import sys, json; print(json.load(sys.stdin)["data"]["secretKey"])' <<<"$keys")
    sign "$gateway_plain_body" >"$work/$name-plain.headers"
    sign "$gateway_stream_body" >"$work/$name-stream.headers"
}

sign() {  # body -> 'name: value' lines to add (host left out: wrk and curl send the same one)
    "$bin/aisaas" sign --method POST --url "$base/ai/invoke/chat_completion" --data "$1" \
        --content-sha256 --expiration 3600 --print-headers | grep -vi '^host:'
}

gateway_plain_body="{\"question\":\"$question\"}"
gateway_stream_body="{\"question\":\"$question\",\"stream\":true}"
direct_plain_body="{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"$question\"}]}"
direct_stream_body="{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"$question\"}],\"stream\":true,\"stream_options\":{\"include_usage\":true}}"

make_lua() {  # body, headers file (may be /dev/null) -> a wrk script sending that POST
    echo 'wrk.method = "POST"'
    echo "wrk.body = [==[$1]==]"
    echo 'wrk.headers["Content-Type"] = "application/json"'
    while IFS= read -r line; do
        echo "wrk.headers[\"${line%%: *}\"] = \"${line#*: }\""
    done <"$2"
}

# Checks that one request answers 200 before loading it, then warms up and measures.
load() {  # name, url, body, headers file[, connections]
    local name=$1 url=$2 body=$3 headers=$4 conns=${5:-$connections} status
    local curl_headers=()
    while IFS= read -r line; do curl_headers+=(-H "$line"); done <"$headers"
    status=$(curl -s -o "$work/$name.check" -w '%{http_code}' -X POST "$url" -H 'content-type: application/json' \
        "${curl_headers[@]}" --data-binary "$body")
    [ "$status" = 200 ] || { echo "$name: HTTP $status from $url"; cat "$work/$name.check"; exit 1; }
    make_lua "$body" "$headers" >"$work/$name.lua"
    wrk -t$((conns < threads ? conns : threads)) -c"$conns" -d3s -s "$work/$name.lua" "$url" >/dev/null
    wrk -t$((conns < threads ? conns : threads)) -c"$conns" -d"${duration}s" --latency -s "$work/$name.lua" "$url" >"$work/$name.txt"
}

# Time to the first byte of a streamed completion, one fresh connection per run. A series with
# failed requests is reported as failed (with the first error body) instead of ending the run.
ttfb() {  # name, url, body, headers file -> "median|p95" in ms, or "failed|<reason>"
    local name=$1 url=$2 body=$3 headers=$4
    local curl_headers=()
    while IFS= read -r line; do curl_headers+=(-H "$line"); done <"$headers"
    for _ in $(seq 20); do  # warm-up
        curl -s -o /dev/null -X POST "$url" -H 'content-type: application/json' "${curl_headers[@]}" --data-binary "$body"
    done
    for _ in $(seq "$ttfb_runs"); do
        curl -s -o /dev/null -w '%{http_code} %{time_starttransfer}\n' -X POST "$url" \
            -H 'content-type: application/json' "${curl_headers[@]}" --data-binary "$body"
    done >"$work/$name.ttfb"
    curl -s -o "$work/$name.sample" -X POST "$url" -H 'content-type: application/json' "${curl_headers[@]}" --data-binary "$body"
    python3 - "$work/$name.ttfb" "$work/$name.sample" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
failed = [row for row in rows if row[0] != "200"]
if failed:
    sample = open(sys.argv[2], errors="replace").read().strip().replace("|", "/")[:300]
    print(f"failed|{len(failed)} of {len(rows)} answered HTTP {failed[0][0]}: `{sample}`")
else:
    times = sorted(float(row[1]) * 1000 for row in rows)
    print(f"{statistics.median(times):.2f}|{times[int(0.95 * (len(times) - 1))]:.2f}")
EOF
}

# 1. Overhead: the fake answers after 50 ms.
start_fake overhead --delay-ms $delay_ms
start_platform overhead
load overhead-direct "$fake_url/chat/completions" "$direct_plain_body" /dev/null
load overhead-gateway "$base/ai/invoke/chat_completion" "$gateway_plain_body" "$work/overhead-plain.headers"
stop_process "$platform_pid"
stop_process "$fake_pid"

# 2. Streaming TTFB and 3. capacity on SQLite: the fake answers at once, a stream in 6 events
# 10 ms apart (so that the first byte and the whole answer differ).
start_fake capacity --stream-chunks 4 --stream-interval-ms 10
start_platform capacity
ttfb_direct=$(ttfb stream-direct "$fake_url/chat/completions" "$direct_stream_body" /dev/null)
ttfb_gateway=$(ttfb stream-gateway "$base/ai/invoke/chat_completion" "$gateway_stream_body" "$work/capacity-stream.headers")
IFS='|' read -r ttfb_direct_p50 ttfb_direct_p95 <<<"$ttfb_direct"
IFS='|' read -r ttfb_gateway_p50 ttfb_gateway_p95 <<<"$ttfb_gateway"
load capacity-direct "$fake_url/chat/completions" "$direct_plain_body" /dev/null
load capacity-sqlite "$base/ai/invoke/chat_completion" "$gateway_plain_body" "$work/capacity-plain.headers"
# Diagnostic: one connection, so nothing queues: the fixed cost of one call.
load single-direct "$fake_url/chat/completions" "$direct_plain_body" /dev/null 1
load single-sqlite "$base/ai/invoke/chat_completion" "$gateway_plain_body" "$work/capacity-plain.headers" 1
sqlite_rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$platform_pid/status")
stop_process "$platform_pid"

# 3b. Capacity on PostgreSQL (same fake), one database per service.
# Outside $work (mode 0700): the server runs as the postgres user.
pg_dir=$(mktemp -d /tmp/aisaas-bench-pg.XXXXXX)
chmod 755 "$pg_dir"
pg_url=$(scripts/test-postgres.sh start "$pg_dir" | sed -n 's/^export TEST_POSTGRES_URL=//p')
[ -n "$pg_url" ] || { echo "PostgreSQL did not start"; cat "$pg_dir"/*.log; exit 1; }
psql -q "$pg_url" -c 'CREATE DATABASE bench_user' -c 'CREATE DATABASE bench_ai'
start_platform postgres USER_DATABASE_URL="${pg_url%/*}/bench_user" AI_DATABASE_URL="${pg_url%/*}/bench_ai"
load capacity-postgres "$base/ai/invoke/chat_completion" "$gateway_plain_body" "$work/postgres-plain.headers"
usage_rows=$(psql -tAq "${pg_url%/*}/bench_ai" -c 'SELECT count(*) FROM usage_record' 2>/dev/null || echo "?")
stop_process "$platform_pid"
stop_process "$fake_pid"

IFS='|' read -r od_rps od_p50 od_p99 od_err <<<"$(summary "$work/overhead-direct.txt")"
IFS='|' read -r og_rps og_p50 og_p99 og_err <<<"$(summary "$work/overhead-gateway.txt")"
IFS='|' read -r cd_rps cd_p50 cd_p99 cd_err <<<"$(summary "$work/capacity-direct.txt")"
IFS='|' read -r cs_rps cs_p50 cs_p99 cs_err <<<"$(summary "$work/capacity-sqlite.txt")"
IFS='|' read -r cp_rps cp_p50 cp_p99 cp_err <<<"$(summary "$work/capacity-postgres.txt")"
IFS='|' read -r sd_rps sd_p50 sd_p99 sd_err <<<"$(summary "$work/single-direct.txt")"
IFS='|' read -r ss_rps ss_p50 ss_p99 ss_err <<<"$(summary "$work/single-sqlite.txt")"

verdict() {  # python condition -> met / **missed**
    python3 -c "print('met' if ($1) else '**missed**')"
}
add_p50=$(python3 -c "print(f'{$og_p50 - $od_p50:+.2f} ms')")
add_p99=$(python3 -c "print(f'{$og_p99 - $od_p99:+.2f} ms')")
kept=$(python3 -c "print(f'{100 * $og_rps / $od_rps:.1f}%')")
if [ "$ttfb_direct_p50" = failed ] || [ "$ttfb_gateway_p50" = failed ]; then
    ttfb_failure="$([ "$ttfb_direct_p50" = failed ] && echo "directly: $ttfb_direct_p95") $([ "$ttfb_gateway_p50" = failed ] && echo "through the gateway: $ttfb_gateway_p95")"
    ttfb_row="| stream TTFB, median and p95 of $ttfb_runs | $ttfb_direct_p50 / $ttfb_direct_p95 | $ttfb_gateway_p50 | | ≤ +2 ms (median) | **not measured**: streamed requests failed |"
else
    ttfb_failure=""
    add_ttfb_p50=$(python3 -c "print(f'{$ttfb_gateway_p50 - $ttfb_direct_p50:+.2f} ms')")
    add_ttfb_p95=$(python3 -c "print(f'{$ttfb_gateway_p95 - $ttfb_direct_p95:+.2f} ms')")
    ttfb_row="| stream TTFB, median of $ttfb_runs | $ttfb_direct_p50 ms | $ttfb_gateway_p50 ms | $add_ttfb_p50 | ≤ +2 ms | $(verdict "$ttfb_gateway_p50 - $ttfb_direct_p50 <= 2") |
| stream TTFB, p95 of $ttfb_runs | $ttfb_direct_p95 ms | $ttfb_gateway_p95 ms | $add_ttfb_p95 | (reported) | |"
fi

mkdir -p bench/results
report="bench/results/$(date -u +%Y-%m-%d)-ai-invoke.md"
{
    echo "# AI invocation: POST /ai/invoke/chat_completion, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Code: $(git rev-parse --short HEAD)$([ -n "$(git status --porcelain -- Sources Package.swift)" ] && echo ', plus the uncommitted changes to Sources/ found at the time (built as found)')"
    echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr); $(swift --version 2>/dev/null | head -n 1)"
    echo "Load: wrk, $threads threads, $connections connections, ${duration} s per measurement after 3 s of warm-up."
    echo "The load generator, the fake provider and the platform share these $(nproc) cores: the figures are a floor, not a ceiling."
    echo "Platform: \`aisaas all\` (release), AI_RATE_LIMIT_PER_MINUTE=1000000 (the most the setting accepts; counted on every call, never hit),"
    echo "a user without a quota budget, signature with x-cc-content-sha256 and no nonce (wrk replays one signed request; 3600 s expiry)."
    echo "Fake provider: bench/FakeProviderServer (\`fake-provider\`, release), recording one request."
    echo
    echo "## Against targets"
    echo
    echo "| measurement | directly | through the gateway | difference | target | |"
    echo "|---|---|---|---|---|---|"
    echo "| p50, fake answers after ${delay_ms} ms | $od_p50 ms | $og_p50 ms | $add_p50 | ≤ +1 ms | $(verdict "$og_p50 - $od_p50 <= 1") |"
    echo "| p99, fake answers after ${delay_ms} ms | $od_p99 ms | $og_p99 ms | $add_p99 | ≤ +5 ms | $(verdict "$og_p99 - $od_p99 <= 5") |"
    echo "| requests/s, fake answers after ${delay_ms} ms | $od_rps | $og_rps | $kept of direct | ≥ 95% | $(verdict "$og_rps >= 0.95 * $od_rps") |"
    echo "$ttfb_row"
    echo "| capacity, SQLite, fake answers at once | $cd_rps | $cs_rps | | ≥ 2,000 requests/s | $(verdict "$cs_rps >= 2000") |"
    echo "| capacity, PostgreSQL, fake answers at once | $cd_rps | $cp_rps | | (reported) | |"
    echo
    echo "## All runs"
    echo
    echo "| run | requests/s | p50 | p99 | errors (non-2xx + socket) |"
    echo "|---|---|---|---|---|"
    echo "| fake directly, ${delay_ms} ms delay | $od_rps | $od_p50 ms | $od_p99 ms | $od_err |"
    echo "| gateway, SQLite, ${delay_ms} ms delay | $og_rps | $og_p50 ms | $og_p99 ms | $og_err |"
    echo "| fake directly, no delay | $cd_rps | $cd_p50 ms | $cd_p99 ms | $cd_err |"
    echo "| gateway, SQLite, no delay | $cs_rps | $cs_p50 ms | $cs_p99 ms | $cs_err |"
    echo "| gateway, PostgreSQL, no delay | $cp_rps | $cp_p50 ms | $cp_p99 ms | $cp_err |"
    echo "| fake directly, no delay, 1 connection | $sd_rps | $sd_p50 ms | $sd_p99 ms | $sd_err |"
    echo "| gateway, SQLite, no delay, 1 connection | $ss_rps | $ss_p50 ms | $ss_p99 ms | $ss_err |"
    echo
    if [ -n "$ttfb_failure" ]; then echo "- **Streamed completions failed**, $ttfb_failure"; fi
    echo "- Streams: the fake sends 4 content events, a stop event and a usage event, 10 ms apart; TTFB is curl's"
    echo "  \`time_starttransfer\` over a fresh loopback connection, $ttfb_runs sequential runs each, with no other load."
    echo "- PostgreSQL: a throwaway local cluster from scripts/test-postgres.sh (fsync off), one database per service;"
    echo "  usage rows written in that run: $usage_rows."
    echo "- resident memory of the platform after the SQLite capacity run: $((sqlite_rss_kb / 1024)) MB"
    for run in overhead-gateway capacity-sqlite capacity-postgres; do
        echo
        echo "\`$run\`:"
        echo
        echo '```'
        cat "$work/$run.txt"
        echo '```'
    done
} >"$report"
cat "$report"
