#!/usr/bin/env bash
# The test command: install what the tests need, then run every test, every marker.
# CI (.ci/run) calls exactly this. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
export TELEGEST_TEST_DATABASE_URL="${TELEGEST_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
# the full run (no arguments) must collect every marker and skip nothing
[ $# -gt 0 ] || export TELEGEST_REQUIRE_ALL_MARKERS=1
# side by side (pytest-xdist, docs/testing.md): the tests mostly wait (brokers, boards, browsers
# starting, acks), so more workers than cores; each has its own ports and PostgreSQL database.
# TELEGEST_TEST_WORKERS=0 runs them in this one process; `-n N` in the arguments wins too.
workers="${TELEGEST_TEST_WORKERS:-4}"
side_by_side=(.venv/bin/python -m pytest -q -n "$workers" --dist loadgroup)
[ $# -eq 0 ] || exec "${side_by_side[@]}" "$@"
# the full run: everything side by side but the tests marked `serial` (they bound CPU time),
# then those alone; it fails if either part does
set +e
"${side_by_side[@]}" -m "not serial"
parallel=$?
.venv/bin/python -m pytest -q -m serial
alone=$?
[ "$alone" -eq 5 ] && alone=0  # no test is marked serial
[ "$parallel" -ne 0 ] && exit "$parallel"
exit "$alone"
