"""`kws-train`: synthesise data, train, export, evaluate, fine-tune; one command makes the model
the node ships from its recipe (`kws-train default`, `kws-train recipe`)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from edge_node.logmel import NORMALISATIONS
from edge_node.logs import setup_logging
from edge_node.model import DEFAULT_MODEL
from training.cli.commands import (
    SPEECH_COMMANDS_URL,
    cmd_breakdown,
    cmd_default,
    cmd_download,
    cmd_finetune,
    cmd_hard,
    cmd_mine,
    cmd_recipe,
    cmd_report,
    cmd_stream,
    cmd_stream_eval,
    cmd_synth,
    cmd_train,
)
from training.cli.people import add_people_parsers
from training.models.finetune import FinetuneSettings
from training.models.settings import (
    ARCHITECTURES,
    EMBEDDING_POOLINGS,
    ENSEMBLE_JOINS,
    TrainSettings,
)

log = logging.getLogger("training")


def add_measured_off_options(parser: argparse.ArgumentParser) -> None:
    """Training options measured and kept off in the recipe (BENCHMARKS.md says what each did:
    masks and distillation helped only unseen engines' clips, mixup moved people's folds along
    their trade-off), for `kws-train train`."""
    parser.add_argument("--mask-frames", type=int, default=0,
                        help="online SpecAugment: two time masks of up to N frames (0 = off)")
    parser.add_argument("--mask-bands", type=int, default=0,
                        help="online SpecAugment: two frequency masks of up to N bands (0 = off)")
    parser.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA",
                        help="mixup: blend each example with another of its batch, share from "
                             "Beta(ALPHA, ALPHA) (0 = off)")
    parser.add_argument("--distill", type=int, default=0, metavar="N",
                        help="train N teachers (other seeds) first, then the model on their "
                             "averaged probabilities (0 = off)")


def add_ensemble_join_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ensemble-join", choices=ENSEMBLE_JOINS,
                        default=TrainSettings.ensemble_join,
                        help="how --arch ensemble joins its members: geometric (softmax of "
                             "their averaged logits) or mean (averaged probabilities, "
                             "kws-default 2.1.0 and before)")
    parser.add_argument("--ensemble-temperature", type=float,
                        default=TrainSettings.ensemble_temperature,
                        help="the geometric join's logits are divided by this: where on the "
                             "trade-off each threshold lies (1.2: 0.6 gives about the false "
                             "activations of the mean join)")


def add_recipe_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", type=Path,
                        help="a recipe YAML (e.g. edge_node/models/default.recipe.yaml, or the "
                             "output of `kws-train recipe` edited); default: the shipped recipe")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, dotted, value as YAML (repeatable): "
                             "--set train.epochs=30 --set people.speech_commands=data/sc "
                             "--set evaluation.leave_one_engine_out=false")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kws-train", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="synthesise a dataset with the local TTS engines")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--voices", default="espeak=250,flite=120,festival=60",
                       help="voices per engine, e.g. espeak=250,flite=120,festival=60")
    synth.add_argument("--words", help="comma-separated keywords (default: the 8 commands)")
    synth.add_argument("--silence", type=int, default=1500, help="_silence_ clips")
    synth.add_argument("--unknown-per-voice", type=float, default=3.0,
                       help="_unknown_ clips (other words, sentences) per voice")
    synth.add_argument("--near-misses-per-voice", type=float, default=0.0,
                       help="extra `_unknown_` clips per voice of words that sound like a "
                            "command (\"ride\", \"gown\"), said by the same voices")
    synth.add_argument("--takes", type=int, default=1, help="takes of each word per voice")
    synth.add_argument("--seed", type=int, default=1)
    synth.add_argument("--workers", type=int, default=2)
    synth.set_defaults(func=cmd_synth)

    stream = sub.add_parser("stream", help="long recording with commands at known times")
    stream.add_argument("--out", type=Path, required=True, help="WAV (events go to .json)")
    stream.add_argument("--duration", type=float, default=600.0, help="seconds")
    stream.add_argument("--words")
    stream.add_argument("--seed", type=int, default=1)
    stream.add_argument("--voices-per-engine", type=int, default=20)
    stream.add_argument("--engines", default="espeak,flite,festival",
                        help="engines whose voices speak (e.g. piper: neural voices only)")
    stream.add_argument("--command-share", type=float, default=0.5,
                        help="share of inserted items that are commands")
    stream.add_argument("--max-gap", type=float, default=8.0, help="longest pause (s)")
    stream.add_argument("--workers", type=int, default=2)
    stream.set_defaults(func=cmd_stream)

    mine_p = sub.add_parser("mine", help="labelled 1 s windows cut from a long recording "
                                         "spoken by the dataset's voices (streaming negatives)")
    mine_p.add_argument("--data", type=Path, required=True, help="the synth dataset (its voices)")
    mine_p.add_argument("--out", type=Path, required=True, help="dataset dir to write")
    mine_p.add_argument("--minutes", type=float, default=60.0)
    mine_p.add_argument("--voices-per-engine", type=int, default=40)
    mine_p.add_argument("--unknown", type=int, default=8000, help="_unknown_ windows to keep")
    mine_p.add_argument("--commands", type=int, default=3000, help="command windows to keep")
    mine_p.add_argument("--silence", type=int, default=1000, help="_silence_ windows to keep")
    mine_p.add_argument("--words")
    mine_p.add_argument("--near-miss-share", type=float, default=0.0,
                        help="share of the other words that sound like a command ('gown', "
                             "'lift'): the windows a streaming model falsely fires on")
    mine_p.add_argument("--seed", type=int, default=1)
    mine_p.add_argument("--workers", type=int, default=2)
    mine_p.set_defaults(func=cmd_mine)

    hard = sub.add_parser("hard", help="hard negatives: the windows a model falsely fired on "
                                       "in a mining recording")
    hard.add_argument("--recording", type=Path, required=True,
                      help="a `kws-train mine` recording (training voices; events in .json)")
    hard.add_argument("--model", type=Path, required=True)
    hard.add_argument("--out", type=Path, required=True, help="dataset dir to write")
    hard.add_argument("--threshold", type=float, default=0.4,
                      help="detector threshold (below the node's, to catch near misses too)")
    hard.add_argument("--words")
    hard.set_defaults(func=cmd_hard)

    train = sub.add_parser("train", help="train, export (float32 + int8) and evaluate")
    train.add_argument("--data", type=Path, action="append", default=[],
                       help="synthetic dataset dir (repeatable)")
    train.add_argument("--speech-commands", type=Path,
                       help="recorded people in the Speech Commands layout (WAV or FLAC; "
                            "e.g. ../shared/speech_commands or a `kws-train download`): "
                            "trained on, less the speakers kept for evaluation")
    train.add_argument("--speech-commands-weight", type=float, default=1.0,
                       help="how much each recorded clip counts next to a synthetic one")
    train.add_argument("--balance-words", action="store_true",
                       help="scale each command's recorded clips to the mean command's count")
    train.add_argument("--real-speech", type=Path,
                       help="real talk and household noise (shared/real_speech layout): its "
                            "training noise joins the augmentation bank")
    train.add_argument("--folds", type=int, default=0, metavar="K",
                       help="only K speaker-held-out folds over the recorded people (each "
                            "fold's model never heard its people), beside the bundled model")
    train.add_argument("--only-folds", help="with --folds: just these folds (e.g. 0,1)")
    train.add_argument("--fold-epochs", type=int,
                       help="epoch bound of the fold runs (default: --epochs)")
    train.add_argument("--user", type=Path, help="your recordings: DIR/<label>/*.wav")
    train.add_argument("--user-weight", type=float, default=3.0)
    train.add_argument("--words", help="comma-separated keywords (default: the 8 commands)")
    train.add_argument("--out", type=Path, required=True, help="run directory")
    train.add_argument("--arch", choices=ARCHITECTURES, default="tcresnet",
                       help="embedding_dnn trains on speech-embedding features, ensemble on "
                            "log-mel and speech embeddings")
    train.add_argument("--freq-warp", type=float, default=0.15,
                       help="online mel-axis stretch, 1 +/- this (0 = off)")
    train.add_argument("--time-warp", type=float, default=0.0,
                       help="online time-axis stretch about the centre, 1 +/- this (0 = off)")
    add_measured_off_options(train)
    add_ensemble_join_option(train)
    train.add_argument("--tcresnet-width", type=float, default=1.0,
                       help="multiplier of the TC-ResNet's channel widths (its capacity)")
    train.add_argument("--embedding-width", type=int, default=64,
                       help="units of each dense layer of the speech-embedding head")
    train.add_argument("--embedding-pooling", choices=EMBEDDING_POOLINGS, default="mean",
                       help="the speech-embedding head reads the window's embeddings averaged "
                            "(mean) or in order (flatten)")
    train.add_argument("--distill-weight", type=float, default=0.7,
                       help="share of the teachers' probabilities in the targets")
    train.add_argument("--weight-average", type=float, default=0.0,
                       help="momentum of a moving average of the weights (e.g. 0.999; 0 = off)")
    train.add_argument("--trim", type=float, default=0.0,
                       help="share of speech clips cut to their loud part before being placed "
                            "at a random offset (recorded clips are padded to one window)")
    train.add_argument("--resynth", type=float, default=0.0,
                       help="share of augmented speech re-spoken through an LPC vocoder")
    train.add_argument("--specaugment", type=float, metavar="P",
                       help="share of augmented copies given SpecAugment masks when they are "
                            "featurised (default: the recipe's augment.p_specaugment)")
    train.add_argument("--normalisation", choices=NORMALISATIONS, default="mvn")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--copies", type=int, default=3, help="augmented copies per clip")
    train.add_argument("--seed", type=int, default=1)
    train.add_argument("--workers", type=int, default=2)
    train.add_argument("--feature-cache", type=Path,
                       help="folder keeping feature rows between runs: a run that changes only "
                            "training settings (or adds copies) reuses them")
    train.add_argument("--no-loeo", action="store_true", help="skip leave-one-engine-out runs")
    train.add_argument("--loeo-epochs", type=int, default=12)
    train.add_argument("--seeds", help="only the leave-one-engine-out runs, once per training "
                                       "seed (e.g. 1,2,3), scored in Keras: is a change "
                                       "bigger than seed noise?")
    train.add_argument("--against", type=Path,
                       help="with --seeds: an earlier --seeds run (its dir or seeds.json) to "
                            "compare with, seed by seed (e.g. the recipe before a change)")
    train.add_argument("--holdout", help="with --seeds: hold out only these engines "
                                         "(e.g. espeak)")
    train.add_argument("--stream", type=Path, action="append", default=[],
                       help="recording (+ .json events) to evaluate on; repeatable. With "
                            "--seeds: a recording spoken by one engine alone streams each "
                            "model that never heard that engine")
    train.add_argument("--stream-rate", type=float, default=20.0,
                       help="with --seeds and --stream: false activations per hour at which "
                            "streaming recall is read")
    train.add_argument("--name", default="kws-model")
    train.add_argument("--version", default="1.0.0")
    train.add_argument("--install", type=Path, help="copy the final model here (+ manifest)")
    train.add_argument("--benchmarks", type=Path,
                       help="record the figures in this BENCHMARKS.md (source checkout)")
    train.set_defaults(func=cmd_train)

    add_people_parsers(sub)

    sev = sub.add_parser("stream-eval", help="recall and false activations/hour of a model")
    sev.add_argument("--model", type=Path, required=True)
    sev.add_argument("--recording", type=Path, required=True, help="WAV with events in .json")
    sev.add_argument("--words")
    sev.add_argument("--run", type=Path, help="also store the result in this run's report.json")
    sev.set_defaults(func=cmd_stream_eval)

    brk = sub.add_parser("breakdown", help="a model's accuracy per word and voice group "
                                           "(which words and accents an unseen engine misses)")
    brk.add_argument("--model", type=Path, required=True,
                     help="e.g. a run's loeo-espeak/model_int8.tflite")
    brk.add_argument("--data", type=Path, required=True,
                     help="a `kws-train synth` dataset, or recordings in label folders "
                          "(<label>/*.wav: Speech Commands, `edge-node record` clips)")
    brk.add_argument("--engine", help="only this engine's clips (the one the model never heard)")
    brk.add_argument("--by", default="base",
                     help="voice field to group by: base (espeak-ng accent, flite/festival "
                          "voice; the speaker of recordings), kind (male/female/child), "
                          "engine...")
    brk.set_defaults(func=cmd_breakdown)

    rep = sub.add_parser("report", help="re-render a run's report (and BENCHMARKS.md section)")
    rep.add_argument("run", type=Path, help="run directory with report.json")
    rep.add_argument("--benchmarks", type=Path)
    rep.add_argument("--name", default="kws-default")
    rep.add_argument("--arch", default="ensemble")
    rep.add_argument("--command-line", default="kws-train default",
                     help="the command that made the run, quoted in BENCHMARKS.md")
    rep.set_defaults(func=cmd_report)

    download = sub.add_parser("download", help="fetch a Speech Commands archive, verified")
    download.add_argument("--url", default=SPEECH_COMMANDS_URL)
    download.add_argument("--sha256", required=True,
                          help="expected SHA-256 of the archive (from the dataset's page)")
    download.add_argument("--dest", type=Path, required=True)
    download.set_defaults(func=cmd_download)

    tune = sub.add_parser("finetune", help="personalise a model with your own recordings")
    tune.add_argument("--base", type=Path,
                      help="the base model: a run directory (RUN/final: model.keras + tflite) "
                           "or an installed .tflite with its weights beside it (default: the "
                           "node's bundled model)")
    tune.add_argument("--user", type=Path, required=True, help="DIR/<label>/*.wav recordings")
    tune.add_argument("--data", type=Path, action="append", default=[],
                      help="original dataset(s) to replay against forgetting (default: a small "
                           "one like it is synthesised into OUT/replay)")
    tune.add_argument("--out", type=Path, required=True)
    tune.add_argument("--shots", type=int, default=5, help="recordings per label to train on")
    tune.add_argument("--epochs", type=int, default=FinetuneSettings.epochs)
    tune.add_argument("--seed", type=int, default=1)
    tune.add_argument("--workers", type=int, default=2)
    tune.add_argument("--install", type=Path, help="copy the tuned model here (+ manifest)")
    tune.set_defaults(func=cmd_finetune)

    default = sub.add_parser("default", help="make a recipe's model: by default the node's "
                                              "bundled one (`kws-train recipe` prints it)")
    add_recipe_options(default)
    default.add_argument("--work", type=Path, default=Path("runs/default"),
                         help="where the recipe's data, recordings and run go (reused when "
                              "there: an interrupted run resumes)")
    default.add_argument("--workers", type=int, default=2)
    default.add_argument("--install", type=Path, default=DEFAULT_MODEL,
                         help="where the model goes (with its manifest, weights and recipe)")
    default.add_argument("--benchmarks", type=Path, help="record the figures in BENCHMARKS.md")
    default.set_defaults(func=cmd_default)

    recipe = sub.add_parser("recipe", help="print the shipped recipe (or a saved one, with "
                                           "--set overrides) as YAML")
    add_recipe_options(recipe)
    recipe.set_defaults(func=cmd_recipe)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    return args.func(args)

