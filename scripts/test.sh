#!/usr/bin/env bash
# Set up every framework and the dev tools, run the whole test suite, then the tests that
# must pass with numpy and pluggy alone (tox env `core`). Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh" all,dev
cd "$root"
.venv/bin/python -m pytest "$@"
.venv/bin/python -m tox run -e core -q
