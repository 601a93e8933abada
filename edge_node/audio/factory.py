"""Turn a command-line source spec ("mic", "wav:PATH", "stdin[:RATE[:CH[:FMT]]]") into a source."""

from __future__ import annotations

from edge_node.audio.base import DEFAULT_BLOCK_SAMPLES, SAMPLE_FORMATS, SAMPLE_RATE, AudioSource
from edge_node.audio.mic import MicSource
from edge_node.audio.settings import AudioSettings
from edge_node.audio.stdin import StdinSource
from edge_node.audio.wav import WavSource

SOURCE_SPECS = "'mic', 'wav:PATH' or 'stdin[:RATE[:CHANNELS[:FORMAT]]]'"

_FORMAT_ALIASES = {"s16_le": "int16", "s32_le": "int32", "float_le": "float32"}
"""arecord's -f names, so the pipe and the spec can be written with the same words."""


def _stdin_args(spec: str) -> tuple[int, int, str]:
    fields = spec.split(":")[1:]
    if len(fields) > 3:
        raise ValueError(f"bad stdin spec {spec!r}: use stdin[:RATE[:CHANNELS[:FORMAT]]]")
    try:
        rate = int(fields[0]) if fields and fields[0] else SAMPLE_RATE
        channels = int(fields[1]) if len(fields) > 1 and fields[1] else 1
    except ValueError as e:
        raise ValueError(f"bad stdin spec {spec!r}: RATE and CHANNELS must be integers") from e
    fmt = fields[2].lower() if len(fields) > 2 and fields[2] else "int16"
    fmt = _FORMAT_ALIASES.get(fmt, fmt)
    if rate <= 0 or channels < 1:
        raise ValueError(f"bad stdin spec {spec!r}: RATE and CHANNELS must be positive")
    if fmt not in SAMPLE_FORMATS:
        raise ValueError(f"bad stdin spec {spec!r}: FORMAT must be one of {list(SAMPLE_FORMATS)}")
    return rate, channels, fmt


def check_source(spec: str) -> None:
    """Raise ValueError (saying what to write) unless `spec` names a source that can open."""
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "mic" and not rest:
        return
    if kind == "wav":
        if not rest:
            raise ValueError(f"bad source {spec!r}: wav needs a path, e.g. wav:command.wav")
        return
    if kind == "stdin":
        _stdin_args(spec)
        return
    raise ValueError(f"unknown audio source {spec!r}: use {SOURCE_SPECS}")


def open_source(
    spec: str,
    settings: AudioSettings,
    block_samples: int = DEFAULT_BLOCK_SAMPLES,
    realtime_wav: bool = False,
) -> AudioSource:
    """Open the source named by ``spec``; ``settings`` configure the mic (and the channel)."""
    check_source(spec)
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "mic":
        return MicSource(settings, block_samples)
    if kind == "wav":
        return WavSource(rest, block_samples, realtime=realtime_wav, channel=settings.channel)
    if kind == "stdin":
        rate, channels, fmt = _stdin_args(spec)
        return StdinSource(
            sample_rate=rate,
            channels=channels,
            sample_format=fmt,
            channel=settings.channel,
            block_samples=block_samples,
            remove_dc=settings.remove_dc,
        )
    raise AssertionError(f"check_source let {spec!r} through")
