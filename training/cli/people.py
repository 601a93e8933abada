"""`kws-train`'s recorded-people commands: real talk as training windows, the evaluation
recordings of held-out people, and the speaker-fold table."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from training.data import make
from training.data.vocab import COMMANDS, SILENCE_LABEL, UNKNOWN_LABEL
from training.recipe import Streams

log = logging.getLogger("training")


def fold_table(result: dict, labels: Sequence[str], name: str,
               benchmarks: Path | None) -> str:
    """The speaker-fold table, also written into BENCHMARKS.md when asked."""
    from training.experiments.folds import format_folds

    table = format_folds(result, labels, f"{name} (this recipe)", "bundled model")
    if benchmarks:
        from training.evaluation.benchmarks import write_section

        command = "kws-train " + " ".join(sys.argv[1:])
        write_section("people-folds", "Recognising people: speaker-held-out folds",
                      f"Reproduce: `{command}`\n\nEach fold's model (int8, node runtime) is "
                      "scored on the recorded people of its fold, whom it never heard; the "
                      "bundled model on the same clips. Mean over folds (min-max):"
                      f"\n\n{table}", benchmarks)
    return table


def cmd_fold_report(args: argparse.Namespace) -> int:
    """The fold table of a `--folds` run (or the folds an interrupted one finished)."""
    from edge_node.model import DEFAULT_MODEL
    from training.experiments.folds import fold_report

    labels = [*COMMANDS, UNKNOWN_LABEL, SILENCE_LABEL]
    result = fold_report(args.run, args.speech_commands, args.folds,
                         args.baseline or DEFAULT_MODEL, labels)
    print(fold_table(result, labels, args.name, args.benchmarks))
    return 0


def cmd_fold_compare(args: argparse.Namespace) -> int:
    """Recipes' `--folds` runs side by side, paired fold by fold with the first."""
    from training.experiments.folds import compare_fold_runs

    runs = []
    for item in args.runs:
        name, _, path = item.rpartition("=")
        runs.append((name or path, Path(path)))
    try:
        table = compare_fold_runs(runs)
    except (FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    print(table)
    if args.benchmarks:
        from training.evaluation.benchmarks import write_section

        command = "kws-train fold-compare " + " ".join(shlex.quote(run) for run in args.runs)
        write_section(args.section, args.title, "\n\n".join(
            part for part in (args.note, f"Reproduce the table: `{command}`", table) if part),
            args.benchmarks)
    return 0


def cmd_talk(args: argparse.Namespace) -> int:
    """1 s windows of the training part of real talk, as `_unknown_` training data."""
    make.talk_dataset(args.real_speech, args.out, args.windows, args.seed)
    return 0


def cmd_noise(args: argparse.Namespace) -> int:
    """1 s windows of the training part of real household noise, as `_silence_` training data."""
    make.noise_dataset(args.real_speech, args.out, args.windows, args.seed)
    return 0


def cmd_people_stream(args: argparse.Namespace) -> int:
    """Evaluation recordings of people no shipped model trained on, over held-out real noise:
    `people` (commands, other words and talk) and `talk` (held-out continuous talk only)."""
    try:
        make.people_recording(args.out, kind=args.kind, real_speech=args.real_speech,
                              speech_commands=args.speech_commands, minutes=args.minutes,
                              seed=args.seed, talk_share=args.talk_share,
                              gap_s=(args.min_gap, args.max_gap),
                              words=tuple(args.words.split(",")) if args.words else COMMANDS)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Choose a model's threshold again on the evaluation recordings of held-out people, with
    the isolation check in the loop, and write it into the model's manifest."""
    from training.evaluation.calibrate import calibrate, plot_tradeoff

    isolation = None if args.no_isolation else args.isolation_model
    result = calibrate(args.model, args.recordings, COMMANDS, args.max_per_hour, isolation)
    if args.plot:
        plot_tradeoff(result, args.plot, f"{args.model.name}: threshold on held-out people")
    return 0


def cmd_isolation(args: argparse.Namespace) -> int:
    """The isolation check's model, from training-side recordings of people and talk."""
    from edge_node.isolation import DEFAULT_ISOLATION_MODEL
    from training.models.isolation import train_isolation
    from training.models.settings import IsolationSettings

    try:
        settings = IsolationSettings(**{k: v for k, v in vars(args).items()
                                        if k in IsolationSettings.__dataclass_fields__
                                        and v is not None})
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    out = args.out or DEFAULT_ISOLATION_MODEL
    train_isolation(settings, args.speech_commands, args.real_speech, out,
                    args.work or out.parent / "isolation-recordings")
    return 0


def add_people_parsers(sub: argparse._SubParsersAction) -> None:
    """The `talk`, `noise`, `people-stream`, `isolation`, `fold-report` and `fold-compare`
    subcommands."""
    for name, what, windows, func in (
            ("talk", "real talk (training speakers) as _unknown_", 8000, cmd_talk),
            ("noise", "real household noise (training files) as _silence_", 1500, cmd_noise)):
        windowed = sub.add_parser(name, help=f"1 s windows of {what} training data")
        windowed.add_argument("--real-speech", type=Path, required=True,
                              help="shared/real_speech layout (MANIFEST.csv)")
        windowed.add_argument("--out", type=Path, required=True, help="dataset dir to write")
        windowed.add_argument("--windows", type=int, default=windows)
        windowed.add_argument("--seed", type=int, default=1)
        windowed.set_defaults(func=func)

    people = sub.add_parser("people-stream", help="evaluation recording of held-out people "
                                                  "over held-out real noise")
    people.add_argument("--kind", choices=("people", "talk"), default="people",
                        help="people: commands, other words and talk; talk: held-out "
                             "continuous talk only (false activations per hour)")
    people.add_argument("--speech-commands", type=Path, help="Speech Commands layout dir")
    people.add_argument("--real-speech", type=Path, required=True)
    people.add_argument("--out", type=Path, required=True, help="WAV (events go to .json)")
    streams = Streams()  # the recipe's defaults, so a hand-made recording matches a build's
    people.add_argument("--minutes", type=float, default=streams.people_minutes,
                        help="length of `people`")
    people.add_argument("--talk-share", type=float, default=streams.people_talk_share,
                        help="share of items that are excerpts of talk (people)")
    people.add_argument("--min-gap", type=float, default=streams.people_gap_s[0],
                        help="shortest pause (s)")
    people.add_argument("--max-gap", type=float, default=streams.people_gap_s[1],
                        help="longest pause (s)")
    people.add_argument("--words")
    people.add_argument("--seed", type=int, default=1)
    people.set_defaults(func=cmd_people_stream)

    iso = sub.add_parser("isolation", help="the isolation check's model: a word said on its "
                                           "own, or inside talk (training speakers and talk)")
    iso.add_argument("--speech-commands", type=Path, required=True)
    iso.add_argument("--real-speech", type=Path, required=True)
    iso.add_argument("--out", type=Path, help="the .tflite to write (default: the node's "
                                              "bundled isolation model)")
    iso.add_argument("--work", type=Path, help="where the training recordings are kept")
    iso.add_argument("--version")
    for name in ("before_ms", "after_ms", "recordings", "validation_recordings", "width",
                 "epochs", "seed"):
        iso.add_argument("--" + name.replace("_", "-"), type=int)
    iso.add_argument("--minutes", type=float)
    iso.add_argument("--keep-alone", type=float)
    iso.set_defaults(func=cmd_isolation)

    from edge_node.isolation import DEFAULT_ISOLATION_MODEL
    from training.evaluation.calibrate import MAX_FALSE_PER_HOUR

    cal = sub.add_parser("calibrate", help="choose a model's threshold on held-out people "
                                           "(with the isolation check) into its manifest")
    cal.add_argument("model", type=Path)
    cal.add_argument("--recordings", type=Path, nargs="+", required=True,
                     help="`kws-train people-stream` recordings: people.wav and talk.wav")
    cal.add_argument("--max-per-hour", type=float, default=MAX_FALSE_PER_HOUR,
                     help="false activations per hour the threshold is chosen for")
    cal.add_argument("--isolation-model", type=Path, default=DEFAULT_ISOLATION_MODEL)
    cal.add_argument("--no-isolation", action="store_true",
                     help="calibrate for a node without the isolation check")
    cal.add_argument("--plot", type=Path, help="the trade-off curve as PNG")
    cal.set_defaults(func=cmd_calibrate)

    folds = sub.add_parser("fold-report", help="the speaker-fold table of a --folds run, "
                                               "beside the bundled model")
    folds.add_argument("run", type=Path, help="the --folds run's --out (fold-K/result.json)")
    folds.add_argument("--speech-commands", type=Path, required=True)
    folds.add_argument("--folds", type=int, default=5)
    folds.add_argument("--baseline", type=Path, help="default: the bundled model")
    folds.add_argument("--name", default="kws-default")
    folds.add_argument("--benchmarks", type=Path)
    folds.set_defaults(func=cmd_fold_report)

    compare = sub.add_parser("fold-compare", help="recipes' --folds runs side by side, paired "
                                                  "fold by fold with the first")
    compare.add_argument("runs", nargs="+", help="NAME=RUN (a --folds run's --out), the "
                                                 "reference first")
    compare.add_argument("--benchmarks", type=Path, help="also write a BENCHMARKS.md section")
    compare.add_argument("--section", default="people-folds-compared")
    compare.add_argument("--title", default="Recognising people: recipes on the same speaker "
                                            "folds")
    compare.add_argument("--note", default="", help="a paragraph that opens the section")
    compare.set_defaults(func=cmd_fold_compare)

