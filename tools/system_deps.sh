#!/usr/bin/env bash
# Installs the system programs the tests use (a real redis-server) when they are missing.
# Uses apt-get (Debian/Ubuntu) as root or through sudo; elsewhere it says what to install.
set -euo pipefail

packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)

if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi

if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else sudo="none"; fi
  if [ "$sudo" != "none" ]; then
    echo "system_deps: installing ${packages[*]} with apt-get"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
    exit 0
  fi
fi

echo "system_deps: please install: ${packages[*]} (tests that need them skip locally and fail under CI)" >&2
if [ "${CI:-}" = "true" ]; then
  exit 1
fi
