"""Running a recipe: synthesise, record, mine, cut talk, train, calibrate, evaluate, install.

Every step's output lands in the work directory and is reused when it is already there, so
an interrupted run resumes and a second recipe on the same data only trains again.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from training.data import make
from training.experiments.pipeline import PipelineSettings
from training.experiments.training_run import Sources, gather, train_and_evaluate
from training.models.settings import features_for
from training.recipe import Recipe, to_yaml

log = logging.getLogger(__name__)


def _missing(path: Path) -> bool:
    """A dataset dir without its clip list, or a recording that is not there yet."""
    return not ((path / "clips.csv").is_file() if path.suffix != ".wav" else path.is_file())


def test_recordings(recipe: Recipe, work: Path, workers: int) -> list[Path]:
    """The streaming recordings the model is tested on, made when missing."""
    streams = recipe.streams
    recordings: list[Path] = []
    if streams.tts_minutes > 0:
        recording = work / "stream.wav"
        if _missing(recording):
            make.tts_recording(recording, minutes=streams.tts_minutes, seed=recipe.seed,
                               engines=streams.tts_engines,
                               voices_per_engine=streams.tts_voices_per_engine,
                               workers=workers, words=recipe.words)
        recordings.append(recording)
    if streams.unseen_engine and streams.unseen_minutes > 0:
        from training.tts.engines import ENGINES

        engine = ENGINES.get(streams.unseen_engine)
        if engine is None or not engine.available():
            log.warning("no %s engine here: no test recording by an engine the recipe does not "
                        "train on", streams.unseen_engine)
        else:
            recording = work / f"stream-{streams.unseen_engine}.wav"
            if _missing(recording):
                make.tts_recording(recording, minutes=streams.unseen_minutes, seed=recipe.seed,
                                   engines=(streams.unseen_engine,),
                                   voices_per_engine=streams.unseen_voices_per_engine,
                                   workers=workers, words=recipe.words)
            recordings.append(recording)
    people = recipe.people
    if people.real_speech:
        kinds = [("people", streams.people_minutes)] if people.speech_commands else []
        for kind, minutes in [*kinds, ("talk", 1.0)]:
            recording = work / f"{kind}.wav"
            if minutes > 0 and _missing(recording):
                make.people_recording(recording, kind=kind, real_speech=people.real_speech,
                                      speech_commands=people.speech_commands, minutes=minutes,
                                      seed=recipe.seed, talk_share=streams.people_talk_share,
                                      gap_s=(streams.people_gap_s[0], streams.people_gap_s[1]),
                                      words=recipe.words)
            if recording.is_file():
                recordings.append(recording)
    return recordings


def training_data(recipe: Recipe, work: Path, workers: int) -> list[Path]:
    """The synthetic, mined and talk datasets the model trains on, made when missing."""
    synthesis, mining = recipe.synthesis, recipe.mining
    data = work / "data"
    if _missing(data):
        make.synthesised_dataset(data, voices=synthesis.voices, silence=synthesis.silence,
                                 unknown_per_voice=synthesis.unknown_per_voice,
                                 near_misses_per_voice=synthesis.near_misses_per_voice,
                                 seed=recipe.seed, workers=workers, words=recipe.words)
    datasets = [data]
    if mining.minutes > 0:
        mined = work / "mined"
        if _missing(mined):
            # beyond an hour, voices and windows grow with the audio (an hour has fewer windows)
            hours = max(1.0, mining.minutes / 60.0)
            make.mined_windows(data, mined, minutes=mining.minutes,
                               voices_per_engine=round(40 * hours),
                               unknown=round(8000 * hours), commands=round(3000 * hours),
                               silence=round(1000 * hours),
                               near_miss_share=mining.near_miss_share, seed=recipe.seed,
                               workers=workers, words=recipe.words)
        datasets.append(mined)
    real_windows = (("talk", recipe.people.talk_windows, make.talk_dataset),
                    ("noise", recipe.people.noise_windows, make.noise_dataset))
    for name, count, maker in real_windows:
        if recipe.people.real_speech and count > 0:
            folder = work / name
            if _missing(folder):
                maker(recipe.people.real_speech, folder, count, recipe.seed)
            datasets.append(folder)
    return datasets


def pipeline_settings(recipe: Recipe, out: Path, workers: int,
                      attribution: tuple[str, ...] = (), loeo: bool | None = None,
                      feature_cache: Path | None = None) -> PipelineSettings:
    """The training run a recipe asks for."""
    evaluation = recipe.evaluation
    return PipelineSettings(
        out=out, commands=recipe.words,
        features=features_for(recipe.train.architecture, recipe.normalisation),
        train=recipe.train, copies=recipe.copies, augment=recipe.augment,
        val_voice_fraction=evaluation.validation_voices,
        leave_one_engine_out=evaluation.leave_one_engine_out if loeo is None else loeo,
        loeo_epochs=evaluation.loeo_epochs, name=recipe.name, version=recipe.version,
        workers=workers, attribution=attribution, feature_cache=feature_cache)


def isolation_model(recipe: Recipe, work: Path) -> Path | None:
    """The recipe's isolation check (`kws-train isolation`), made once in WORK/isolation from
    its recorded people and real talk; None when the recipe has neither."""
    from training.models.isolation import train_isolation

    people = recipe.people
    if people.speech_commands is None or people.real_speech is None:
        return None
    model = work / "isolation" / "isolation.tflite"
    if not model.is_file():
        train_isolation(recipe.isolation, people.speech_commands, people.real_speech, model,
                        work / "isolation" / "recordings")
    return model


def run_recipe(recipe: Recipe, work: Path, workers: int, install: Path | None = None,
               benchmarks: Path | None = None) -> dict:
    """Make every piece of material the recipe needs, train, and install the model (with its
    recipe beside it); returns the run's report."""
    for source in (recipe.people.speech_commands, recipe.people.real_speech):
        if source is not None and not source.is_dir():
            raise FileNotFoundError(
                f"{source} is not there: the recipe's recorded data (people.speech_commands, "
                "people.real_speech) must exist, or be set to null for synthetic voices only")
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "feature-cache"  # the first model's rows serve the final one, and reruns
    recordings = test_recordings(recipe, work, workers)
    datasets = training_data(recipe, work, workers)
    sources = Sources(data=tuple(datasets), speech_commands=recipe.people.speech_commands,
                      speech_commands_weight=recipe.people.speech_commands_weight,
                      balance_words=recipe.people.balance_words,
                      real_speech=recipe.people.real_speech)
    if recipe.mining.minutes > 0 and recipe.mining.hard_negatives:
        hard = work / "hard"
        if _missing(hard):
            # A first model, trained without the leave-one-engine-out runs, shows which
            # windows of the mining recording it falsely fires on; they are trained on next.
            first = work / "first"
            material = gather(sources, recipe.words, recipe.seed)
            _, model = train_and_evaluate(
                material, pipeline_settings(recipe, first, workers, material.attribution,
                                            loeo=False, feature_cache=cache), (),
                recipe.words)
            make.hard_negative_windows(work / "mined" / "recording.wav", model, hard,
                                       recipe.mining.hard_threshold, recipe.words)
        sources = replace(sources, data=(*sources.data, hard))
    isolation = isolation_model(recipe, work)
    out = work / "run"
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(to_yaml(recipe))
    material = gather(sources, recipe.words, recipe.seed)
    settings = pipeline_settings(recipe, out, workers, material.attribution,
                                 feature_cache=cache)
    report, model = train_and_evaluate(material, settings, recordings, recipe.words, isolation)
    if install:
        from training.models.install import install_isolation, install_model

        install_model(model, install)
        if isolation is not None:
            install_isolation(isolation, install.parent)
    if benchmarks:
        from training.evaluation.benchmarks import record_training

        record_training(report, benchmarks, recipe.name, recipe.train.architecture,
                        "kws-train default")
    return report
