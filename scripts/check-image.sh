#!/usr/bin/env bash
# Runs the Dockerfile's commands on this host, as no container engine runs here
# (scripts/check-image.py): each stage in a root file system of overlays over the host's Debian,
# the build stage with the Swift toolchain and the runtime stage without it; then the image's
# entry point as its user, in a network namespace of its own, until its HEALTHCHECK passes, and
# STOPSIGNAL must stop it cleanly. Needs root. The build stage's files (the release build) stay
# in AISAAS_IMAGE_CHECK_DIR (default: beside AISAAS_BUILD_CACHE, else /tmp/aisaas-image-check).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "check-image: skipped, it needs root (mount namespaces, overlays, chroot)" >&2
    exit 0
fi
work=${AISAAS_IMAGE_CHECK_DIR:-${AISAAS_BUILD_CACHE:+$AISAAS_BUILD_CACHE-image}}
work=${work:-/tmp/aisaas-image-check}
mkdir -p "$work"
exec unshare --mount --propagation private python3 scripts/check-image.py Dockerfile "$PWD" "$work"
