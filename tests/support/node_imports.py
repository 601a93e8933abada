"""Which modules a real `edge-node run` imports: the node's memory on a Pi is mostly what it
imports (scipy.io ~8 MB, cryptography ~8 MB), so tests pin what each path may pull in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence

from tests.support.audio_signals import REPO

_PROBE = (
    "import json, sys\n"
    "from edge_node.cli import main\n"
    "wanted = json.loads(sys.argv[1])\n"
    "code = main(json.loads(sys.argv[2]))\n"
    "print(json.dumps({'exit': code, 'loaded': sorted(m for m in sys.modules\n"
    "    if any(m == w or m.startswith(w + '.') for w in wanted))}))\n"
)


def modules_after_run(args: Sequence[str], wanted: Sequence[str],
                      stdin: bytes = b"") -> tuple[int, list[str]]:
    """Run `edge-node ARGS` in a fresh interpreter until its audio ends; its exit code and which
    of the `wanted` modules (or their submodules) it had imported by then."""
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(list(wanted)),
                           json.dumps(list(args))], input=stdin, capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.decode().splitlines()[-1])
    return result["exit"], result["loaded"]
