#!/usr/bin/env bash
# What observability costs: `aisaas all` on SQLite (release) at a baseline commit from before it
# existed (default d3efae4) against this tree with metrics on (scraped every 5 s) and tracing off,
# and with tracing on at 100% sampling (OTLP/HTTP to a sink on loopback that accepts and counts
# what it gets). Each variant measures `GET /user/current` with a JWT and the signed
# `POST /ai/invoke/chat_completion` (cc-auth-v1, no nonce, against the instant fake provider) at
# 64 connections (capacity) and at one (the fixed cost); the fake alone is measured beside them.
# The variants run interleaved, ROUNDS times (default 3), each on a fresh platform; the report gives
# every round and the medians, in bench/results/ with the machine it ran on.
# Usage: bench/run-observability.sh [duration-seconds]
#   BASELINE=<commit>      the commit to compare with (built once into BENCH_CACHE)
#   BASELINE_BIN=<dir>     a release bin folder of the baseline already built (skips that build)
#   BENCH_BIN=<dir>        this tree's release bin folder already built (skips that build)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
duration=${1:-15}
rounds=${ROUNDS:-3}
connections=64
threads=2
baseline=${BASELINE:-d3efae4}
cache=${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aisaas-bench}
question="Say hello to the benchmark in one short sentence."

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

if [ -z "${BENCH_BIN:-}" ]; then
    swift build -c release >/tmp/aisaas-bench-build.log 2>&1 || { tail -n 40 /tmp/aisaas-bench-build.log; exit 1; }
    BENCH_BIN="$(swift build -c release --show-bin-path)"
fi
if [ -z "${BASELINE_BIN:-}" ]; then
    source_dir="$cache/$baseline"
    if [ ! -x "$source_dir/.build/release/aisaas" ]; then
        mkdir -p "$source_dir"
        git archive "$baseline" | tar -x -C "$source_dir"
        (cd "$source_dir" && swift build -c release --product aisaas >build.log 2>&1) || { tail -n 40 "$source_dir/build.log"; exit 1; }
    fi
    BASELINE_BIN="$source_dir/.build/release"
fi
commit=$(git rev-parse --short HEAD)

work=$(mktemp -d /tmp/aisaas-bench-obs.XXXXXX)
running=()
cleanup() {
    stop_running
    rm -rf "$work"
}
trap cleanup EXIT

# The fake provider, answering at once.
"$BENCH_BIN/fake-provider" >"$work/fake.out" 2>"$work/fake.log" &
fake_pid=$!
running+=("$fake_pid")
until [ -s "$work/fake.out" ]; do sleep 0.02; kill -0 "$fake_pid" 2>/dev/null || { cat "$work/fake.log"; exit 1; }; done
fake_url=$(head -n 1 "$work/fake.out")

# The trace sink: answers every OTLP/HTTP export with 200 and keeps the bodies in a file; the spans
# in them are counted after the runs, so that parsing them takes no CPU from the platform while it
# is measured (a collector would run on another machine).
sink_port=$(free_port)
cat >"$work/sink.py" <<'EOF'
import http.server, struct, sys, threading

def varint(data, index):
    value = shift = 0
    while True:
        byte = data[index]; index += 1
        value |= (byte & 0x7F) << shift; shift += 7
        if byte < 0x80:
            return value, index

def fields(data):
    """(field number, bytes) of a protobuf message's length-delimited fields."""
    index = 0
    while index < len(data):
        key, index = varint(data, index)
        wire = key & 7
        if wire == 2:
            size, index = varint(data, index)
            yield key >> 3, data[index:index + size]
            index += size
        elif wire == 0:
            _, index = varint(data, index)
        elif wire in (1, 5):
            index += 8 if wire == 1 else 4
        else:
            return

def spans(body):
    """ExportTraceServiceRequest: resource_spans (1) > scope_spans (2) > spans (2)."""
    return sum(1 for f, resource in fields(body) if f == 1
               for g, scope in fields(resource) if g == 2
               for h, _ in fields(scope) if h == 2)

if sys.argv[1] == "count":  # bodies file -> "requests bytes spans"
    data = memoryview(open(sys.argv[2], "rb").read())
    index = requests = size = count = 0
    while index < len(data):
        (length,) = struct.unpack_from("<I", data, index); index += 4
        requests += 1; size += length; count += spans(data[index:index + length]); index += length
    print(requests, size, count)
    sys.exit(0)

port, out = int(sys.argv[2]), open(sys.argv[3], "ab")
lock = threading.Lock()

class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with lock:
            out.write(struct.pack("<I", len(body))); out.write(body); out.flush()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()
EOF
python3 "$work/sink.py" serve "$sink_port" "$work/sink.bin" &
running+=($!)

make_lua() {  # method, body, headers file -> a wrk script
    echo "wrk.method = \"$1\""
    [ -n "$2" ] && echo "wrk.body = [==[$2]==]" && echo 'wrk.headers["Content-Type"] = "application/json"'
    while IFS= read -r line; do
        echo "wrk.headers[\"${line%%: *}\"] = \"${line#*: }\""
    done <"$3"
}

measure() {  # name, method, url, body, headers file, connections
    local name=$1 method=$2 url=$3 body=$4 headers=$5 conns=$6
    make_lua "$method" "$body" "$headers" >"$work/$name.lua"
    wrk -t$((conns < threads ? conns : threads)) -c"$conns" -d3s -s "$work/$name.lua" "$url" >/dev/null
    wrk -t$((conns < threads ? conns : threads)) -c"$conns" -d"${duration}s" --latency -s "$work/$name.lua" "$url" >"$work/$name.txt"
}

# Starts a platform for a variant, loads it, stops it; writes $work/<variant>-<round>-*.txt.
run_variant() {  # variant, round
    local variant=$1 round=$2 bin settings=() port metrics_port scraper=""
    case $variant in
        baseline) bin=$BASELINE_BIN ;;
        metrics) bin=$BENCH_BIN; metrics_port=$(free_port); settings=(METRICS_PORT="$metrics_port") ;;
        tracing)
            bin=$BENCH_BIN; metrics_port=$(free_port)
            settings=(METRICS_PORT="$metrics_port" OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
                OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port" OTEL_TRACES_SAMPLER=always_on) ;;
    esac
    port=$(free_port)
    local base="http://127.0.0.1:$port" data="$work/$variant-$round-data"
    env DATA_DIR="$data" HTTP_PORT="$port" LOG_LEVEL=warning \
        ADMIN_USERNAME=bench-admin ADMIN_PASSWORD=bench-admin-password \
        AI_PROVIDERS=openai AI_PROVIDER_OPENAI_BASE_URL="$fake_url" \
        AI_RATE_LIMIT_PER_MINUTE=1000000 AKSK_REQUIRE_NONCE=false "${settings[@]}" \
        "$bin/aisaas" all >"$work/$variant-$round-server.log" 2>&1 &
    local pid=$!
    running+=("$pid")
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/health")" = 200 ]; do
        sleep 0.05
        kill -0 "$pid" 2>/dev/null || { cat "$work/$variant-$round-server.log"; exit 1; }
    done
    if [ -n "${metrics_port:-}" ]; then
        (while sleep 5; do curl -s -o /dev/null "http://127.0.0.1:$metrics_port/metrics"; done) &
        scraper=$!
        running+=("$scraper")
    fi
    local keys token
    keys=$(curl -s -X POST "$base/user/register" -H 'content-type: application/json' -d '{"username":"bench-device","password":"bench-password"}')
    token=$(curl -s -X PUT "$base/auth/login" -H 'content-type: application/json' -d '{"username":"bench-device","password":"bench-password"}' |
        python3 -c 'import sys, json; print(json.load(sys.stdin)["data"]["accessToken"])')
    echo "Authorization: Bearer $token" >"$work/$variant-$round-jwt.headers"
    AISAAS_ACCESS_KEY=$(python3 -c 'import sys, json; print(json.load(sys.stdin)["data"]["accessKey"])' <<<"$keys") \
    AISAAS_SECRET_KEY=$(python3 -c 'import sys, json; print(json.load(sys.stdin)["data"]["secretKey"])' <<<"$keys") \
        "$BENCH_BIN/aisaas" sign --method POST --url "$base/ai/invoke/chat_completion" --data "$signed_body" \
        --content-sha256 --expiration 3600 --print-headers | grep -vi '^host:' >"$work/$variant-$round-signed.headers"
    local status curl_headers=()
    while IFS= read -r line; do curl_headers+=(-H "$line"); done <"$work/$variant-$round-signed.headers"
    status=$(curl -s -o "$work/check" -w '%{http_code}' -X POST "$base/ai/invoke/chat_completion" \
        -H 'content-type: application/json' "${curl_headers[@]}" --data-binary "$signed_body")
    [ "$status" = 200 ] || { echo "$variant: signed completion answered HTTP $status"; cat "$work/check"; exit 1; }

    measure "$variant-$round-current-64" GET "$base/user/current" "" "$work/$variant-$round-jwt.headers" $connections
    measure "$variant-$round-signed-64" POST "$base/ai/invoke/chat_completion" "$signed_body" "$work/$variant-$round-signed.headers" $connections
    measure "$variant-$round-current-1" GET "$base/user/current" "" "$work/$variant-$round-jwt.headers" 1
    measure "$variant-$round-signed-1" POST "$base/ai/invoke/chat_completion" "$signed_body" "$work/$variant-$round-signed.headers" 1
    awk '/VmRSS/ {print $2}' "/proc/$pid/status" >"$work/$variant-$round-rss"
    [ -n "$scraper" ] && stop_process "$scraper"
    stop_process "$pid"
}

signed_body="{\"question\":\"$question\"}"
direct_body="{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"$question\"}]}"
variants=(baseline metrics tracing)
for round in $(seq "$rounds"); do
    measure "fake-$round-64" POST "$fake_url/chat/completions" "$direct_body" /dev/null $connections
    for variant in "${variants[@]}"; do run_variant "$variant" "$round"; done
done
read -r sink_requests sink_bytes sink_spans <<<"$(python3 "$work/sink.py" count "$work/sink.bin" 2>/dev/null || echo 0 0 0)"
# swift-otel logs each batch of spans it drops (its queue full) as a warning with dropped_count.
dropped_spans=$(cat "$work"/tracing-*-server.log 2>/dev/null | awk '{ while (match($0, /dropped_count=[0-9]+/)) { s += substr($0, RSTART + 14, RLENGTH - 14); $0 = substr($0, RSTART + RLENGTH) } } END {print s + 0}') || dropped_spans=0

# One row per variant and round, then the medians and the ratios to the baseline.
{
    for round in $(seq "$rounds"); do
        IFS='|' read -r rps _ _ errors <<<"$(summary "$work/fake-$round-64.txt")"
        echo "fake|$round|$rps|$errors"
        for variant in "${variants[@]}"; do
            line="$variant|$round"
            for load in current-64 signed-64 current-1 signed-1; do
                IFS='|' read -r rps p50 p99 errors <<<"$(summary "$work/$variant-$round-$load.txt" 3)"
                line+="|$rps|$p50|$p99|$errors"
            done
            echo "$line|$(cat "$work/$variant-$round-rss")"
        done
    done
} >"$work/rows"

mkdir -p bench/results
report="bench/results/$(date +%Y-%m-%d)-observability.md"
python3 - "$work/rows" "$baseline" "$commit" "$duration" "$rounds" "$sink_requests" "$sink_bytes" "$sink_spans" "$dropped_spans" >"$report" <<'EOF'
import statistics, subprocess, sys
rows_file, baseline, commit, duration, rounds, sink_requests, sink_bytes, sink_spans, dropped_spans = sys.argv[1:]
fake, runs = [], {}
for line in open(rows_file):
    cells = line.strip().split("|")
    if cells[0] == "fake":
        fake.append(float(cells[2]))
    else:
        runs.setdefault(cells[0], []).append([float(value) for value in cells[2:]])
def column(variant, index):
    return statistics.median(row[index] for row in runs[variant])
names = {"baseline": f"baseline ({baseline})", "metrics": f"{commit}: metrics on, tracing off", "tracing": f"{commit}: tracing on, 100% sampled"}
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p' | head -1"], capture_output=True, text=True).stdout.strip()
memory = subprocess.run(["sh", "-c", "free -g | awk '/Mem:/ {print $2}'"], capture_output=True, text=True).stdout.strip()
kernel = subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
swift = subprocess.run(["sh", "-c", "swift --version 2>&1 | head -1"], capture_output=True, text=True).stdout.strip()
print(f"# Observability overhead, {commit} against {baseline}\n")
print(f"Machine: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, {cpu}, {memory} GiB, Linux {kernel}; {swift}.")
print(f"wrk, {duration} s per measurement after 3 s of warm-up, {rounds} rounds, variants interleaved, a fresh `aisaas all` (SQLite) each time.")
print(f"Fake provider alone, 64 connections: {', '.join(f'{value:,.0f}' for value in fake)} requests/s.\n")
print("## Medians\n")
print("| variant | /user/current rps (64) | vs baseline | signed completion rps (64) | vs baseline | /user/current p50 (1) | signed p50 (1) | RSS after |")
print("|---|---|---|---|---|---|---|---|")
base_current, base_signed = column("baseline", 0), column("baseline", 4)
for variant in ("baseline", "metrics", "tracing"):
    current, signed = column(variant, 0), column(variant, 4)
    print(f"| {names[variant]} | {current:,.0f} | {100 * (current / base_current - 1):+.1f}% | {signed:,.0f} | {100 * (signed / base_signed - 1):+.1f}% "
          f"| {column(variant, 9):.3f} ms | {column(variant, 13):.3f} ms | {column(variant, 16) / 1024:.0f} MB |")
print("\nTargets: metrics on and tracing off within 3% of the baseline; tracing on at 100% within 10%.\n")
print(f"The trace sink took {int(sink_requests):,} OTLP exports ({int(sink_bytes) / 1e6:,.1f} MB, {int(sink_spans):,} spans) over the tracing runs; "
      f"the pipelines reported {int(dropped_spans):,} spans dropped.\n")
print("## Every round\n")
print("| variant | round | /user/current rps / p50 / p99 (64) | signed rps / p50 / p99 (64) | /user/current p50 (1) | signed p50 (1) | errors |")
print("|---|---|---|---|---|---|---|")
for variant in ("baseline", "metrics", "tracing"):
    for index, row in enumerate(runs[variant], 1):
        errors = int(row[3] + row[7] + row[11] + row[15])
        print(f"| {names[variant]} | {index} | {row[0]:,.0f} / {row[1]:.2f} / {row[2]:.2f} ms | {row[4]:,.0f} / {row[5]:.2f} / {row[6]:.2f} ms "
              f"| {row[9]:.3f} ms | {row[13]:.3f} ms | {errors} |")
EOF
cat "$report"
