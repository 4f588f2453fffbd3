#!/usr/bin/env bash
# Writes random secrets for deploy/compose.yaml into deploy/compose/secrets/ (kept out of git).
# Existing files are left alone; put your provider's key into ai-provider-openai-api-key.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p secrets
# The folder keeps other users of this host out. The files themselves must be readable by the
# containers' users (aisaas runs as uid 10001): Compose bind-mounts a file secret with the host
# file's owner and mode, and ignores uid/gid/mode for it, so a 0600 file would stop every service.
chmod 700 secrets
write() {  # name, value
    [ -e "secrets/$1" ] || { printf '%s' "$2" >"secrets/$1"; chmod 644 "secrets/$1"; }
}
password=$(openssl rand -hex 24)
write postgres-password "$password"
password=$(cat secrets/postgres-password)
write jwt-secret "$(openssl rand -base64 48 | tr -d '\n')"
write secret-key-master-key "$(openssl rand -base64 32 | tr -d '\n')"
write user-database-url "postgres://aisaas:$password@postgres:5432/aisaas_user"
write ai-database-url "postgres://aisaas:$password@postgres:5432/aisaas_ai"
write ai-provider-openai-api-key "sk-replace-me"
echo "secrets in $(pwd)/secrets"
