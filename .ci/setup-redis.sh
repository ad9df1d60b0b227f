#!/usr/bin/env bash
# CI: the cluster tests (test/cluster-*.test.ts) start their own redis-server on a free port.
# Install Debian's package when redis-server is missing; a no-op when it is already on the PATH.
# Quiet: apt-get's output is shown only when it fails.
set -euo pipefail
command -v redis-server >/dev/null 2>&1 && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-redis: redis-server is missing and there is no apt-get; the cluster tests will be skipped" >&2
  exit 0
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else
    echo "setup-redis: redis-server is missing and this user cannot install it; the cluster tests will be skipped" >&2
    exit 0
  fi
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
       "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup-redis: apt-get could not install redis-server" >&2
  exit 1
fi
command -v redis-server >/dev/null 2>&1 || { echo "setup-redis: redis-server still missing after apt-get" >&2; exit 1; }
