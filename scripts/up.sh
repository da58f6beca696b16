#!/usr/bin/env bash
# The main job on embedded defaults: installs the Python packages, then `telegest up`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e . 2>&1 | grep -v "is ignored" || true
exec .venv/bin/telegest up "$@"
