"""A real-speech recogniser as a reference listener for each synthetic engine's words.

Leave-one-engine-out asks how our model does on an engine it never heard. This asks how hard
that engine's clips are in themselves, for a recogniser of *real* speech that never saw any
synthetic voice: CMU PocketSphinx with its bundled en-us acoustic model (the `pocketsphinx`
package), restricted by a JSGF grammar to the dataset's command words. That is a closed set,
easier than our task: it never has `_unknown_` to choose. With `--seeds-run`, the same clips'
scores from a `kws-train train --seeds` run's saved probabilities sit beside it (closed set too:
the argmax over the commands only, and over every label as the LOEO figures count it), and how
often our model is right on the clips the reference gets right and on those it gets wrong.

Run: `.venv/bin/python -m bench.reference_asr --data runs/default/data [--seeds-run RUN]`
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.audio.wav import read_wav_mono16k
from training.data.dataset import load_synthetic
from training.evaluation.benchmarks import machine, write_section
from training.evaluation.breakdown import breakdown, format_breakdown, voice_records
from training.experiments.seeds import compare_with_reference


def command_words(data: Path) -> list[str]:
    """The dataset's command words (its `dataset.json`)."""
    return list(json.loads((data / "dataset.json").read_text())["words"])


NOTHING = "(nothing)"
"""What the reference heard when it found none of the words in a clip."""


def recognise(paths: Sequence[Path], words: Sequence[str]) -> list[str]:
    """PocketSphinx's best word of each clip, from `words` only (or `NOTHING`); clips are read
    as the node reads WAV files, so any rate and channel count will do."""
    from pocketsphinx import Decoder
    from tqdm import tqdm

    with tempfile.TemporaryDirectory() as tmp:
        grammar = Path(tmp) / "commands.gram"
        grammar.write_text("#JSGF V1.0;\ngrammar commands;\npublic <command> = "
                           + " | ".join(words) + " ;\n")
        decoder = Decoder(jsgf=str(grammar), samprate=16000, loglevel="FATAL")
    heard = []
    for path in tqdm(paths, desc="reference recogniser", unit="clip"):
        audio = read_wav_mono16k(path)
        pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        heard.append(hypothesis.hypstr.strip() if hypothesis and hypothesis.hypstr.strip()
                     else NOTHING)
    return heard


def format_comparison(reference: dict[str, Any], ours: dict[str, dict[str, Any]]) -> str:
    """Our held-out models beside the reference, per engine (`reference`: a `breakdown`)."""
    lines = ["| held-out engine | clips | reference (closed set) | ours, closed set (mean of "
             "seeds) | ours, all labels (mean of seeds) | ours right where the reference is "
             "right / wrong |", "|---|---|---|---|---|---|"]
    for engine, row in ours.items():
        heard = reference["table"].get(engine, {}).get("all", [])
        ref_cell = f"{100 * np.mean(heard):.1f}%" if heard else "-"
        pair = " / ".join("-" if row[k] is None else f"{100 * row[k]:.1f}%"
                          for k in ("right_when_reference_right", "right_when_reference_wrong"))
        lines.append(f"| {engine} | {row['clips']} | {ref_cell} | "
                     f"{100 * np.mean(row['closed_set']):.1f}% | "
                     f"{100 * np.mean(row['all_labels']):.1f}% | {pair} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("runs/default/data"),
                        help="a `kws-train synth` dataset")
    parser.add_argument("--seeds-run", type=Path,
                        help="a `kws-train train --seeds` run to set beside the reference")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = parser.parse_args()
    words = command_words(args.data)
    clips = [c for c in load_synthetic(args.data, words) if c.scored and c.label in words]
    if not clips:
        raise SystemExit(f"{args.data}: no scored command clips")
    heard = recognise([c.path for c in clips], words)
    per_engine = breakdown(clips, heard, voice_records(args.data), words,
                           lambda voice: str(voice.get("engine", "?")))
    text = format_breakdown(per_engine, words, "engine")
    if args.seeds_run:
        right = {str(Path(c.path).resolve()): h == c.label
                 for c, h in zip(clips, heard, strict=True)}
        ours = compare_with_reference(args.seeds_run, right)
        text += "\n\n" + format_comparison(per_engine, ours)
    print(text)
    if args.no_write:
        return
    body = (f"Machine: {machine()}. `python -m bench.reference_asr --data {args.data}"
            + (f" --seeds-run {args.seeds_run}" if args.seeds_run else "") + "`: PocketSphinx "
            "(en-us acoustic model of real speech) restricted to the command words, on every "
            "scored command clip of each engine.\n\n" + text)
    write_section("reference-asr", "A real-speech recogniser on each engine's words", body)


if __name__ == "__main__":
    main()
