"""One model from its sources to an installed `.tflite`: gather the clips, train and evaluate
(`experiments.pipeline`), calibrate the threshold on held-out people, stream the test
recordings, write the report, install, record the figures. `kws-train train` and the recipe
both run it."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from training.data.dataset import Clip
from training.data.vocab import COMMANDS
from training.experiments.pipeline import PipelineSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sources:
    """Where a run's clips come from."""

    data: tuple[Path, ...] = ()
    """Synthetic (or mined, or talk-window) datasets: `kws-train synth|mine|talk` dirs."""
    speech_commands: Path | None = None
    """Recorded people, Speech Commands layout: trained on, less the evaluation speakers."""
    speech_commands_weight: float = 1.0
    """How much each recorded clip counts next to a synthetic one."""
    balance_words: bool = False
    """Scale each command's recorded clips to the mean command's count (`balanced_weights`)."""
    real_speech: Path | None = None
    """Real talk and household noise: its training noise joins the augmentation bank."""
    user: Path | None = None
    """The user's own recordings, DIR/<label>/*.wav."""
    user_weight: float = 3.0
    """How much each of the user's clips counts."""


@dataclass
class Material:
    """A run's clips, noise bank and the licences of the recorded data among them."""

    clips: list[Clip]
    noises: list[np.ndarray]
    held_people: list[Clip] = field(default_factory=list)
    """Recorded people kept for evaluation: scored, never trained on."""
    attribution: tuple[str, ...] = ()


def gather(sources: Sources, words: Sequence[str], seed: int,
           hold_out_people: bool = True) -> Material:
    """Load every source's clips; keep the evaluation people apart unless the caller splits
    people itself (speaker folds)."""
    from training.data.dataset import (
        PEOPLE_ENGINE,
        SPEECH_COMMANDS_ATTRIBUTION,
        USER_ENGINE,
        load_label_folders,
        load_synthetic,
        speech_commands_noise,
        split_people,
    )
    from training.data.noise import noise_bank

    clips = [c for root in sources.data for c in load_synthetic(root, words)]
    extra_noise: list[np.ndarray] = []
    held_people: list[Clip] = []
    attribution: list[str] = []
    if sources.speech_commands:
        people = load_label_folders(sources.speech_commands, words, PEOPLE_ENGINE,
                                    weight=sources.speech_commands_weight)
        unrecorded = sorted(set(words) - {c.label for c in people})
        if unrecorded:
            log.warning("%s has no recordings of %s: %s learnt from synthetic voices only",
                        sources.speech_commands, ", ".join(unrecorded),
                        "it is" if len(unrecorded) == 1 else "they are")
        if hold_out_people:
            people, held_people = split_people(people)
        if sources.balance_words:
            people = balanced_weights(people, words)
        clips += people
        extra_noise = speech_commands_noise(sources.speech_commands)
        attribution.append(SPEECH_COMMANDS_ATTRIBUTION)
    if sources.real_speech:
        from training.data.real_speech import licences, load_corpus, read_all, split_corpus

        corpus = split_corpus(load_corpus(sources.real_speech))
        extra_noise += read_all(corpus.train_noise)
        attribution += licences(corpus.train_talk + corpus.train_noise)
    if sources.user:
        clips += load_label_folders(sources.user, words, USER_ENGINE, weight=sources.user_weight)
    return Material(clips, noise_bank(seed, extra_noise), held_people, tuple(attribution))


def balanced_weights(clips: Sequence[Clip], commands: Sequence[str]) -> list[Clip]:
    """`clips` with each command's weights scaled by (mean command count / its count), so a
    command with few recordings counts as much as the others; other labels keep theirs."""
    counts = Counter(c.label for c in clips if c.label in commands)
    if not counts:
        return list(clips)
    mean = sum(counts.values()) / len(counts)
    return [replace(c, weight=c.weight * mean / counts[c.label]) if c.label in counts else c
            for c in clips]


def people_recordings(recordings: Sequence[Path]) -> list[Path]:
    """The recordings of held-out people and talk among `recordings` (`kws-train
    people-stream`), which the shipped threshold is chosen on."""
    return [r for r in recordings
            if json.loads(r.with_suffix(".json").read_text()).get("kind") in ("people", "talk")]


def train_and_evaluate(material: Material, settings: PipelineSettings, streams: Sequence[Path] = (),
                       words: Sequence[str] = COMMANDS,
                       isolation: Path | None = None) -> tuple[dict[str, Any], Path]:
    """Train, calibrate and stream a `PipelineSettings` run; returns its report and the model
    that ships (int8 unless the article's float32 CNN). `isolation`: the isolation check the
    node will run it with (calibration and streaming go through it; None: no check)."""
    from training.evaluation.report import write_report
    from training.experiments.pipeline import run

    report = run(material.clips, material.noises, settings, extra_test=material.held_people)
    final = Path(report["final"]["models"]["float32/ai-edge-litert"]["path"])
    # The article's model format is float32; ours ships int8 (within a point of float, 1/2 size).
    ours_int8 = settings.quantize and settings.train.architecture != "article_cnn"
    chosen = final.with_name("model_int8.tflite") if ours_int8 else final
    if streams:
        from training.evaluation.node_eval import streaming_evaluation

        people = people_recordings(streams)
        if people:  # first, so every recording below is scored at the shipped threshold
            from training.evaluation.calibrate import calibrate, plot_tradeoff

            report["calibration"] = calibrate(chosen, people, words, isolation=isolation)
            plot_tradeoff(report["calibration"], Path(settings.out) / "threshold_tradeoff.png",
                          f"{settings.name} {settings.version}: threshold on held-out people")
        report["streams"] = [streaming_evaluation(chosen, recording, words, isolation)
                             for recording in streams]
    out = Path(settings.out)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    log.info("report: %s", write_report(report, settings.labels, out))
    return report, chosen
