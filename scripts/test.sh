#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs everything it needs first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/bootstrap.sh dev
.venv/bin/ruff check edge_node training tests bench
exec .venv/bin/python -m pytest -q "$@"
