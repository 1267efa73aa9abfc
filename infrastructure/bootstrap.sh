#!/usr/bin/env bash
# Installs what the project needs from the system's packages, where missing:
#   bootstrap.sh redis            redis-server (make up)
#   bootstrap.sh redis browser    redis-server, Chromium and ChromeDriver (make test)
set -euo pipefail

need=()
for what in "$@"; do
  case "$what" in
    redis) command -v redis-server >/dev/null || need+=(redis-server) ;;
    browser) command -v chromium >/dev/null || need+=(chromium chromium-driver) ;;
    *) echo "bootstrap: unknown component '$what'" >&2; exit 2 ;;
  esac
done
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "bootstrap: please install: ${need[*]} (no apt-get on this system)" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "bootstrap: installing ${need[*]} with apt-get"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
