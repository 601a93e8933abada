"""open_source turns the --source spec into the right, correctly configured source."""

from pathlib import Path

import numpy as np
import pytest

from edge_node.audio import AudioSettings, StdinSource, WavSource, open_source
from tests.support.audio_signals import speechlike, write_pcm_wav

pytestmark = pytest.mark.unit


def test_wav_spec(tmp_path: Path) -> None:
    path = tmp_path / "cmd.wav"
    x = speechlike(16000, 0.5)
    write_pcm_wav(path, np.stack([np.zeros_like(x), x], 1), 16000, "float32")
    with open_source(f"wav:{path}", AudioSettings(), block_samples=800, realtime_wav=True) as src:
        assert isinstance(src, WavSource) and src.realtime and src.block_samples == 800
        assert src.path == path and src.converter.selected == 1
    with open_source(f"wav:{path}", AudioSettings(channel=0)) as src:
        assert not src.realtime and src.converter.selected == 0
        assert not np.concatenate(list(src)).any()


@pytest.mark.parametrize(
    "spec,rate,channels,dtype",
    [
        ("stdin", 16000, 1, "<i2"),
        ("STDIN:44100", 44100, 1, "<i2"),
        ("stdin:48000:2:int32", 48000, 2, "<i4"),
        ("stdin:48000:2:S32_LE", 48000, 2, "<i4"),
        ("stdin:22050:1:float32", 22050, 1, "<f4"),
    ],
)
def test_stdin_specs(spec: str, rate: int, channels: int, dtype: str) -> None:
    src = open_source(spec, AudioSettings(remove_dc=False))
    assert isinstance(src, StdinSource)
    conv = src.converter
    assert (conv.rate, conv.channels, conv.dtype) == (rate, channels, np.dtype(dtype))
    assert not conv.remove_dc


@pytest.mark.parametrize(
    "spec,message",
    [
        ("speaker", "unknown audio source 'speaker'"),
        ("mic:usb", "unknown audio source"),
        ("wav:", "wav needs a path"),
        ("stdin:fast", "must be integers"),
        ("stdin:16000:0", "must be positive"),
        ("stdin:16000:1:int8", "FORMAT must be one of"),
        ("stdin:16000:1:int16:x", "bad stdin spec"),
    ],
)
def test_bad_specs_raise_value_error(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_source(spec, AudioSettings())
