"""Making each kind of training and evaluation material: the steps `kws-train`'s subcommands
run one at a time and the recipe (`training.recipe`) runs in order.

Every maker writes a directory or a recording (+ `.json` events) and is told everything it
needs as arguments, so a subcommand and the recipe cannot make the same material two ways.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.data.vocab import COMMANDS, SILENCE_LABEL

if TYPE_CHECKING:
    from training.data.real_speech import Recording

log = logging.getLogger(__name__)

STREAM_SEED_OFFSET = 1000
"""Voices of a test recording are drawn with seed + this: none of them trained."""
MINING_SEED_OFFSET = 2000
"""Texts, noise and timing of the mining recording (its voices are the training voices)."""


def parse_voices(text: str) -> dict[str, int]:
    """'espeak=250,flite=120' -> {'espeak': 250, 'flite': 120}."""
    result = {}
    for part in text.split(","):
        engine, _, count = part.partition("=")
        result[engine.strip()] = int(count)
    return result


def synthesised_dataset(out: Path, *, voices: Mapping[str, int], silence: int,
                        unknown_per_voice: float, near_misses_per_voice: float, seed: int,
                        workers: int, words: Sequence[str] = COMMANDS, takes: int = 1) -> Path:
    """A synthetic dataset: each engine's voices say every word (`takes` times), other words
    (`unknown_per_voice` per voice) and near misses; plus `silence` clips of noise."""
    from training.data.dataset_synth import synthesize_dataset

    unknown = {engine: int(round(count * unknown_per_voice)) for engine, count in voices.items()}
    per_word = {engine: count * takes for engine, count in voices.items()}
    return synthesize_dataset(out, seed=seed, words=tuple(words),
                              clips_per_word_per_engine=per_word,
                              unknown_clips_per_engine=unknown, silence_clips=silence,
                              workers=workers, engines=tuple(voices), takes_per_voice=takes,
                              near_misses_per_voice=near_misses_per_voice)


def tts_recording(out: Path, *, minutes: float, seed: int, engines: Sequence[str],
                  voices_per_engine: int, workers: int, words: Sequence[str] = COMMANDS,
                  command_share: float = 0.5, max_gap_s: float = 8.0) -> Path:
    """A streaming test recording spoken by voices no model trained on (events in `.json`)."""
    from training.data.stream_synth import make_stream_recording

    make_stream_recording(out, out.with_suffix(".json"), duration_s=minutes * 60,
                          seed=seed + STREAM_SEED_OFFSET, words=tuple(words),
                          voices_per_engine=voices_per_engine, workers=workers,
                          command_share=command_share, max_gap_s=max_gap_s,
                          engines=tuple(engines))
    return out


def mining_engines(dataset: dict) -> tuple[str, ...]:
    """The engines whose voices speak a dataset's mining recording: the dataset's own, less
    the train-only ones (accented voices have no events to cut by); a dataset without espeak-ng
    must not get espeak-ng's voices through its windows."""
    from training.tts.engines import ENGINES

    engines = dataset.get("engines") or ("espeak", "flite", "festival")
    return tuple(e for e in engines if not ENGINES[e].train_only)


def mined_windows(data: Path, out: Path, *, minutes: float, voices_per_engine: int,
                  unknown: int, commands: int, silence: int, near_miss_share: float, seed: int,
                  workers: int, words: Sequence[str] = COMMANDS) -> Path:
    """Render a recording with the dataset's own voices and cut labelled 1 s windows from it,
    the way the live detector sees them."""
    from training.data.stream_mining import MiningPlan, mine
    from training.data.stream_synth import make_stream_recording

    meta = json.loads((data / "dataset.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    recording = out / "recording.wav"
    if not recording.is_file():
        make_stream_recording(recording, recording.with_suffix(".json"),
                              duration_s=minutes * 60, seed=seed + MINING_SEED_OFFSET,
                              voice_seed=meta["seed"], words=tuple(words),
                              engines=mining_engines(meta),
                              voices_per_engine=voices_per_engine, workers=workers,
                              command_share=0.35, max_gap_s=4.0,
                              near_miss_share=near_miss_share)
    mine(recording, out, MiningPlan(unknown, commands, silence), seed=seed, commands=words)
    return out


def hard_negative_windows(recording: Path, model: Path, out: Path, threshold: float,
                          words: Sequence[str] = COMMANDS) -> Path:
    """The windows behind a model's false activations on a mining recording (train-only)."""
    from training.data.stream_mining import mine_hard
    from training.evaluation.node_eval import node_detections

    mine_hard(recording, node_detections(model, recording, threshold), out, words)
    return out


def talk_dataset(real_speech: Path, out: Path, windows: int, seed: int) -> Path:
    """1 s windows of the training part of real talk, as `_unknown_` training data."""
    from training.data.real_speech import load_corpus, split_corpus, talk_windows

    talk_windows(split_corpus(load_corpus(real_speech)).train_talk, out, windows, seed)
    return out


def noise_dataset(real_speech: Path, out: Path, windows: int, seed: int) -> Path:
    """1 s windows of the training part of real household noise, as `_silence_` training data."""
    from training.data.real_speech import load_corpus, noise_windows, split_corpus

    noise_windows(split_corpus(load_corpus(real_speech)).train_noise, out, windows, seed)
    return out


def people_recording(out: Path, *, kind: str, real_speech: Path,
                     speech_commands: Path | None, minutes: float, seed: int,
                     talk_share: float = 0.2, gap_s: tuple[float, float] = (1.0, 6.0),
                     words: Sequence[str] = COMMANDS) -> Path:
    """An evaluation recording of people no shipped model trained on, over held-out real noise:
    `people` (commands, other words and talk excerpts) or `talk` (held-out talk only, whole)."""
    from training.data.dataset import PEOPLE_ENGINE, load_label_folders, split_people
    from training.data.real_speech import load_corpus, read_all, split_corpus
    from training.data.stream_people import make_people_recording, make_talk_recording

    corpus = split_corpus(load_corpus(real_speech))
    noises = read_all(corpus.eval_noise)
    if kind == "talk":
        meta = make_talk_recording(out, corpus.eval_talk, noises, words, seed=seed)
    else:
        if speech_commands is None:
            raise ValueError("a people recording needs recorded people (--speech-commands)")
        people = load_label_folders(speech_commands, words, PEOPLE_ENGINE)
        held = [c for c in split_people(people)[1] if c.label != SILENCE_LABEL]
        meta = make_people_recording(out, held, corpus.eval_talk, noises, words,
                                     duration_s=minutes * 60, seed=seed, talk_share=talk_share,
                                     gap_s=gap_s)
    meta["attribution"] = recording_attribution(meta, corpus.eval_talk, corpus.eval_noise)
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return out


def recording_attribution(meta: dict[str, Any], talk: Sequence[Recording],
                          noise: Sequence[Recording]) -> list[str]:
    """What a recording made of these files must say of its sources (CC BY asks for it):
    the recorded people's data set, and the licence of each talk and noise file it used."""
    from training.data.dataset import PEOPLE_ENGINE, SPEECH_COMMANDS_ATTRIBUTION
    from training.data.real_speech import licences

    files = {e.get("file") for e in meta["events"]}
    used = [r for r in talk if r.path.name in files]
    used += [noise[s["noise"]] for s in meta["background"]]
    people = any(e["engine"] == PEOPLE_ENGINE for e in meta["events"])
    return [SPEECH_COMMANDS_ATTRIBUTION] * people + licences(used)
