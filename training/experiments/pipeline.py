"""Recordings -> verified `.tflite` + manifest, with leave-one-engine-out estimates.

One run featurises every clip once (clean, and `copies` augmented versions), then trains:

- one model per held-out engine E (trained without any voice of E, tested on all of E): the
  honest estimate of how a model does on a voice unlike any it trained on;
- the final model on every engine, validated (early stopping) on held-out voices.

Each exported model is re-scored in the node's runtime; the final one also streams a long
recording through the node's detector.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.features import FeatureSpec, logmel_spec, make_extractor
from training.data.augment import Augmenter, AugmentSettings
from training.data.dataset import PEOPLE_ENGINE, USER_ENGINE, Clip, split_by_voice
from training.data.dataset_synth import NOISE_ENGINE
from training.data.featurize import FeatureSet, featurize, load_audio
from training.data.real_speech import REAL_NOISE_ENGINE, TALK_ENGINE
from training.data.vocab import COMMANDS, SILENCE_LABEL, UNKNOWN_LABEL
from training.evaluation.metrics import scores
from training.evaluation.node_eval import predict_in_runtime
from training.models.settings import TrainSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineSettings:
    """One training run of `kws-train train`."""

    out: Path
    """Run directory: models, report, plots."""
    commands: tuple[str, ...] = COMMANDS
    features: FeatureSpec = field(default_factory=logmel_spec)
    train: TrainSettings = field(default_factory=TrainSettings)
    copies: int = 3
    """Augmented versions of each clip."""
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    """The waveform and feature transforms of the augmented copies."""
    val_voice_fraction: float = 0.12
    """Share of each engine's voices held out for validation / early stopping."""
    leave_one_engine_out: bool = True
    loeo_epochs: int = 12
    """Epoch bound of the leave-one-engine-out runs (they only estimate; the final model ships)."""
    quantize: bool = True
    """Export full-integer int8 (and float32 for comparison)."""
    name: str = "kws-model"
    version: str = "1.0.0"
    workers: int = 2
    attribution: tuple[str, ...] = ()
    """The recorded data the model is derived from, with authors and licences: it travels in
    the manifest (`attribution`), as CC BY asks."""
    feature_cache: Path | None = None
    """A folder where feature rows are kept between runs (`training.data.feature_cache`):
    a run that changes only training settings reuses them all (None = no cache)."""

    @property
    def labels(self) -> list[str]:
        return [*self.commands, UNKNOWN_LABEL, SILENCE_LABEL]

    @property
    def part_shapes(self) -> list[tuple[int, ...]]:
        """The shapes of the parts of concat features (one part otherwise)."""
        return make_extractor(self.features).part_shapes


@dataclass
class Prepared:
    """Clips with their clean and augmented features."""

    clips: list[Clip]
    y: np.ndarray
    engines: np.ndarray
    clean: FeatureSet
    augmented: FeatureSet
    extra: dict[str, Any] = field(default_factory=dict)


def prepare(clips: list[Clip], noises: list[np.ndarray], settings: PipelineSettings) -> Prepared:
    """Featurise every clip once; experiments only select rows."""
    labels = settings.labels
    audio = load_audio(clips, settings.workers)
    indices = list(range(len(clips)))
    seed = settings.train.seed
    cache = settings.feature_cache
    clean = featurize(audio, clips, indices, settings.features, None, 1, seed,
                      settings.workers, desc="clean features", cache=cache)
    copies = [max(1, int(round(settings.copies * c.weight))) for c in clips]
    augmented = featurize(audio, clips, indices, settings.features,
                          Augmenter(noises, settings.augment), copies,
                          seed, settings.workers, desc="augmented features", cache=cache)
    y = np.array([labels.index(c.label) for c in clips], dtype=np.int64)
    return Prepared(clips, y, np.array([c.engine for c in clips]), clean, augmented)


def run_experiment(data: Prepared, train_mask: np.ndarray, val_mask: np.ndarray,
                   test_mask: np.ndarray, settings: PipelineSettings, out: Path,
                   runtimes: tuple[str, ...] = ("ai-edge-litert",)) -> dict[str, Any]:
    """Train on `train_mask` clips (augmented), stop early on `val_mask`, test on `test_mask`
    (clean) with the exported models in the node runtime(s)."""
    from training.experiments.provenance import provenance
    from training.models.export import export, representative_sample

    out.mkdir(parents=True, exist_ok=True)
    rows = train_mask[data.augmented.clip_index]
    x_train = data.augmented.x[rows]
    y_train = data.y[data.augmented.clip_index[rows]]
    w_train = np.array([data.clips[i].weight for i in data.augmented.clip_index[rows]])
    x_val, y_val = data.clean.x[val_mask], data.y[val_mask]
    log.info("%s: %d training examples, %d validation clips, %d test clips", out.name,
             len(x_train), len(x_val), int(test_mask.sum()))
    from training.models.train import fit

    model, history, output = fit(x_train, y_train, w_train, x_val, y_val, len(settings.labels),
                                 settings.train, part_shapes=settings.part_shapes)
    model.save(out / "model.keras")
    common = dict(name=settings.name, version=settings.version, labels=settings.labels,
                  features=settings.features, output=output)
    meta: dict[str, Any] = {"train_clips": int(train_mask.sum()),
                            "engines": sorted(set(data.engines[train_mask]))}
    if settings.attribution:
        meta["attribution"] = list(settings.attribution)
    paths = {"float32": export(model, out / "model_float32.tflite", representative=None,
                               extra=meta, **common)}
    if settings.quantize:
        paths["int8"] = export(model, out / "model_int8.tflite",
                               representative=representative_sample(x_train, settings.train.seed),
                               extra=meta, **common)
    x_test = data.clean.x[test_mask]
    engines = data.engines[test_mask]
    result: dict[str, Any] = {"history": history, "models": {},
                              "provenance": provenance(x_train, x_test)}
    test_probs = {}
    for kind, path in paths.items():
        for runtime in runtimes:
            probs = predict_in_runtime(path, x_test, runtime)
            test_probs[f"{kind}/{runtime}"] = probs
            result["models"][f"{kind}/{runtime}"] = {
                "path": str(path), "bytes": path.stat().st_size,
                **scores(probs, data.y[test_mask], settings.labels, engines),
            }
    (out / "result.json").write_text(json.dumps(result, indent=1))
    save_test_probabilities(out, data.y[test_mask], settings.labels, test_probs)
    return result


TEST_PROBABILITIES = "test_probs.npz"
"""Where a run keeps each exported model's probabilities on its test clips, beside their labels:
comparisons at equal false accepts are made from them later without the models."""


def save_test_probabilities(out: Path, y: np.ndarray, labels: Sequence[str],
                            probs: dict[str, np.ndarray]) -> Path:
    """`out/test_probs.npz`: the clips' label indices `y`, the `labels`, and per model
    (`int8/ai-edge-litert`, ...) its probabilities."""
    path = out / TEST_PROBABILITIES
    np.savez_compressed(path, y=y, labels=np.array(list(labels)),
                        **{f"probs:{key}": value for key, value in probs.items()})
    return path


def load_test_probabilities(out: Path, model: str
                            ) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """(probabilities, label indices, labels) of `model` on the run's test clips; None if the
    run did not keep them (runs before they were kept)."""
    path = out / TEST_PROBABILITIES
    if not path.is_file():
        return None
    with np.load(path) as saved:
        key = f"probs:{model}"
        if key not in saved.files:
            return None
        return saved[key], saved["y"], [str(label) for label in saved["labels"]]


@dataclass(frozen=True)
class VoiceMasks:
    """Which clips of a `Prepared` set may train, validate and be scored."""

    scored: np.ndarray
    """Clips that validation and test sets may use (not mined windows, not accented voices)."""
    val_voices: np.ndarray
    """Clips of the voices held out for validation: never trained on."""

    @property
    def validation(self) -> np.ndarray:
        return self.val_voices & self.scored


def voice_masks(data: Prepared, pool: list[Clip], settings: PipelineSettings) -> VoiceMasks:
    """Validation voices drawn from `pool` (the first clips of `data`; later ones, extra test
    clips, are never validation)."""
    _, held = split_by_voice(pool, settings.val_voice_fraction, settings.train.seed)
    held_voices = {c.voice for c in held}
    in_pool = np.arange(len(data.clips)) < len(pool)
    return VoiceMasks(np.array([c.scored for c in data.clips]),
                      np.array([c.voice in held_voices for c in data.clips]) & in_pool)


NOT_HELD_OUT = (NOISE_ENGINE, PEOPLE_ENGINE, USER_ENGINE, TALK_ENGINE, REAL_NOISE_ENGINE)
"""Sources no leave-one-engine-out run holds out: noise, recorded people (measured by speaker
folds, `training.experiments.folds`), the user's recordings and talk and real-noise windows
(train-only)."""


def held_out_engines(clips: list[Clip]) -> list[str]:
    """The TTS engines a leave-one-engine-out run holds out."""
    return sorted({c.engine for c in clips
                   if c.label != SILENCE_LABEL and c.engine not in NOT_HELD_OUT})


def run(clips: list[Clip], noises: list[np.ndarray], settings: PipelineSettings,
        extra_test: list[Clip] | None = None) -> dict[str, Any]:
    """All experiments of one run; returns the report data (also written as report.json)."""
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    extra_test = extra_test or []
    data = prepare(clips + extra_test, noises, settings)
    n = len(clips)
    in_train_pool = np.arange(len(data.clips)) < n
    masks = voice_masks(data, clips, settings)
    scored, in_val_voices, is_val = masks.scored, masks.val_voices, masks.validation
    report: dict[str, Any] = {
        "settings": json.loads(json.dumps(asdict(settings), default=str)),
        "clips": {e: int((data.engines[:n] == e).sum()) for e in sorted(set(data.engines[:n]))},
        "leave_one_engine_out": {},
    }
    engines = held_out_engines(clips)
    if settings.leave_one_engine_out and len(engines) > 1:
        loeo = replace(settings, train=replace(settings.train, epochs=settings.loeo_epochs))
        for engine in engines:
            of_engine = data.engines == engine
            result = run_experiment(
                data, in_train_pool & ~in_val_voices & ~of_engine, is_val & ~of_engine,
                in_train_pool & of_engine & scored, loeo, out / f"loeo-{engine}")
            report["leave_one_engine_out"][engine] = result
    final = run_experiment(
        data, in_train_pool & ~in_val_voices, is_val, is_val | ~in_train_pool, settings,
        out / "final",
        runtimes=("ai-edge-litert", "tflite-runtime"))
    report["final"] = final
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report
