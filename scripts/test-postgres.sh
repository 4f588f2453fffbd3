#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on a free loopback port and prints its URL.
#   eval "$(scripts/test-postgres.sh start DIR)"   -> exports TEST_POSTGRES_URL
#   scripts/test-postgres.sh stop DIR
#   scripts/test-postgres.sh crash DIR     stops it at once, as a crash or an outage would
#   scripts/test-postgres.sh resume DIR    starts a stopped cluster again on the same port
# Installs PostgreSQL from Debian packages if it is missing. Runs the server as the `postgres`
# system user when invoked as root (PostgreSQL refuses to run as root).
set -euo pipefail
action=${1:?start|stop}
dir=${2:?data directory}

find_bin() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$bin" ] && [ -x "$bin/initdb" ] && echo "$bin"
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$action" in
start)
    bin=$(find_bin || true)
    if [ -z "$bin" ]; then
        echo "installing PostgreSQL from Debian packages" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq postgresql >&2
        bin=$(find_bin)
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1
    echo "$port" >"$dir/port"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=1000 -c fsync=off" start >&2
    echo "export TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres"
    ;;
crash)
    bin=$(find_bin)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >&2
    ;;
resume)
    bin=$(find_bin)
    port=$(cat "$dir/port")
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=1000 -c fsync=off" start >&2
    ;;
stop)
    bin=$(find_bin || true)
    if [ -n "$bin" ] && [ -d "$dir/data" ]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast stop >&2 || true
    fi
    ;;
esac
