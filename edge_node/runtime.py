"""The TensorFlow Lite runtime shim: tflite-runtime or its successor ai-edge-litert, never
full TensorFlow on the node. Used by the classifier (`edge_node.model`) and by feature profiles
that run a network of their own (`edge_node.speech_embedding`)."""

from __future__ import annotations

import importlib
import os

RUNTIME_ENV = "EDGE_NODE_TFLITE_RUNTIME"
RUNTIMES = {
    "ai-edge-litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
}


class RuntimeUnavailableError(RuntimeError):
    """No usable TensorFlow Lite runtime (or an unknown one was asked for)."""


def load_interpreter_class(preferred: str | None = None) -> tuple[str, type]:
    """The Interpreter class of the installed runtime (`preferred` or $EDGE_NODE_TFLITE_RUNTIME
    first, then ai-edge-litert, then tflite-runtime)."""
    preferred = preferred or os.environ.get(RUNTIME_ENV) or None
    if preferred and preferred not in RUNTIMES:
        raise RuntimeUnavailableError(
            f"unknown TFLite runtime {preferred!r}; use one of {sorted(RUNTIMES)}")
    order = [preferred] if preferred else list(RUNTIMES)
    errors = []
    for name in order:
        try:
            module = importlib.import_module(RUNTIMES[name])
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        return name, module.Interpreter
    raise RuntimeUnavailableError(
        "no TensorFlow Lite runtime could be imported ("
        + "; ".join(errors)
        + "); install 'ai-edge-litert' or 'tflite-runtime'"
    )


def single_blas_thread() -> None:
    """One BLAS thread for the rest of this process (threadpoolctl: numpy's OpenBLAS is loaded
    by now). The node's matrices are small (a window's log-mel frames times the mel filters);
    OpenBLAS hands the larger ones (the isolation check's 2 s) to worker threads that then spin
    (sched_yield) for milliseconds after every call: measured, that doubled the streaming
    node's CPU (BENCHMARKS.md, "Recognition speed"). Training keeps its threads."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
