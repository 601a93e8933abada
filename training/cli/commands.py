"""What each `kws-train` subcommand does; `training.cli` holds their arguments and the recipe."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_node.features import (
    FeatureSpec,
    embedding_spec,
    ensemble_spec,
    logmel_spec,
)
from edge_node.model import file_sha256, manifest_path, read_manifest
from training.data.vocab import COMMANDS

log = logging.getLogger("training")

SPEECH_COMMANDS_URL = (
    "http://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.02.tar.gz")
STREAM_SEED_OFFSET = 1000
"""Voices of the streaming recording are drawn with seed + this: none of them trained."""
MINING_SEED_OFFSET = 2000
"""Texts, noise and timing of the mining recording (its voices are the training voices)."""


def parse_voices(text: str) -> dict[str, int]:
    """'espeak=250,flite=120' -> {'espeak': 250, 'flite': 120}."""
    result = {}
    for part in text.split(","):
        engine, _, count = part.partition("=")
        result[engine.strip()] = int(count)
    return result


def noise_bank(seed: int, extra: Sequence[np.ndarray] = ()) -> list[np.ndarray]:
    """Background noise for augmentation: every generated kind, a few seeds each."""
    from training.data.noise import NOISE_KINDS, make_noise

    rng = np.random.default_rng([seed, 77])
    bank = [make_noise(kind, 20.0, rng) for kind in NOISE_KINDS if kind != "digital_silence"
            for _ in range(3)]
    return bank + list(extra)


def cmd_synth(args: argparse.Namespace) -> int:
    from training.data.dataset_synth import synthesize_dataset

    words = tuple(args.words.split(",")) if args.words else COMMANDS
    voices = parse_voices(args.voices)
    takes = getattr(args, "takes", 1)
    unknown = {engine: int(round(count * args.unknown_per_voice))
               for engine, count in voices.items()}
    per_word = {engine: count * takes for engine, count in voices.items()}
    synthesize_dataset(args.out, seed=args.seed, words=words, clips_per_word_per_engine=per_word,
                       unknown_clips_per_engine=unknown, silence_clips=args.silence,
                       workers=args.workers, engines=tuple(voices),
                       takes_per_voice=takes,
                       near_misses_per_voice=args.near_misses_per_voice)
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    from training.data.stream_synth import make_stream_recording

    words = tuple(args.words.split(",")) if args.words else COMMANDS
    make_stream_recording(args.out, args.out.with_suffix(".json"), duration_s=args.duration,
                          seed=args.seed + STREAM_SEED_OFFSET, words=words,
                          voices_per_engine=args.voices_per_engine, workers=args.workers,
                          command_share=args.command_share, max_gap_s=args.max_gap,
                          engines=tuple(args.engines.split(",")))
    return 0


def mining_engines(dataset: dict) -> tuple[str, ...]:
    """The engines whose voices speak a dataset's mining recording: the dataset's own, less
    the train-only ones (accented voices have no events to cut by); a dataset without espeak-ng
    must not get espeak-ng's voices through its windows."""
    from training.tts.engines import ENGINES

    engines = dataset.get("engines") or ("espeak", "flite", "festival")
    return tuple(e for e in engines if not ENGINES[e].train_only)


def cmd_mine(args: argparse.Namespace) -> int:
    """Render a recording with the dataset's own voices and cut labelled windows from it."""
    from training.data.stream_mining import MiningPlan, mine
    from training.data.stream_synth import make_stream_recording

    words = tuple(args.words.split(",")) if args.words else COMMANDS
    meta = json.loads((args.data / "dataset.json").read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    recording = args.out / "recording.wav"
    if not recording.is_file():
        make_stream_recording(recording, recording.with_suffix(".json"),
                              duration_s=args.minutes * 60, seed=args.seed + MINING_SEED_OFFSET,
                              voice_seed=meta["seed"], words=words,
                              engines=mining_engines(meta),
                              voices_per_engine=args.voices_per_engine, workers=args.workers,
                              command_share=0.35, max_gap_s=4.0,
                              near_miss_share=args.near_miss_share)
    mine(recording, args.out, MiningPlan(args.unknown, args.commands, args.silence),
         seed=args.seed, commands=words)
    return 0


def cmd_hard(args: argparse.Namespace) -> int:
    """Windows behind a model's false activations on a mining recording (train-only data)."""
    from training.data.stream_mining import mine_hard
    from training.evaluation.node_eval import node_detections

    words = tuple(args.words.split(",")) if args.words else COMMANDS
    detections = node_detections(args.model, args.recording, args.threshold)
    mine_hard(args.recording, detections, args.out, words)
    return 0


def features_for(architecture: str, normalisation: str = "mvn") -> FeatureSpec:
    """The feature profile an architecture is trained on."""
    if architecture == "article_cnn":
        return FeatureSpec("stft129x124")
    if architecture == "embedding_dnn":
        return embedding_spec()
    if architecture == "ensemble":
        return ensemble_spec(normalisation)
    return logmel_spec(normalisation=normalisation)


def cmd_train(args: argparse.Namespace) -> int:
    from training.data.augment import AugmentSettings
    from training.data.dataset import (
        PEOPLE_ENGINE,
        SPEECH_COMMANDS_ATTRIBUTION,
        USER_ENGINE,
        Clip,
        load_label_folders,
        load_synthetic,
        speech_commands_noise,
        split_people,
    )
    from training.evaluation.report import write_report
    from training.experiments.pipeline import PipelineSettings, run
    from training.models.settings import TrainSettings

    words = tuple(args.words.split(",")) if args.words else COMMANDS
    clips = [c for root in args.data for c in load_synthetic(root, words)]
    extra_noise: list[np.ndarray] = []
    held_people: list[Clip] = []
    if args.speech_commands:
        people = load_label_folders(args.speech_commands, words, PEOPLE_ENGINE,
                                    weight=args.speech_commands_weight)
        if not args.folds:
            # the people of the streaming evaluation: scored, never trained on
            people, held_people = split_people(people)
        clips += people
        extra_noise = speech_commands_noise(args.speech_commands)
    attribution = [SPEECH_COMMANDS_ATTRIBUTION] if args.speech_commands else []
    if args.real_speech:
        from training.data.real_speech import licences, load_corpus, read_all, split_corpus

        corpus = split_corpus(load_corpus(args.real_speech))
        extra_noise += read_all(corpus.train_noise)
        attribution += licences(corpus.train_talk + corpus.train_noise)
    if args.user:
        clips += load_label_folders(args.user, words, USER_ENGINE, weight=args.user_weight)
    settings = PipelineSettings(
        out=args.out, commands=words, features=features_for(args.arch, args.normalisation),
        train=TrainSettings(architecture=args.arch, epochs=args.epochs, seed=args.seed,
                            batch_size=args.batch_size, freq_warp=args.freq_warp,
                            time_warp=args.time_warp, weight_average=args.weight_average,
                            mask_frames=args.mask_frames, mask_bands=args.mask_bands,
                            distill_teachers=args.distill,
                            distill_weight=args.distill_weight,
                            ensemble_join=args.ensemble_join,
                            ensemble_temperature=args.ensemble_temperature),
        copies=args.copies, augment=AugmentSettings(p_resynth=args.resynth, p_trim=args.trim),
        leave_one_engine_out=not args.no_loeo, loeo_epochs=args.loeo_epochs,
        name=args.name,
        version=args.version, workers=args.workers, attribution=tuple(attribution))
    if args.folds:
        from edge_node.model import DEFAULT_MODEL
        from training.experiments.folds import fold_settings, run_folds

        result = run_folds(clips, noise_bank(args.seed, extra_noise),
                           fold_settings(settings, args.fold_epochs), args.folds, DEFAULT_MODEL,
                           [int(k) for k in args.only_folds.split(",")] if args.only_folds
                           else None)
        from training.cli.people import fold_table

        print(fold_table(result, settings.labels, args.name, args.benchmarks))
        return 0
    if args.seeds:
        from training.experiments import seeds as seed_runs

        seeds = [int(v) for v in args.seeds.split(",")]
        holdout = tuple(args.holdout.split(",")) if args.holdout else ()
        baseline = seed_runs.load(args.against) if args.against else None
        stream = seed_runs.StreamCheck(tuple(args.stream), args.out / "models",
                                       args.stream_rate) if args.stream else None
        result = seed_runs.loeo_over_seeds(clips, noise_bank(args.seed, extra_noise), settings,
                                           seeds, holdout, args.out / "probs", stream)
        print(seed_runs.format_table(result, seeds))
        comparison = seed_runs.format_comparison(result, seeds, baseline) if baseline else ""
        if comparison:
            print("\n" + comparison)
        log.info("seed comparison: %s", seed_runs.write(result, seeds, args.out, comparison))
        return 0
    report = run(clips, noise_bank(args.seed, extra_noise), settings, extra_test=held_people)
    final = Path(report["final"]["models"]["float32/ai-edge-litert"]["path"])
    # The article's model format is float32; ours ships int8 (within a point of float, 1/2 size).
    ours_int8 = settings.quantize and args.arch != "article_cnn"
    chosen = final.with_name("model_int8.tflite") if ours_int8 else final
    if args.stream:
        from training.cli.people import people_recordings
        from training.evaluation.node_eval import streaming_evaluation

        people = people_recordings(args.stream)
        if people:  # first, so every recording below is scored at the shipped threshold
            from training.evaluation.calibrate import calibrate, plot_tradeoff

            report["calibration"] = calibrate(chosen, people, words)
            plot_tradeoff(report["calibration"], args.out / "threshold_tradeoff.png",
                          f"{args.name} {args.version}: threshold on held-out people")
        report["streams"] = [streaming_evaluation(chosen, recording, words)
                             for recording in args.stream]
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    path = write_report(report, settings.labels, args.out)
    log.info("report: %s", path)
    if args.install:
        install_model(chosen, args.install)
    if args.benchmarks:
        command = "kws-train " + " ".join(sys.argv[1:]) if args.command == "train" else (
            "kws-train default")
        record_benchmarks(report, args.benchmarks, args.name, args.arch, command)
    return 0


def record_benchmarks(report: dict, benchmarks: Path, name: str, arch: str, command: str) -> None:
    """Write a run's figures into a BENCHMARKS.md."""
    from training.evaluation.benchmarks import write_section
    from training.evaluation.report import benchmark_summary

    write_section(f"training-{name}", f"Training: {name} ({arch})",
                  benchmark_summary(report, command), benchmarks)


def cmd_breakdown(args: argparse.Namespace) -> int:
    """Print a model's accuracy per word and voice group on a synthetic dataset or on
    recordings in label folders."""
    from training.evaluation.breakdown import run_breakdown

    print(run_breakdown(args.model, args.data, args.engine, args.by))
    return 0


def cmd_stream_eval(args: argparse.Namespace) -> int:
    """Score a model's streaming detections on a recording; optionally update a run's report."""
    from training.evaluation.node_eval import streaming_evaluation

    words = tuple(args.words.split(",")) if args.words else COMMANDS
    result = streaming_evaluation(args.model, args.recording, words)
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
        record_benchmarks(report, args.benchmarks, args.name, args.arch, args.command_line)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from training.data.dataset import download_archive

    download_archive(args.url, args.dest, args.sha256)
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    """Personalise a run's model or an installed one (by default the bundled model, once
    `kws-train default` has installed it with its weights) with the user's recordings."""
    from training.data.dataset import USER_ENGINE, load_label_folders
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


def install_model(model: Path, destination: Path) -> None:
    """Copy a model and its manifest to where the node loads it, and the Keras model it was
    exported from (when the run has one) beside it, stamped, so `kws-train finetune` can start
    from the installed model.

    Each file is written beside its destination and renamed over it: a node that is running
    the old model has it memory-mapped, and rewriting that file in place would hand the node
    new bytes under its interpreter (SIGBUS when the file shrinks) instead of leaving it on
    the old inode until it reloads.
    """
    from training.models.finetune import stamp_path, weights_path

    destination.parent.mkdir(parents=True, exist_ok=True)
    keras = model.parent / "model.keras"
    pairs = [(model, destination), (manifest_path(model), manifest_path(destination))]
    if keras.is_file():
        pairs.append((keras, weights_path(destination)))
    for source, target in pairs:
        part = target.with_name(target.name + ".part")
        shutil.copyfile(source, part)
        os.replace(part, target)
    stamp = stamp_path(destination)
    if keras.is_file():
        stamp.write_text(json.dumps({"model_sha256": file_sha256(destination)}, indent=1) + "\n")
    else:
        # weights of the model this one replaces would be taken for its own
        weights_path(destination).unlink(missing_ok=True)
        stamp.unlink(missing_ok=True)
    log.info("installed %s as %s", model, destination)
