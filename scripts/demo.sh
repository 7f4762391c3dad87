#!/usr/bin/env bash
# Set up (torch + demo extras) and run the demo: a monitored CNN training on digits.
# Extra arguments go to `ikkuna demo` (e.g. --epochs 5).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh" torch,demo
cd "$root"
exec .venv/bin/ikkuna demo "$@"
