#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs everything it needs first.
#   scripts/test.sh                every tier (unit, integration, training): what CI runs
#   scripts/test.sh --fast         the unit tier only (`-m unit`: pure, fast tests)
#   scripts/test.sh ARGS...        other arguments go to pytest, e.g. a test file, or
#                                  `tests/test_display.py --update-docs-images` to redraw the
#                                  docs/display pictures that test compares the screen with
# The tiers are pytest markers (pyproject.toml); tests/support/tiers.py refuses untiered tests.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
pytest_args=()
for arg in "$@"; do
  if [ "$arg" = --fast ]; then pytest_args+=(-m unit); else pytest_args+=("$arg"); fi
done
scripts/bootstrap.sh dev
scripts/lint.sh
exec .venv/bin/python -m pytest -q ${pytest_args[@]+"${pytest_args[@]}"}
