"""Write a synthetic keyword-spotting dataset to disk, in parallel and deterministically.

Layout: `<out>/<engine>/<label>/<voice_id>_<n>.wav` (16 kHz mono int16), `clips.csv`
(path,label,engine,voice,text,scored: 0 for train-only clips), `dataset.json` (parameters,
counts, voices; identical for identical arguments) and `run.json` (timing, which is not
reproducible).
Every voice says every keyword, so train/test splits by voice or by engine are possible.
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing as mp
import re
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training.data.noise import NOISE_KINDS, make_noise
from training.data.vocab import (
    COMMANDS,
    SILENCE_LABEL,
    UNKNOWN_LABEL,
    near_misses,
    pick_variant,
    sentence_variants,
    text_variants,
    unknown_material,
)
from training.tts.engines import ENGINES, Voice, make_voices, require_engines
from training.tts.synthesis import SAMPLE_RATE, ClipSpec, render_clips, write_wav

DEFAULT_ENGINES: tuple[str, ...] = ("espeak", "flite", "festival")
FULL_SIZE: dict[str, int] = {"espeak": 250, "flite": 120, "festival": 60}
NOISE_ENGINE = "noise"
SILENCE_SECONDS = 1.0
_SILENCE_CHUNK = 100
CSV_FIELDS = ("path", "label", "engine", "voice", "text", "scored")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoiceJob:
    """All clips one voice renders (one worker task; festival start-up is paid once)."""

    voice: Voice
    specs: tuple[ClipSpec, ...]
    labels: tuple[str, ...]
    paths: tuple[str, ...]  # relative to the dataset root
    scored: bool = True  # False for engines whose clips only train


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def label_dir(label: str) -> str:
    """File-system-safe directory name for a label (custom keywords may contain spaces)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", label)


def _per_engine(value: Mapping[str, int] | int | None, engines: Sequence[str]) -> dict[str, int]:
    if value is None:
        return {e: FULL_SIZE.get(e, 100) for e in engines}
    if isinstance(value, int):
        return {e: value for e in engines}
    return {e: int(value.get(e, 0)) for e in engines}


def plan_voice_jobs(
    words: Sequence[str],
    clips_per_word: Mapping[str, int],
    unknown_clips: Mapping[str, int],
    seed: int,
    takes_per_voice: int = 1,
    sentence_share: float = 0.3,
    near_miss_clips: Mapping[str, int] | None = None,
) -> list[VoiceJob]:
    """Decide every clip (voice, text, seed, path) before any audio is rendered.

    `near_miss_clips` adds `_unknown_` clips of words that sound like a command ("ride",
    "gown"), said by the voices that also say the commands. They have their own seeds, so
    the other clips are the same with or without them. Measured, not in the recipe: fewer
    false activations on voices like the training voices, fewer commands detected from an
    engine never trained on (BENCHMARKS.md).
    """
    unk_words, unk_sentences = unknown_material(words)
    close = near_misses(words)
    jobs: list[VoiceJob] = []
    for engine, n_clips in clips_per_word.items():
        n_voices = -(-n_clips // takes_per_voice) if n_clips else 0
        if n_voices == 0:
            continue
        items: list[list[tuple[ClipSpec, str]]] = [[] for _ in range(n_voices)]
        for v in range(n_voices):
            for word in words:
                for take in range(min(takes_per_voice, n_clips - v * takes_per_voice)):
                    seed_t = (seed, _crc(engine), v, _crc(word), take)
                    text = pick_variant(text_variants(word), np.random.default_rng(seed_t))
                    items[v].append((ClipSpec(text, "word", seed_t), word))
        for j in range(unknown_clips.get(engine, 0)):
            seed_t = (seed, _crc(engine), 1 << 20, j)
            rng = np.random.default_rng(seed_t)
            if unk_sentences and rng.random() < sentence_share:
                sentence = unk_sentences[int(rng.integers(len(unk_sentences)))]
                spec = ClipSpec(pick_variant(sentence_variants(sentence), rng), "sentence", seed_t)
            else:
                word = unk_words[int(rng.integers(len(unk_words)))]
                spec = ClipSpec(pick_variant(text_variants(word), rng), "word", seed_t)
            items[j % n_voices].append((spec, UNKNOWN_LABEL))
        for j in range((near_miss_clips or {}).get(engine, 0) if close else 0):
            seed_t = (seed, _crc(engine), 2 << 20, j)
            rng = np.random.default_rng(seed_t)
            word = close[int(rng.integers(len(close)))]
            spec = ClipSpec(pick_variant(text_variants(word), rng), "word", seed_t)
            items[j % n_voices].append((spec, UNKNOWN_LABEL))
        for voice, its in zip(make_voices(engine, n_voices, seed), items, strict=True):
            paths = tuple(
                f"{voice.engine}/{label_dir(label)}/{voice.voice_id}_{n}.wav"
                for n, (_, label) in enumerate(its)
            )
            specs = tuple(s for s, _ in its)
            jobs.append(VoiceJob(voice, specs, tuple(lbl for _, lbl in its), paths,
                                 not ENGINES[engine].train_only))
    return jobs


def _run_voice_job(args: tuple[VoiceJob, Path, Path]) -> tuple[list[dict[str, str]], list[str]]:
    job, out_dir, scratch = args
    try:
        clips = render_clips(job.voice, job.specs, scratch)
    except Exception as exc:  # one broken voice must not abort a long run; it is reported
        return [], [f"{job.voice.voice_id}: {type(exc).__name__}: {exc}"]
    rows = []
    for clip, spec, label, path in zip(clips, job.specs, job.labels, job.paths, strict=True):
        write_wav(out_dir / path, clip)
        v = job.voice
        rows.append({"path": path, "label": label, "engine": v.engine, "voice": v.voice_id,
                     "text": spec.text, "scored": str(int(job.scored))})  # fmt: skip
    return rows, []


def _run_silence_job(args: tuple[int, range, Path]) -> tuple[list[dict[str, str]], list[str]]:
    seed, indices, out_dir = args
    rows = []
    for i in indices:
        rng = np.random.default_rng((seed, _crc(NOISE_ENGINE), i))
        kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
        path = f"{NOISE_ENGINE}/{SILENCE_LABEL}/noise-{kind}_{i}.wav"
        write_wav(out_dir / path, make_noise(kind, SILENCE_SECONDS, rng))
        rows.append({"path": path, "label": SILENCE_LABEL, "engine": NOISE_ENGINE,
                     "voice": f"noise-{kind}", "text": "", "scored": "1"})  # fmt: skip
    return rows, []


def _task_size(task: tuple) -> int:
    return len(task[0].specs) if isinstance(task[0], VoiceJob) else len(task[1])


def _dispatch(task: tuple) -> tuple[list[dict[str, str]], list[str], int]:
    """Run one task; the planned clip count lets the progress bar count failures too."""
    run = _run_voice_job if isinstance(task[0], VoiceJob) else _run_silence_job
    return (*run(task), _task_size(task))


def synthesize_dataset(
    out_dir: str | Path,
    *,
    seed: int,
    words: Sequence[str] = COMMANDS,
    clips_per_word_per_engine: Mapping[str, int] | int | None = None,
    unknown_clips_per_engine: Mapping[str, int] | int | None = None,
    silence_clips: int = 1500,
    workers: int = 2,
    engines: Sequence[str] = DEFAULT_ENGINES,
    takes_per_voice: int = 1,
    sentence_share: float = 0.3,
    near_misses_per_voice: float = 0.0,
    progress: bool = True,
) -> Path:
    """Render the dataset into an empty `out_dir` and return its path.

    Counts default to `FULL_SIZE` voices per engine, each saying every word once
    (`takes_per_voice` > 1 uses fewer voices with several takes each). Workers are
    spawned processes, so a calling script needs an `if __name__ == "__main__":` guard.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")
    require_engines(engines)
    if seed < 0 or takes_per_voice < 1:
        raise ValueError("seed must be >= 0 and takes_per_voice >= 1")
    words = tuple(words)
    per_word = _per_engine(clips_per_word_per_engine, engines)
    per_unknown = _per_engine(
        per_word if unknown_clips_per_engine is None else unknown_clips_per_engine, engines
    )
    per_near_miss = {e: round(n * near_misses_per_voice / takes_per_voice)
                     for e, n in per_word.items()}
    jobs = plan_voice_jobs(words, per_word, per_unknown, seed, takes_per_voice, sentence_share,
                           per_near_miss)
    jobs.sort(key=lambda j: (j.voice.engine != "festival", j.voice.engine, j.voice.voice_id))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    rows: list[dict[str, str]] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kws-synth-") as scratch:
        tasks: list[tuple] = [(job, out, Path(scratch)) for job in jobs]
        tasks += [
            (seed, range(i, min(i + _SILENCE_CHUNK, silence_clips)), out)
            for i in range(0, silence_clips, _SILENCE_CHUNK)
        ]
        total = sum(_task_size(t) for t in tasks)
        bar = tqdm(total=total, unit="clip", disable=not progress, desc="synth")
        if workers <= 1:
            results = map(_dispatch, tasks)
            pool = None
        else:
            pool = mp.get_context("spawn").Pool(workers)
            results = pool.imap_unordered(_dispatch, tasks)
        for task_rows, task_failures, size in results:
            rows += task_rows
            failures += task_failures
            bar.update(size)
        if pool is not None:
            pool.close()
            pool.join()
        bar.close()
    elapsed = time.monotonic() - t0
    if failures:
        log.warning("%d voices failed (see dataset.json): %s", len(failures), failures[0])
    rows.sort(key=lambda r: r["path"])
    write_clips_csv(out / "clips.csv", rows)
    meta = {
        "seed": seed,
        "sample_rate": SAMPLE_RATE,
        "words": list(words),
        "engines": list(engines),
        "clips_per_word_per_engine": per_word,
        "unknown_clips_per_engine": per_unknown,
        "silence_clips": silence_clips,
        "takes_per_voice": takes_per_voice,
        "sentence_share": sentence_share,
        "near_misses_per_voice": near_misses_per_voice,
        "counts": _counts(rows),
        "n_clips": len(rows),
        "failures": sorted(failures),
        "voices": [j.voice.to_json() for j in sorted(jobs, key=lambda j: j.voice.voice_id)],
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    run = {"elapsed_s": round(elapsed, 2), "workers": workers, "n_clips": len(rows),
           "clips_per_s": round(len(rows) / max(elapsed, 1e-9), 2)}  # fmt: skip
    (out / "run.json").write_text(json.dumps(run, indent=1))
    return out


def _counts(rows: Sequence[Mapping[str, str]]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {}
    for r in rows:
        counts.setdefault(r["engine"], Counter())[r["label"]] += 1
    return {e: dict(sorted(c.items())) for e, c in sorted(counts.items())}


def write_clips_csv(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_clips_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a dataset's clips.csv (paths relative to the CSV's directory)."""
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))
