"""AudioSettings defaults suit the SPH0645 and bad values fail early with clear messages."""

import dataclasses

import pytest

from edge_node.audio import AudioSettings
from edge_node.audio.mic import candidate_rates

pytestmark = pytest.mark.unit


def test_defaults_match_the_sph0645() -> None:
    s = AudioSettings()
    assert (s.sample_format, s.channel, s.discard_s, s.remove_dc) == ("int32", "auto", 1.0, True)
    assert s.device is None and s.sample_rate is None and s.channels is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.gain_db = 3.0  # type: ignore[misc]


def test_every_field_is_documented_in_the_source() -> None:
    import inspect

    import edge_node.audio.settings as module

    source = inspect.getsource(module)
    for field in dataclasses.fields(AudioSettings):
        line = next(
            i for i, t in enumerate(source.splitlines()) if t.strip().startswith(f"{field.name}:")
        )
        assert source.splitlines()[line + 1].strip().startswith('"""'), field.name


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"sample_format": "float32"}, "unknown sample_format 'float32'"),
        ({"device": -1}, "device index"),
        ({"device": " "}, "device name"),
        ({"sample_rate": 0}, "sample_rate"),
        ({"channels": 0}, "channels"),
        ({"channel": "left"}, "channel must be"),
        ({"channel": 2, "channels": 2}, "does not exist"),
        ({"discard_s": -1.0}, "discard_s"),
        ({"frames_per_buffer_ms": 0}, "frames_per_buffer_ms"),
    ],
)
def test_invalid_settings_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AudioSettings(**kwargs)


def test_candidate_rates() -> None:
    assert candidate_rates(AudioSettings(), 48000.0) == [16000, 48000]
    assert candidate_rates(AudioSettings(), 16000.0) == [16000]
    assert candidate_rates(AudioSettings(sample_rate=44100), 48000.0) == [44100]
