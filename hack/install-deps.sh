#!/usr/bin/env bash
# Installs the Debian packages the local fleet runs as they are (no build):
# Prometheus 2.42, Redis 7.0 (Argo CD's cache) and git (the fleet's git
# server); with --browser also the headless Chromium that the dashboard's
# browser tests drive (test/dashboard; `make test` asks for it, `make demo`
# does not). Versions are pinned by series: the script refuses another
# series. Chromium is the exception: Debian ships its security fixes as new
# major versions, so any version is taken (and printed).
# Idempotent: a machine that has them changes nothing.
set -euo pipefail

declare -A want=([prometheus]="2.42." [redis-server]="7.0." [git]="2.")
case "${1:-}" in
  "") ;;
  --browser) want[chromium-headless-shell]="" ;;
  *) echo "usage: $0 [--browser]" >&2; exit 2 ;;
esac
declare -A pkgver=()
missing=()
for pkg in "${!want[@]}"; do
  v=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)
  pkgver[$pkg]=$v
  if [ -z "$v" ]; then missing+=("$pkg"); fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}; run: sudo $0 $*" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

for pkg in "${!want[@]}"; do
  v=$(dpkg-query -W -f='${Version}' "$pkg")
  v=${v#*:}   # drop the epoch
  case "$v" in
    ${want[$pkg]}*) echo "  $pkg $v" ;;
    *) echo "$pkg $v installed, but the fleet is pinned to ${want[$pkg]}x" >&2; exit 1 ;;
  esac
done
# Debian installs services for these packages; the fleet starts its own
# processes on free loopback ports and never uses the system services.
