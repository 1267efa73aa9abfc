#!/usr/bin/env bash
# Installs what the project needs, where missing, from the package registries only:
#   bootstrap.sh redis              redis-server (apt)
#   bootstrap.sh browser            Chromium and ChromeDriver (apt), for the browser tests
#   bootstrap.sh localstack         LocalStack in host mode: its own venv, .venv-localstack/,
#                                   from infrastructure/localstack/requirements.txt (PyPI)
# `make up` asks for redis and its emulator's pieces, `make test` for all of them.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
localstack=0
for what in "$@"; do
  case "$what" in
    redis) command -v redis-server >/dev/null || need+=(redis-server) ;;
    browser) command -v chromium >/dev/null || need+=(chromium chromium-driver) ;;
    localstack) localstack=1 ;;
    moto) ;; # in the project's venv (infrastructure/requirements.txt)
    *) echo "bootstrap: unknown component '$what'" >&2; exit 2 ;;
  esac
done

if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "bootstrap: please install: ${need[*]} (no apt-get on this system)" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bootstrap: installing ${need[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ "$localstack" -eq 1 ]; then
  # Its own venv: LocalStack's runtime pins moto-ext and boto3 against the project's moto.
  # Reinstalled when the pins or the provider plugin change (the stamp is their checksum).
  venv=.venv-localstack
  stamp="$venv/.installed"
  sum=$(cd infrastructure/localstack && cat requirements.txt provider/pyproject.toml provider/*.py | sha256sum | cut -d" " -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
    echo "bootstrap: installing LocalStack into $venv (pinned, from PyPI)"
    test -x "$venv/bin/python" || "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -r infrastructure/localstack/requirements.txt
    "$venv/bin/python" -m pip install -q --force-reinstall --no-deps ./infrastructure/localstack/provider
    echo "$sum" >"$stamp"
  fi
fi
