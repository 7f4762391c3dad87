#!/usr/bin/env bash
# Set up (the chosen framework + demo extras) and run the demo: a monitored CNN training on
# digits that ends with a report, TensorBoard logs and the doctor's diagnosis.
# Extra arguments go to `ikkuna demo` (e.g. --framework jax --break lr --epochs 5).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
framework=torch
previous=""
for argument in "$@"; do
  case "$previous$argument" in
    --framework=*) framework="${argument#--framework=}" ;;
    --framework*) [ "$previous" = "--framework" ] && framework="$argument" ;;
  esac
  previous="$([ "$argument" = "--framework" ] && echo --framework || true)"
done
case "$framework" in
  keras) extra=tensorflow ;;
  torch | jax) extra="$framework" ;;
  *) extra=torch ;;  # `ikkuna demo` itself names the frameworks it knows
esac
bash "$root/scripts/setup.sh" "$extra,demo"
cd "$root"
exec .venv/bin/ikkuna demo "$@"
