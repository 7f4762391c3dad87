#!/usr/bin/env bash
# Set up every framework and the dev tools, run the tests that must pass with numpy and
# pluggy alone (tox env `core`), then the whole test suite. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh" all,dev
cd "$root"
.venv/bin/python -m tox run -e core -q
.venv/bin/python -m pytest "$@"
