#!/usr/bin/env bash
# Create ./.venv (once) and install ikkuna with the given extras, pinned by constraints.txt.
# Usage: bash scripts/setup.sh EXTRAS    e.g.  bash scripts/setup.sh torch,demo
# Re-running is cheap: nothing is installed again unless the extras or pins changed.
set -euo pipefail
extras="${1:?usage: setup.sh EXTRAS}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.ikkuna-installed-$extras"
fingerprint="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$fingerprint" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -c constraints.txt -e ".[$extras]"
  echo "$fingerprint" > "$stamp"
fi
