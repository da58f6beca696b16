#!/usr/bin/env bash
# The mutation run over the five core modules (docs/testing.md, "Mutation run"); not in CI.
# Prints each module's killed/survived and the survivors, then the summary as JSON; exits 1
# when a module is under 95 % killed. Arguments go to scripts/mutants.py, e.g.
#   scripts/mutation.sh --only firmware/decide.py --json mutants/summary.json
#   scripts/mutation.sh --again mutants/summary.json   # only the survivors, after new tests
# One process by default (--jobs 2 at most): the machine is shared. The five modules take
# about an hour on a busy 2-core machine (decide 2 minutes, the matching most of it).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/install-test-deps.sh
exec nice -n 10 .venv/bin/python scripts/mutants.py "$@"
