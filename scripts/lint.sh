#!/usr/bin/env bash
# Static checks: ruff over every package, mypy over the node and the fleet tools.
# Uses the .venv that `scripts/bootstrap.sh dev` makes (scripts/test.sh runs it first).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ ! -x .venv/bin/mypy ] || [ ! -x .venv/bin/ruff ]; then
  echo "lint: .venv lacks ruff or mypy; run scripts/bootstrap.sh dev first" >&2
  exit 1
fi
.venv/bin/ruff check edge_node training tests bench provisioning
.venv/bin/mypy edge_node provisioning
