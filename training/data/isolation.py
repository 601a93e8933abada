"""Examples for the isolation check (`edge_node.isolation`): the audio around a moment the
classifier could fire, labelled `alone` (a word said on its own) or `other` (a moment inside
talk, at its edges, or in noise with no word at all).

They are cut from long recordings made exactly like the evaluation recordings of people
(`training.data.stream_people.make_people_recording`: recorded clips said on their own, between
excerpts of real talk, over real household noise), but of the TRAINING side only: the speakers,
talkers and noise files no evaluation uses. So the check learns the pause around a command from
the very kind of audio it is judged on, and is judged on people and rooms it never heard.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.features import SAMPLE_RATE, FeatureExtractor
from edge_node.isolation import ALONE_LABEL, ISOLATION_LABELS
from training.data.audio_files import read_audio

log = logging.getLogger(__name__)

WORD_DELAY_S = (0.3, 1.2)
"""Where the classifier fires after a word's start (the bundled model on held-out people fires
0.36-1.14 s after, 1st-99th percentile): the moments an `alone` example is cut at."""
EDGE_S = 1.0
"""Talk examples are cut more often within this of an excerpt's start and end, where a word
has a pause on one side only: the hardest talk to tell from a word alone."""


def training_recordings(speech_commands: Path, real_speech: Path, out_dir: Path,
                        minutes: float, counts: Mapping[int, int]) -> dict[int, list[Path]]:
    """Per seed, `counts[seed]` recordings of training speakers' clips and training talk over
    training noise, and one of every training talk file whole (long readings and
    conversations, where most words inside sentences are). Kept in `out_dir`: the clips and
    noise are read only when a recording is missing."""
    from training.data.dataset import PEOPLE_ENGINE, load_label_folders, split_people
    from training.data.real_speech import load_corpus, read_all, split_corpus
    from training.data.stream_people import make_people_recording, make_talk_recording
    from training.data.vocab import COMMANDS, SILENCE_LABEL

    plan = {seed: [out_dir / f"isolation-{seed}-{index}.wav" for index in range(count)]
            + [out_dir / f"isolation-{seed}-talk.wav"] for seed, count in counts.items()}
    missing = [(seed, path) for seed, paths in plan.items() for path in paths
               if not path.with_suffix(".json").is_file()]
    if missing:
        corpus = split_corpus(load_corpus(real_speech))
        noises = read_all(corpus.train_noise)
        people = load_label_folders(speech_commands, COMMANDS, PEOPLE_ENGINE)
        clips = [c for c in split_people(people)[0] if c.label != SILENCE_LABEL]
        out_dir.mkdir(parents=True, exist_ok=True)
    for seed, path in missing:
        if path.stem.endswith("-talk"):
            meta = make_talk_recording(path, corpus.train_talk, noises, COMMANDS, seed=seed)
        else:
            index = int(path.stem.rsplit("-", 1)[1])
            meta = make_people_recording(path, clips, corpus.train_talk, noises, COMMANDS,
                                         duration_s=minutes * 60.0, seed=seed * 1000 + index,
                                         talk_share=0.4)
        path.with_suffix(".json").write_text(json.dumps(meta))
    return plan


def moments(events: Sequence[dict[str, Any]], before_s: float, after_s: float,
            rng: np.random.Generator, per_word: int = 3,
            talk_step_s: float = 0.4) -> Iterator[tuple[float, int]]:
    """(time, label index) of every example a recording's events give: `per_word` moments
    after each word's start, talk every `talk_step_s` plus two more at each edge, and one
    moment of noise alone in each gap long enough to hold a whole window."""
    alone, other = ISOLATION_LABELS.index(ALONE_LABEL), 1 - ISOLATION_LABELS.index(ALONE_LABEL)
    for event in events:
        start, end = event["start_s"], event["end_s"]
        if event["kind"] == "word":
            last = min(WORD_DELAY_S[1], end - start + 0.45)
            for delay in rng.uniform(WORD_DELAY_S[0], max(last, WORD_DELAY_S[0]), per_word):
                yield start + float(delay), alone
        else:
            first = start + 0.3 + float(rng.uniform(0.0, talk_step_s))
            for moment in np.arange(first, end + 0.45, talk_step_s):
                yield float(moment), other
            edges = (*rng.uniform(start + 0.2, start + EDGE_S, 2),
                     *rng.uniform(end - 0.4, end + 0.45, 2))
            for moment in edges:
                yield float(moment), other
    for previous, following in zip(events, events[1:], strict=False):
        low, high = previous["end_s"] + before_s + 0.05, following["start_s"] - after_s - 0.05
        if high > low:
            yield float(rng.uniform(low, high)), other


def window_at(audio: np.ndarray, moment_s: float, before_s: float,
              after_s: float) -> np.ndarray:
    """The audio from `before_s` before `moment_s` to `after_s` after it (zero-padded at the
    recording's ends), as the node's detector holds it when the check runs."""
    start = int(round((moment_s - before_s) * SAMPLE_RATE))
    length = int(round((before_s + after_s) * SAMPLE_RATE))
    window = np.zeros(length, dtype=np.float32)
    lo, hi = max(0, start), min(audio.size, start + length)
    if hi > lo:
        window[lo - start:hi - start] = audio[lo:hi]
    return window


def examples(recordings: Sequence[Path], features: FeatureExtractor, before_s: float,
             after_s: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features and label indices of every moment of `recordings`."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for path in tqdm(recordings, desc="isolation examples", unit="recording"):
        audio = read_audio(path)
        events = json.loads(path.with_suffix(".json").read_text())["events"]
        for moment, label in moments(events, before_s, after_s, rng):
            rows.append(features.compute(window_at(audio, moment, before_s, after_s)))
            labels.append(label)
    x, y = np.asarray(rows, dtype=np.float32), np.asarray(labels, dtype=np.int64)
    log.info("isolation examples: %d alone, %d other, from %d recordings",
             int(np.sum(y == ISOLATION_LABELS.index(ALONE_LABEL))),
             int(np.sum(y != ISOLATION_LABELS.index(ALONE_LABEL))), len(recordings))
    return x, y
