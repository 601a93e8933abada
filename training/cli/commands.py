"""What each `kws-train` subcommand does; `training.cli` holds their arguments."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from edge_node.config import ConfigError
from edge_node.model import manifest_path, read_manifest
from training.data import make
from training.data.vocab import COMMANDS
from training.evaluation.benchmarks import record_training
from training.experiments.pipeline import PipelineSettings
from training.models.install import install_model
from training.recipe import Recipe, load, parse_override, to_yaml, with_overrides

log = logging.getLogger("training")

SPEECH_COMMANDS_URL = (
    "http://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.02.tar.gz")


def words_of(args: argparse.Namespace) -> tuple[str, ...]:
    """`--words go,stop` or the eight commands."""
    return tuple(args.words.split(",")) if getattr(args, "words", None) else COMMANDS


def cmd_synth(args: argparse.Namespace) -> int:
    make.synthesised_dataset(args.out, voices=make.parse_voices(args.voices),
                             silence=args.silence, unknown_per_voice=args.unknown_per_voice,
                             near_misses_per_voice=args.near_misses_per_voice, seed=args.seed,
                             workers=args.workers, words=words_of(args), takes=args.takes)
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    make.tts_recording(args.out, minutes=args.duration / 60, seed=args.seed,
                       engines=args.engines.split(","), voices_per_engine=args.voices_per_engine,
                       workers=args.workers, words=words_of(args),
                       command_share=args.command_share, max_gap_s=args.max_gap)
    return 0


def cmd_mine(args: argparse.Namespace) -> int:
    """Render a recording with the dataset's own voices and cut labelled windows from it."""
    make.mined_windows(args.data, args.out, minutes=args.minutes,
                       voices_per_engine=args.voices_per_engine, unknown=args.unknown,
                       commands=args.commands, silence=args.silence,
                       near_miss_share=args.near_miss_share, seed=args.seed,
                       workers=args.workers, words=words_of(args))
    return 0


def cmd_hard(args: argparse.Namespace) -> int:
    """Windows behind a model's false activations on a mining recording (train-only data)."""
    make.hard_negative_windows(args.recording, args.model, args.out, args.threshold,
                               words_of(args))
    return 0


def train_settings(args: argparse.Namespace) -> PipelineSettings:
    """The `PipelineSettings` of `kws-train train`'s options."""
    from training.data.augment import AugmentSettings
    from training.models.settings import TrainSettings, features_for

    return PipelineSettings(
        out=args.out, commands=words_of(args),
        features=features_for(args.arch, args.normalisation),
        train=TrainSettings(architecture=args.arch, epochs=args.epochs, seed=args.seed,
                            batch_size=args.batch_size, freq_warp=args.freq_warp,
                            time_warp=args.time_warp, weight_average=args.weight_average,
                            mask_frames=args.mask_frames, mask_bands=args.mask_bands,
                            distill_teachers=args.distill,
                            distill_weight=args.distill_weight, mixup=args.mixup,
                            ensemble_join=args.ensemble_join,
                            ensemble_temperature=args.ensemble_temperature,
                            tcresnet_width=args.tcresnet_width,
                            embedding_width=args.embedding_width,
                            embedding_pooling=args.embedding_pooling),
        copies=args.copies, augment=AugmentSettings(
            p_resynth=args.resynth, p_trim=args.trim,
            **({} if args.specaugment is None else {"p_specaugment": args.specaugment})),
        leave_one_engine_out=not args.no_loeo, loeo_epochs=args.loeo_epochs,
        name=args.name, version=args.version, workers=args.workers,
        feature_cache=args.feature_cache)


def cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from training.experiments.training_run import Sources, gather, train_and_evaluate

    try:
        settings = train_settings(args)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    words = words_of(args)
    sources = Sources(data=tuple(args.data), speech_commands=args.speech_commands,
                      speech_commands_weight=args.speech_commands_weight,
                      balance_words=args.balance_words,
                      real_speech=args.real_speech, user=args.user, user_weight=args.user_weight)
    # speaker folds split the people themselves; otherwise the evaluation people stay out
    material = gather(sources, words, args.seed, hold_out_people=not args.folds)
    settings = replace(settings, attribution=material.attribution)
    if args.folds:
        from edge_node.model import DEFAULT_MODEL
        from training.cli.people import fold_table
        from training.experiments.folds import fold_settings, run_folds

        result = run_folds(material.clips, material.noises,
                           fold_settings(settings, args.fold_epochs), args.folds, DEFAULT_MODEL,
                           [int(k) for k in args.only_folds.split(",")] if args.only_folds
                           else None)
        print(fold_table(result, settings.labels, args.name, args.benchmarks))
        return 0
    if args.seeds:
        from training.experiments import seeds as seed_runs

        seeds = [int(v) for v in args.seeds.split(",")]
        holdout = tuple(args.holdout.split(",")) if args.holdout else ()
        baseline = seed_runs.load(args.against) if args.against else None
        stream = seed_runs.StreamCheck(tuple(args.stream), args.out / "models",
                                       args.stream_rate) if args.stream else None
        result = seed_runs.loeo_over_seeds(material.clips, material.noises, settings,
                                           seeds, holdout, args.out / "probs", stream)
        print(seed_runs.format_table(result, seeds))
        comparison = seed_runs.format_comparison(result, seeds, baseline) if baseline else ""
        if comparison:
            print("\n" + comparison)
        log.info("seed comparison: %s", seed_runs.write(result, seeds, args.out, comparison))
        return 0
    report, model = train_and_evaluate(material, settings, args.stream, words)
    if args.install:
        install_model(model, args.install)
    if args.benchmarks:
        record_training(report, args.benchmarks, args.name, args.arch,
                        "kws-train " + " ".join(sys.argv[1:]))
    return 0


def recipe_of(args: argparse.Namespace) -> Recipe:
    """`--recipe FILE` (or the shipped recipe) with the `--set KEY=VALUE` overrides applied;
    ConfigError or ValueError says what is wrong with them."""
    recipe = load(args.recipe) if args.recipe else Recipe()
    if not args.set:
        return recipe
    return with_overrides(recipe, dict(parse_override(p) for p in args.set))


def cmd_recipe(args: argparse.Namespace) -> int:
    """Print the shipped recipe (or a saved one, with overrides applied) as YAML."""
    try:
        sys.stdout.write(to_yaml(recipe_of(args)))
    except (ConfigError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    return 0


def cmd_default(args: argparse.Namespace) -> int:
    """Make the model of a recipe (by default the shipped one: the node's bundled model)."""
    from training.experiments.recipe_run import run_recipe

    try:
        recipe = recipe_of(args)
    except (ConfigError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    try:
        run_recipe(recipe, args.work, args.workers, args.install, args.benchmarks)
    except FileNotFoundError as exc:  # the recorded data the recipe names is not there
        log.error("%s", exc)
        return 2
    return 0


def cmd_breakdown(args: argparse.Namespace) -> int:
    """Print a model's accuracy per word and voice group on a synthetic dataset or on
    recordings in label folders."""
    from training.evaluation.breakdown import run_breakdown

    print(run_breakdown(args.model, args.data, args.engine, args.by))
    return 0


def cmd_stream_eval(args: argparse.Namespace) -> int:
    """Score a model's streaming detections on a recording; optionally update a run's report."""
    from training.evaluation.node_eval import streaming_evaluation

    result = streaming_evaluation(args.model, args.recording, words_of(args))
    print(json.dumps({k: v for k, v in result.items() if k != "false_examples"}))
    if args.run:
        from training.evaluation.report import streams

        path = args.run / "report.json"
        report = json.loads(path.read_text())
        others = [s for s in streams(report) if s.get("recording") != result["recording"]]
        report.pop("streaming", None)
        report["streams"] = [*others, result]
        path.write_text(json.dumps(report, indent=1))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Re-render report.md and plots (and optionally BENCHMARKS.md) from a run's report.json."""
    from training.evaluation.report import write_report

    report = json.loads((args.run / "report.json").read_text())
    labels = json.loads(manifest_path(Path(report["final"]["models"][
        "float32/ai-edge-litert"]["path"])).read_text())["labels"]
    print(write_report(report, labels, args.run))
    if args.benchmarks:
        record_training(report, args.benchmarks, args.name, args.arch, args.command_line)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from training.data.dataset import download_archive

    download_archive(args.url, args.dest, args.sha256)
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    """Personalise a run's model or an installed one (by default the bundled model, once
    `kws-train default` has installed it with its weights) with the user's recordings."""
    from training.data.dataset import USER_ENGINE, load_label_folders
    from training.data.noise import noise_bank
    from training.models.finetune import (
        BaseModel,
        FinetuneSettings,
        finetune,
        replay_clips,
        synthesise_replay,
    )

    try:
        base = BaseModel.of(args.base)
    except (FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    user = load_label_folders(args.user, list(read_manifest(base.tflite).commands), USER_ENGINE)
    roots = args.data or [synthesise_replay(base, args.out / "replay", args.seed, args.workers)]
    replay = replay_clips(base, roots)
    settings = FinetuneSettings(shots=args.shots, epochs=args.epochs, seed=args.seed,
                                workers=args.workers)
    result = finetune(base, user, replay, noise_bank(args.seed), args.out, settings)
    print(json.dumps({k: result[k]["accuracy"] for k in ("base", "personalised")}))
    if args.install:
        install_model(args.out / "model_int8.tflite", args.install)
    return 0
