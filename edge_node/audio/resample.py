"""Block-wise sample-rate conversion that matches one-shot ``resample_poly`` exactly."""

from __future__ import annotations

import math

import numpy as np


class StreamingResampler:
    """Resample an unbounded stream chunk by chunk without clicks at chunk boundaries.

    Why overlap-save: ``resample_poly`` zero-pads the edges of whatever it is given, so
    resampling each 100 ms block on its own leaves a dip at every block boundary. Here each
    call resamples the pending input together with enough real neighbouring samples on both
    sides (the FIR half-length) and keeps only the outputs that those neighbours make exact.
    The result equals resampling the whole signal at once, at the cost of a small fixed
    latency (the right-hand context plus alignment to ``down`` input samples), which
    ``flush()`` releases at the end of the stream.
    """

    def __init__(self, in_rate: int, out_rate: int = 16000) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        g = math.gcd(int(in_rate), int(out_rate))
        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self.up = self.out_rate // g
        self.down = self.in_rate // g
        self.passthrough = self.up == self.down == 1
        half_len = 10 * max(self.up, self.down)
        if self.passthrough:
            self._taps = np.ones(1)
        else:
            # Imported only when a device needs resampling: scipy.signal costs ~60 MB of RAM.
            from scipy.signal import firwin

            # Same filter resample_poly designs by default, designed once instead of per call.
            self._taps = firwin(2 * half_len + 1, 1.0 / max(self.up, self.down),
                                window=("kaiser", 5.0))
        context = half_len // self.up + 2
        # Left context must be a multiple of ``down`` so the segment's output grid lines up.
        self._left = -(-context // self.down) * self.down
        self._right = context
        self._history = np.zeros(self._left)  # zeros = the padding one-shot would use
        self._pending = np.zeros(0)

    @property
    def latency_samples(self) -> int:
        """Worst-case input samples held back until more input (or ``flush``) arrives."""
        return 0 if self.passthrough else self._right + self.down - 1

    def _run(self, segment: np.ndarray) -> np.ndarray:
        from scipy.signal import resample_poly

        # scipy accepts FIR taps as `window` (documented); scipy-stubs only types window specs.
        return resample_poly(segment, self.up, self.down,  # type: ignore[call-overload]
                             window=self._taps)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Feed mono input samples; return the output samples that are now final."""
        x = np.asarray(samples, dtype=np.float64).reshape(-1)
        if self.passthrough:
            return x.astype(np.float32)
        self._pending = np.concatenate((self._pending, x))
        usable = len(self._pending) - self._right
        n = (usable // self.down) * self.down if usable > 0 else 0
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        segment = np.concatenate((self._history, self._pending[: n + self._right]))
        y = self._run(segment)
        skip = self._left * self.up // self.down
        out = y[skip : skip + n * self.up // self.down]
        tail = np.concatenate((self._history, self._pending[:n]))
        self._history = tail[len(tail) - self._left :]
        self._pending = self._pending[n:]
        return out.astype(np.float32)

    def flush(self) -> np.ndarray:
        """End the stream: return the held-back outputs (input treated as zero afterwards)."""
        if self.passthrough or len(self._pending) == 0:
            self.reset()
            return np.zeros(0, dtype=np.float32)
        segment = np.concatenate((self._history, self._pending))
        y = self._run(segment)
        skip = self._left * self.up // self.down
        count = -(-len(self._pending) * self.up // self.down)
        out = y[skip : skip + count]
        self.reset()
        return out.astype(np.float32)

    def reset(self) -> None:
        """Forget all state so the next sample starts a new stream."""
        self._history = np.zeros(self._left)
        self._pending = np.zeros(0)
