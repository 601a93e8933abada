"""StreamingResampler must equal one-shot resample_poly, however the input is chunked."""

import math

import numpy as np
import pytest
from scipy.signal import resample_poly

from edge_node.audio import StreamingResampler
from tests.support.audio_signals import speechlike, to_16k

pytestmark = pytest.mark.unit


def _blockwise(resampler: StreamingResampler, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    out, pos = [], 0
    for size in sizes:
        out.append(resampler.process(x[pos : pos + size]))
        pos += size
    assert pos >= len(x)
    out.append(resampler.flush())
    return np.concatenate(out)


@pytest.mark.parametrize("rate", [44100, 48000, 16000, 22050, 8000, 32000])
def test_100ms_blocks_match_one_shot(rate: int) -> None:
    x = speechlike(rate, 1.23)
    block = rate // 10
    y = _blockwise(StreamingResampler(rate), x, [block] * math.ceil(len(x) / block))
    ref = to_16k(x, rate)
    assert len(y) == len(ref) == math.ceil(len(x) * 16000 / rate)
    assert y.dtype == np.float32
    assert np.abs(y - ref).max() < 1e-3


@pytest.mark.parametrize("rate", [44100, 48000])
def test_irregular_chunks_match_one_shot(rate: int) -> None:
    rng = np.random.default_rng(1)
    x = speechlike(rate, 0.9, seed=2)
    sizes = [int(s) for s in rng.integers(1, 3000, size=len(x))]
    y = _blockwise(StreamingResampler(rate), x, sizes)
    ref = to_16k(x, rate)
    assert len(y) == len(ref)
    assert np.abs(y - ref).max() < 1e-3


def test_naive_per_block_resampling_would_click() -> None:
    """The comparison above is sensitive: independent per-block resampling fails it."""
    x = speechlike(44100, 1.0)
    naive = np.concatenate(
        [resample_poly(x[i : i + 4410], 160, 441) for i in range(0, 44100, 4410)]
    )
    assert np.abs(naive - to_16k(x, 44100)).max() > 1e-2


def test_latency_is_bounded_and_reset_allows_reuse() -> None:
    r = StreamingResampler(44100)
    x = speechlike(44100, 0.5)
    first = r.process(x)
    missing = math.ceil(len(x) * 16000 / 44100) - len(first)
    assert 0 < missing <= math.ceil(r.latency_samples * 16000 / 44100) + 1
    first = np.concatenate((first, r.flush()))
    second = np.concatenate((r.process(x), r.flush()))
    np.testing.assert_array_equal(first, second)


def test_passthrough_at_16k_is_exact_and_immediate() -> None:
    r = StreamingResampler(16000)
    x = speechlike(16000, 0.3)
    np.testing.assert_array_equal(r.process(x), x.astype(np.float32))
    assert len(r.flush()) == 0


def test_invalid_rates_raise() -> None:
    with pytest.raises(ValueError, match="positive"):
        StreamingResampler(0)
