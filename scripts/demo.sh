#!/usr/bin/env bash
# The node on bundled example audio with the bundled model: no hardware, no setup.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/bootstrap.sh" node
exec "$root/.venv/bin/edge-node" run --source example "$@"
