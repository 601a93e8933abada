"""The recipe of a model as data: every setting `kws-train default` runs, frozen and validated,
read from and written to YAML.

`Recipe()` is the shipped recipe (the bundled model's; `kws-train recipe` prints it). A run
saves its recipe as RUN/recipe.yaml and installing copies it beside the model
(`default.recipe.yaml`), so a model can be traced to the exact settings that made it and
rebuilt from them: `kws-train default --recipe edge_node/models/default.recipe.yaml`.

Loading goes through the node's own settings loader (`edge_node.config.build`): unknown keys,
wrong types, non-finite numbers and values outside a field's declared limits are all reported
at once, by dotted name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from edge_node.config import ConfigError, build
from edge_node.setting import check_limits, setting
from training.data.augment import AugmentSettings
from training.data.vocab import COMMANDS
from training.models.settings import IsolationSettings, TrainSettings

SHARED = Path("../shared")
"""Where the recorded data sits beside a source checkout (relative to the working directory)."""


@dataclass(frozen=True)
class Synthesis:
    """The synthetic dataset: which TTS voices say the words."""

    voices: dict[str, int] = field(default_factory=lambda: {
        "espeak": 250, "flite": 120, "festival": 60, "festival-accent": 120})
    """Voices per engine; each says every command once."""
    silence: int = setting(1500, low=0)
    """`_silence_` clips (noise only)."""
    unknown_per_voice: float = setting(3.0, low=0.0)
    """`_unknown_` clips (other words) per voice."""
    near_misses_per_voice: float = setting(0.0, low=0.0)
    """Extra `_unknown_` clips per voice of words that sound like a command ('gown', 'lift');
    0 in the recipe: fewer commands from an unseen engine (BENCHMARKS.md)."""

    def __post_init__(self) -> None:
        check_limits(self, "synthesis")
        bad = {engine: count for engine, count in self.voices.items() if count < 1}
        if bad or not self.voices:
            raise ValueError(f"synthesis.voices needs at least one voice per engine, got "
                             f"{dict(self.voices)}")


@dataclass(frozen=True)
class People:
    """Recorded people and real talk (`../shared` here; the full Speech Commands set from
    `kws-train download` takes the same recipe)."""

    speech_commands: Path | None = SHARED / "speech_commands"
    """Recorded people, Speech Commands layout; trained on less the evaluation speakers
    (None: synthetic voices only)."""
    speech_commands_weight: float = setting(3.0, above=0.0)
    """How much a recorded clip counts next to a synthetic one (3: three times the augmented
    copies and the loss weight). On 5 speaker folds, 2 gave 2.3 points more commands than 1
    (every fold gaining), and 3 with wider members 1.4 more than 2 (BENCHMARKS.md, "recorded
    clips weighted 2" and "weighted 3 with wider members")."""
    balance_words: bool = False
    """Scale each command's recorded clips so every command counts as much as the mean one:
    shared/speech_commands has about half as many "go" and "stop" clips as the others, and
    "go" is the command people are found least on. Measured on 5 speaker folds against the
    3.3.0 recipe: "go" +4.2 points, "stop" +1.4, "down", "up", "no" -1.1 to -1.4, all commands
    at 2% of other words taken -0.2; streaming from the fold models +4.5 points at 1 false
    activation per hour (4 of 5 folds), +0.4 at 2 (folds split), -1.7 at 5. Off: a move along
    the trade-off, not past it (BENCHMARKS.md, "streaming from the speaker-fold models")."""
    real_speech: Path | None = SHARED / "real_speech"
    """Real talk and household noise (`shared/real_speech` layout; None: none)."""
    talk_windows: int = setting(8000, low=0)
    """1 s windows of the training part of the real talk, as `_unknown_` (0: none). Still
    worth having with the isolation check: without them the five speaker-fold models found
    0.4 points fewer commands at 2 false activations per hour and 4.8 fewer at 1 (BENCHMARKS.md,
    "without its talk windows")."""
    noise_windows: int = setting(0, low=0)
    """1 s windows of the training part of the real household noise and music, as `_silence_`
    (0: none): the synthetic `_silence_` clips are hiss, hum and fans only. 1,500 on 5 speaker
    folds: other words and silence taken for a command 2.5% -> 2.1% at 0.1 points fewer
    commands, streaming from the fold models unchanged (+0.2 at 2 per hour): a move along the
    trade-off, so off (BENCHMARKS.md, "real household noise as _silence_")."""


@dataclass(frozen=True)
class Mining:
    """A recording by the training voices, cut into windows the way the live detector sees it."""

    minutes: float = setting(60.0, low=0.0)
    """Length of the mining recording (0: no mining). Per hour of it (at least an hour's worth):
    40 voices per engine and up to 8000 `_unknown_`, 3000 command and 1000 `_silence_`
    windows."""
    near_miss_share: float = setting(0.0, low=0.0, high=1.0)
    """Share of its other words that sound like a command."""
    hard_negatives: bool = False
    """Train a first model, then add the windows it falsely fires on (fewer false activations,
    lower accuracy in our measurement: off)."""
    hard_threshold: float = setting(0.4, low=0.01, high=1.0)
    """Detector threshold that finds the hard negatives (below the node's: near misses too)."""


@dataclass(frozen=True)
class Streams:
    """The streaming test recordings, by voices and people the model never heard."""

    tts_minutes: float = setting(120.0, low=0.0)
    """Held-out voices of the trained engines; 30 minutes could not tell two seeds apart."""
    tts_engines: tuple[str, ...] = ("espeak", "flite", "festival")
    tts_voices_per_engine: int = setting(20, low=1)
    unseen_engine: str = "piper"
    """An engine the recipe does not train on ('' = none): the stand-in for a new person."""
    unseen_minutes: float = setting(45.0, low=0.0)
    unseen_voices_per_engine: int = setting(30, low=1)
    people_minutes: float = setting(150.0, low=0.0)
    """Held-out recorded people saying commands and other words, with talk, over real noise.

    150 minutes say every held-out command clip of shared/speech_commands once (1,072, by 328
    speakers); 45 minutes (331 commands, until 3.2.0) left a recall interval of +/-3 points
    and one false activation worth 0.9 per hour, wider than the differences between recipes
    (BENCHMARKS.md, "the whole held-out people recording")."""
    people_talk_share: float = setting(0.2, low=0.0, high=1.0)
    """Share of the people recording's items that are excerpts of talk."""
    people_gap_s: tuple[float, ...] = (1.0, 6.0)
    """Shortest and longest pause between the people recording's items."""

    def __post_init__(self) -> None:
        check_limits(self, "streams")
        low, high = (self.people_gap_s + (0.0, 0.0))[:2]
        if len(self.people_gap_s) != 2 or not 0.0 <= low <= high:
            raise ValueError(f"streams.people_gap_s must be [shortest, longest] seconds, got "
                             f"{list(self.people_gap_s)}")


@dataclass(frozen=True)
class Evaluation:
    """Estimates made beside the final model (they do not change it)."""

    leave_one_engine_out: bool = True
    """One model per TTS engine, trained without it: the regression guard on unseen voices."""
    loeo_epochs: int = setting(12, low=1)
    validation_voices: float = setting(0.12, above=0.0, high=0.5)
    """Share of each engine's voices held out for validation and early stopping."""


def shipped_training() -> TrainSettings:
    """The recipe's training settings (TrainSettings' own defaults are `kws-train train`'s)."""
    return TrainSettings(architecture="ensemble", epochs=20, freq_warp=0.15,
                         weight_average=0.998, tcresnet_width=1.15, embedding_width=128)


@dataclass(frozen=True)
class Recipe:
    """Everything that makes a model, but the machine it runs on (workers, directories)."""

    name: str = "kws-default"
    version: str = "3.3.0"
    seed: int = setting(1, low=0)
    """Seed of everything: voices, recordings, splits, training."""
    words: tuple[str, ...] = COMMANDS
    """The commands, in the model's label order."""
    normalisation: str = "mvn"
    """Feature normalisation (`edge_node.logmel.NORMALISATIONS`)."""
    copies: int = setting(2, low=1)
    """Augmented copies of each clip."""
    synthesis: Synthesis = field(default_factory=Synthesis)
    people: People = field(default_factory=People)
    mining: Mining = field(default_factory=Mining)
    streams: Streams = field(default_factory=Streams)
    augment: AugmentSettings = field(
        default_factory=lambda: AugmentSettings(p_resynth=0.3, p_specaugment=0.0))
    """Waveform augmentation of every copy; no SpecAugment masks (since 3.3.0): on 5 speaker
    folds, copies without them found 0.6-1.4 points more commands on every fold at equal false
    accepts (BENCHMARKS.md, "augmentation and the embedding head")."""
    train: TrainSettings = field(default_factory=shipped_training)
    """Training settings; their `seed` is the recipe's."""
    isolation: IsolationSettings = field(default_factory=IsolationSettings)
    """The node's isolation check (a word said on its own, or inside talk), made from the
    recorded people and real talk before the classifier is calibrated with it; its `seed` is
    the recipe's. Without recorded people the model is calibrated without a check."""
    evaluation: Evaluation = field(default_factory=Evaluation)

    def __post_init__(self) -> None:
        from edge_node.logmel import NORMALISATIONS

        check_limits(self, "")
        if not self.words or len(set(self.words)) != len(self.words):
            raise ValueError(f"words must be distinct commands, got {list(self.words)}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, "
                             f"got {self.normalisation!r}")
        if self.train.seed != self.seed:
            object.__setattr__(self, "train", replace(self.train, seed=self.seed))
        if self.isolation.seed != self.seed:
            object.__setattr__(self, "isolation", replace(self.isolation, seed=self.seed))


def to_data(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain YAML-able data (paths as text, tuples as lists)."""
    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    data = plain(dataclasses.asdict(recipe))
    del data["train"]["seed"], data["isolation"]["seed"]  # the recipe's seed, said once
    return data


class _RecipeDumper(yaml.SafeDumper):
    """Short lists of plain values on one line (`speed_range: [0.85, 1.18]`)."""


def _flow_list(dumper: yaml.SafeDumper, items: list) -> yaml.Node:
    flow = all(isinstance(i, str | int | float | bool) for i in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


_RecipeDumper.add_representer(list, _flow_list)


def to_yaml(recipe: Recipe) -> str:
    """The recipe as YAML that `load` reads back to an equal recipe."""
    return ("# kws-train recipe: `kws-train default --recipe THIS_FILE` makes its model.\n"
            + yaml.dump(to_data(recipe), Dumper=_RecipeDumper, sort_keys=False, width=100))


def _over_shipped(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` over the shipped recipe, section by section: a recipe that sets `train.epochs`
    keeps the shipped architecture, not TrainSettings' own default. A value inside a section
    (a voice table, a list) is replaced whole."""
    merged: dict[str, Any] = to_data(Recipe())
    for key, value in data.items():
        if isinstance(merged.get(key), dict) and isinstance(value, Mapping) and key != "words":
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def from_data(data: Mapping[str, Any] | None, where: str = "recipe") -> Recipe:
    """A validated recipe from parsed YAML, the shipped recipe filling what it leaves out;
    every problem of a section reported at once."""
    for section in ("train", "isolation"):
        settings = (data or {}).get(section)
        if isinstance(settings, Mapping) and "seed" in settings:
            raise ConfigError(f"{where}: {section}.seed is the recipe's `seed`; set that "
                              "instead")
    try:
        return build(Recipe, _over_shipped(data or {}))
    except ConfigError as exc:
        raise ConfigError(f"{where}:\n{exc}") from None


def load(path: Path) -> Recipe:
    """Read a recipe YAML file (a saved RUN/recipe.yaml, or one a user wrote)."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read recipe {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {path} is not valid YAML: {exc}") from exc
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"recipe {path} must be a mapping of settings")
    return from_data(data, str(path))


def with_overrides(recipe: Recipe, overrides: Mapping[str, Any]) -> Recipe:
    """The recipe with dotted settings replaced (`train.epochs=30`), validated again."""
    data = to_data(recipe)
    for dotted, value in overrides.items():
        target = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            if not isinstance(target.get(part), dict):
                raise ConfigError(f"unknown recipe section {dotted!r}")
            target = target[part]
        target[leaf] = value
    return from_data(data, "recipe overrides")


def parse_override(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` from the command line; the value is read as YAML (`30`, `null`, `[a, b]`)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"expected KEY=VALUE (e.g. train.epochs=30), got {text!r}")
    return key.strip(), yaml.safe_load(value)
