# Helpers shared by the benchmark scripts (sourced). They use the caller's `running` array of
# process ids, which its cleanup stops.

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

stop_running() {  # every process in `running`
    for pid in "${running[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${running[@]}"; do wait "$pid" 2>/dev/null || true; done
}

stop_process() {  # pid
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local kept=()
    for pid in "${running[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
    running=("${kept[@]}")
}

summary() {  # wrk output[, decimals of the times (default 2)] -> "rps|p50 ms|p99 ms|errors"
    awk -v decimals="${2:-2}" '
        function ms(text,   value) {
            value = text + 0
            if (text ~ /us$/) return value / 1000
            if (text ~ /ms$/) return value
            if (text ~ /s$/) return value * 1000
            return value
        }
        /Requests\/sec/ {rps = $2}
        /^ +50%/ {p50 = ms($2)}
        /^ +99%/ {p99 = ms($2)}
        /Non-2xx/ {errors += $NF}
        /Socket errors/ {gsub(/,/, ""); errors += $4 + $6 + $8 + $10}
        END {printf "%.0f|%." decimals "f|%." decimals "f|%d", rps, p50, p99, errors}' "$1"
}
