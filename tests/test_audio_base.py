"""Shared conditioning: PcmConverter, Reblocker and channel choice."""

import numpy as np
import pytest
from scipy.signal import butter, lfilter

from edge_node.audio import PcmConverter, Reblocker, choose_channel
from edge_node.audio.base import scale_pcm
from tests.support.audio_signals import speechlike, to_16k

pytestmark = pytest.mark.unit


def _convert_all(conv: PcmConverter, chunks: list) -> np.ndarray:
    return np.concatenate([conv.convert(c) for c in chunks] + [conv.flush()])


def test_reblocker_cuts_exact_blocks_and_pads_the_last() -> None:
    rb = Reblocker(1600)
    x = np.arange(5000, dtype=np.float32)
    blocks = rb.push(x[:700]) + rb.push(x[700:4000]) + rb.push(x[4000:])
    assert [len(b) for b in blocks] == [1600, 1600, 1600]
    last = rb.flush()
    assert last is not None and len(last) == 1600
    np.testing.assert_array_equal(np.concatenate(blocks + [last])[:5000], x)
    assert not last[200:].any()
    assert rb.flush() is None


def test_scaling_of_int_formats() -> None:
    assert scale_pcm(np.array([-32768, 16384], dtype=np.int16)).tolist() == [-1.0, 0.5]
    assert scale_pcm(np.array([-(2**31), 2**30], dtype=np.int32)).tolist() == [-1.0, 0.5]
    assert scale_pcm(np.array([0, 128, 192], dtype=np.uint8)).tolist() == [-1.0, 0.0, 0.5]


@pytest.mark.parametrize("fmt,dtype,scale", [("int16", "<i2", 2**15), ("int32", "<i4", 2**31)])
def test_bytes_split_mid_frame_give_the_same_output(fmt: str, dtype: str, scale: int) -> None:
    x = speechlike(48000, 0.4)
    stereo = np.stack([np.zeros_like(x), x], axis=1)
    raw = np.round(stereo * (scale - 1)).astype(dtype).tobytes()
    cuts = [0, 1, 7, 1001, 30001, 55555, len(raw)]
    chunks = [raw[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    one = _convert_all(PcmConverter(48000, 2, fmt, channel=1, remove_dc=False), [raw])
    split = _convert_all(PcmConverter(48000, 2, fmt, channel=1, remove_dc=False), chunks)
    np.testing.assert_array_equal(one, split)
    assert np.abs(one - to_16k(x, 48000)).max() < 1e-3


def test_dc_filter_keeps_state_across_chunks() -> None:
    rate = 16000
    x = speechlike(rate, 1.0) * 0.1 + 0.3
    chunks = [x[i : i + 1234] for i in range(0, len(x), 1234)]
    y = _convert_all(PcmConverter(rate, 1, remove_dc=True), chunks)
    b, a = butter(1, 20.0, btype="highpass", fs=rate)
    ref = lfilter(b, a, x - x[0])
    assert np.abs(y - ref).max() < 1e-5
    assert abs(y[:100].mean()) < 0.01, "a large offset must not start with a click"
    assert abs(y[4000:].mean()) < 2e-3


def test_gain_and_clipping() -> None:
    x = speechlike(16000, 0.5) * 0.2
    plain = _convert_all(PcmConverter(16000, 1, remove_dc=False), [x])
    louder = _convert_all(PcmConverter(16000, 1, remove_dc=False, gain_db=30.0), [x])
    np.testing.assert_allclose(louder, np.clip(plain * 10**1.5, -1, 1), atol=1e-6)
    assert louder.max() == 1.0 and louder.min() >= -1.0 and (np.abs(louder) == 1.0).sum() > 10


def test_auto_channel_decides_after_first_second_and_keeps_it() -> None:
    x = speechlike(16000, 2.0)
    frames = np.stack([0.01 * np.random.default_rng(0).standard_normal(len(x)), x], axis=1)
    conv = PcmConverter(16000, 2, "float32", channel="auto", remove_dc=False)
    assert len(conv.convert(frames[:8000])) == 0 and conv.selected is None
    y = _convert_all(conv, [frames[8000:16000], frames[16000:]])
    assert conv.selected == 1
    np.testing.assert_allclose(y, x, atol=1e-6)


def test_auto_channel_on_short_stream_decides_at_flush() -> None:
    x = speechlike(16000, 0.3)
    conv = PcmConverter(16000, 2, channel="auto", remove_dc=False)
    y = _convert_all(conv, [np.stack([x, np.zeros_like(x)], axis=1)])
    assert conv.selected == 0 and len(y) == len(x)


def test_mix_averages_channels() -> None:
    x = speechlike(16000, 0.2)
    conv = PcmConverter(16000, 2, channel="mix", remove_dc=False)
    y = _convert_all(conv, [np.stack([x, 0.5 * x], axis=1)])
    np.testing.assert_allclose(y, 0.75 * x, atol=1e-6)


def test_choose_channel() -> None:
    x = speechlike(16000, 0.5)
    z = np.zeros_like(x)
    assert choose_channel(np.stack([x, z], axis=1)) == 0
    assert choose_channel(np.stack([z + 0.5, x], axis=1)) == 1, "DC is not signal energy"
    assert choose_channel(np.stack([x, 0.9 * x], axis=1)) is None
    assert choose_channel(x) == 0


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"sample_format": "int24"}, "unknown sample_format"),
        ({"channels": 0}, "channels must be"),
        ({"channels": 2, "channel": 2}, "out of range"),
        ({"channel": "left"}, "channel must be"),
    ],
)
def test_converter_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PcmConverter(16000, **kwargs)
