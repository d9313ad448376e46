#!/usr/bin/env bash
# Installs the system programs the tests use when they are missing: a real redis-server, a real
# PostgreSQL server (initdb, postgres) and Debian's headless-capable chromium (for Playwright).
# Uses apt-get (Debian/Ubuntu) as root or through sudo; elsewhere it says what to install.
# chatdesign.services finds these programs and starts private instances on loopback.
set -euo pipefail

have_postgres() {
  command -v initdb >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null 2>&1
}

packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
have_postgres || packages+=(postgresql)
command -v chromium >/dev/null 2>&1 || packages+=(chromium fonts-dejavu-core)

if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi

if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else sudo="none"; fi
  if [ "$sudo" != "none" ]; then
    echo "system_deps: installing ${packages[*]} with apt-get"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
    # Debian's postgresql package starts a cluster of its own; the tests start private ones.
    if [[ " ${packages[*]} " == *" postgresql "* ]] && command -v pg_ctlcluster >/dev/null 2>&1; then
      $sudo service postgresql stop >/dev/null 2>&1 || true
    fi
    exit 0
  fi
fi

echo "system_deps: please install: ${packages[*]} (tests that need them skip locally and fail under CI)" >&2
if [ "${CI:-}" = "true" ]; then
  exit 1
fi
