#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs everything it needs first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/bootstrap.sh dev
scripts/lint.sh
exec .venv/bin/python -m pytest -q "$@"
