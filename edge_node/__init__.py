"""kws-edge-node: on-device voice-command recognition for Raspberry Pi and Home Assistant."""

import os

__version__ = "0.1.0"

# One OpenBLAS thread, set before numpy loads it (users can still override it). The node's
# matrices are small (a window's log-mel frames times the mel filters); with more threads
# OpenBLAS hands some of them to worker threads that then spin (sched_yield) for milliseconds
# after every call: measured, that doubled the streaming node's CPU (bench/recognition.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
