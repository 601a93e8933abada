"""Offline TTS engines (espeak-ng, flite, festival, accented festival, piper) behind one interface.

The engines that speak through Debian's packages live here, piper in `training.tts.piper`;
what they share (`Voice`, the per-voice draws, `Engine`) in `training.tts.voice`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from html import escape
from pathlib import Path
from typing import Any

from training.tts import accents, espeak_variants
from training.tts.piper import PiperEngine
from training.tts.voice import (
    Engine,
    Rendered,
    Voice,
    assemble_voice,
    common_draws,
    read_wav,
    run_engine,
    scratch_dir,
    voice_rng,
)

__all__ = ["ENGINES", "Voice", "make_voices", "read_wav", "require_engines", "scratch_dir"]

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
            c = common_draws(rng, 1.15 if gender == "F" else 1.0)
            variant_text = ""
            pitch = int(rng.integers(20, 56) if c["kind"] == "male" else rng.integers(50, 91))
            c["f0"] = 0.0  # set by the stock file and -p; not controlled
        else:
            c = common_draws(rng, 1.0)
            c["vtl"] = round(float(rng.uniform(0.95, 1.06)), 4)  # formants come from the file
            # espeak's intonation rises above the base pitch: 0.8 keeps the mean near f0
            base_f0 = 0.8 * c["f0"] / c["vtl"]
            variant_text = espeak_variants.generate(rng, c["kind"], c["tract"], base_f0)
            variant = "kws" + hashlib.sha1(variant_text.encode()).hexdigest()[:10]
            pitch = int(rng.integers(40, 61))
        synth = {"variant": variant, "variant_text": variant_text, "pitch": pitch}
        synth["speed"] = int(rng.integers(80, 221))
        return assemble_voice(self.name, seed, index, base, c, **synth)

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
                run_engine([*cmd, "-w", str(wav), "--", text])
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
        c = common_draws(rng, 1.15 if base == "slt" else 1.0)
        f0 = c["f0"] / c["vtl"]
        if base == "rms":
            c["f0"] = self._RMS_F0 * c["vtl"]
        synth = {"duration_stretch": round(float(rng.uniform(0.8, 2.0)), 3)}
        synth["f0_mean"] = round(f0, 1)
        synth["f0_stddev"] = round(float(rng.uniform(0.04, 0.3)) * f0, 1)
        return assemble_voice(self.name, seed, index, base, c, **synth)

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
            run_engine([self.binary, "-voice", voice.base, *setf, "-t", text, "-o", str(wav)])
            out.append(read_wav(wav))
        return out


class PicoEngine(Engine):
    """SVOX Pico (`pico2wave`, Debian non-free `libttspico-utils`): a British and an American
    English speaker, both unlike every other engine's; varied by its pitch markup, then by the
    shared vocal-tract, tempo and channel draws."""

    name = "pico"
    binary = "pico2wave"
    BASES = ("en-GB", "en-US")

    def make_voice(self, seed: int, index: int) -> Voice:
        rng = voice_rng(self.name, seed, index)
        base = self.BASES[int(rng.integers(len(self.BASES)))]
        c = common_draws(rng, 1.15)  # both are women's voices
        c["f0"] = 0.0  # set by the voice and its pitch level
        return assemble_voice(self.name, seed, index, base, c,
                              pitch=int(rng.integers(70, 141)))

    def render_raw(self, voice: Voice, texts: list[str], scratch: Path) -> Rendered:
        out = []
        for i, text in enumerate(texts):
            wav = scratch / f"p{i}.wav"
            marked = f'<pitch level="{voice.synth["pitch"]}">{escape(text)}</pitch>'
            run_engine([self.binary, "-l", voice.base, "-w", str(wav), marked])
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
        c = common_draws(rng, 1.15 if hts else 1.0)
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
        return assemble_voice(self.name, seed, index, base, c, **synth)

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
            dialect = voice.synth.get("dialect", accents.DEFAULT_DIALECT)
            texts = [accents.respell(t, lang, dialect) for t in texts]
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
        run_engine([self.binary, "--batch", str(script)])


class AccentEngine(FestivalEngine):
    """Non-English festival voices reading respelled English (`training.tts.accents`).

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
        c = common_draws(rng, tract)
        c["f0"] = 0.0  # each language's intonation model sets it
        synth: dict[str, Any] = {"lang": lang}
        if base.endswith("_hts"):
            synth["rate"] = round(float(rng.uniform(0.55, 1.25)), 3)
        else:  # czech_machac crashes on long stretches; tempo post-processing does the rest
            synth["duration_stretch"] = round(float(rng.uniform(0.8, 1.5)), 3)
        return assemble_voice("festival", seed, index, base, c, id_prefix=self.name, **synth)


class DialectAccentEngine(AccentEngine):
    """The accented festival voices reading English as spoken in a drawn English dialect
    (British, Scottish, Lancashire, West Midlands, Caribbean, US, New York: espeak-ng's
    pronunciation rules, not its audio). Without it, the only non-US English vowels in
    training come from espeak-ng voices: RP "go" is [ɡəʊ], US "go" [ɡoʊ]."""

    name = "festival-dialect"
    DIALECTS = EspeakEngine.BASES

    def make_voice(self, seed: int, index: int) -> Voice:
        voice = super().make_voice(seed, index)
        rng = voice_rng(f"{self.name}/dialect", seed, index)
        dialect = self.DIALECTS[int(rng.integers(len(self.DIALECTS)))]
        return replace(voice, synth={**voice.synth, "dialect": dialect})


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (EspeakEngine(), FliteEngine(), FestivalEngine(), AccentEngine(),
              DialectAccentEngine(), PicoEngine(), PiperEngine())
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
