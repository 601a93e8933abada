"""CI's end-to-end training run: tiny synthetic dataset -> train -> export -> node runtime.

Custom keywords on purpose: the same path users take for their own words.
"""

import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import yaml

from edge_node.model import Manifest, manifest_path, read_manifest
from tests.support.shared_data import mini_real_speech, mini_speech_commands
from training.data.dataset import load_synthetic
from training.evaluation.metrics import (
    accuracy_at_false_accepts,
    detection_at_false_accepts,
    recall_at,
)
from training.evaluation.report import benchmark_summary
from training.experiments.seeds import STREAM_THRESHOLDS
from training.recipe import Recipe, with_overrides
from training.recipe import load as load_recipe
from training.tts.engines import ENGINES

pytestmark = pytest.mark.training

WORDS = "lights,music"
TRAIN_ARGS = ("--words", WORDS, "--epochs", "15", "--copies", "6", "--batch-size", "32",
              "--no-loeo", "--seed", "5")


def run(*args, env=None):
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=900,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    # Only look for TensorFlow: importing it here would break tflite-runtime interpreters
    # created later in this process (platform notes: "vector::reserve").
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed (pip install 'kws-edge-node[train]')")
    work = tmp_path_factory.mktemp("kws")
    data, out = work / "data", work / "run"
    run("-m", "training.cli", "synth", "--out", str(data), "--words", WORDS, "--voices",
        "espeak=12,flite=8,festival=4", "--silence", "40", "--unknown-per-voice", "1",
        "--seed", "5")
    run("-m", "training.cli", "train", *TRAIN_ARGS, "--data", str(data), "--out", str(out))
    return data, out


def test_training_writes_models_report_and_plots(trained):
    _, out = trained
    for name in ("report.md", "report.json", "confusion.png", "training_curves.png",
                 "final/model_int8.tflite", "final/model_float32.tflite", "final/model.keras"):
        assert (out / name).is_file(), name
    manifest = read_manifest(out / "final" / "model_int8.tflite")
    assert list(manifest.labels) == ["lights", "music", "_unknown_", "_silence_"]
    assert manifest.features.profile == "logmel"
    assert manifest.extra["quantization"] == "int8"
    assert (out / "final" / "model_int8.tflite").stat().st_size < 100_000
    report = json.loads((out / "report.json").read_text())
    assert set(report["final"]["models"]) == {
        "float32/ai-edge-litert", "float32/tflite-runtime", "int8/ai-edge-litert",
        "int8/tflite-runtime"}
    made_with = json.loads((out / "final" / "result.json").read_text())["provenance"]
    assert {"python", "keras", "numpy"} <= set(made_with["environment"])
    assert len(made_with["train_rows"]) == len(made_with["test_rows"]) == 16


@pytest.mark.parametrize("runtime", ["ai-edge-litert", "tflite-runtime"])
def test_exported_model_classifies_in_the_node_runtime(trained, runtime):
    data, out = trained
    env = {**os.environ, "EDGE_NODE_TFLITE_RUNTIME": runtime}
    done = run("-m", "edge_node", "classify", str(data / "espeak"), str(data / "flite"),
               str(data / "festival"), "--model", str(out / "final" / "model_int8.tflite"),
               "--json", env=env)
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) > 60
    hits = Counter()
    for r in results:
        truth = r["file"].split("/")[-2]
        if truth in ("lights", "music"):
            hits[r["label"] == truth] += 1
    # Clips the model trained on: a working pipeline fits them; a broken one (features, labels
    # or quantisation scrambled) sits near chance (1/4).
    assert hits[True] / (hits[True] + hits[False]) >= 0.7


@pytest.mark.parametrize("arch, profile", [("embedding_dnn", "speech-embedding"),
                                           ("ensemble", "concat")])
def test_embedding_models_train_export_int8_and_classify_in_the_node(trained, tmp_path, arch,
                                                                    profile):
    """The speech-embedding paths end to end: features from the pre-trained graphs (alone, or
    beside log-mel for the ensemble), int8 export, and the node classifying through the same
    frontend."""
    data, _ = trained
    out = tmp_path / arch
    run("-m", "training.cli", "train", *TRAIN_ARGS, "--arch", arch, "--data",
        str(data), "--out", str(out))
    model = out / "final" / "model_int8.tflite"
    manifest = read_manifest(model)
    assert manifest.features.profile == profile
    assert model.stat().st_size < 100_000
    done = run("-m", "edge_node", "classify", str(data / "espeak"), "--model", str(model),
               "--json")
    results = [json.loads(line) for line in done.stdout.splitlines()]
    commands = [r for r in results if r["file"].split("/")[-2] in ("lights", "music")]
    right = sum(r["label"] == r["file"].split("/")[-2] for r in commands)
    assert len(commands) > 20 and right / len(commands) >= 0.7


def test_breakdown_shows_each_word_per_voice_of_an_engine(trained):
    data, out = trained
    done = run("-m", "training.cli", "breakdown", "--model",
               str(out / "final" / "model_int8.tflite"), "--data", str(data), "--engine", "flite")
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows[0] == "| base | lights | music | all |"
    # flite's voices (kal, slt, awb...) each get a row; the last row covers all 8 voices' clips.
    assert all(r.split(" ")[1] in ("kal", "kal16", "awb", "rms", "slt", "all") for r in rows[1:])
    assert rows[-1].startswith("| all (n=16) |")
    assert "Most frequent confusions" in done.stdout


def test_personalisation_bench_tunes_a_model_per_voice_and_scores_it_on_all(trained, tmp_path):
    """bench.personalisation: per new voice, `finetune` on a few of its recordings, the base
    and the tuned int8 model scored on the rest and on the other voices' held-back clips."""
    data, out = trained
    done = run("-m", "bench.personalisation", "--base", str(out / "final"), "--data", str(data),
               "--voices", "espeak=2", "--takes", "6", "--unknown", "6", "--shots", "3",
               "--epochs", "2", "--seed", "77", "--stream-minutes", "0.5", "--work",
               str(tmp_path))
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 2 and len({r["voice"] for r in rows}) == 2
    for row in rows:
        # 2 commands x (6 - 3) held back, and 6 - 3 other words
        assert row["held_back"] == 9
        for key in ("base", "tuned", "base_others", "tuned_others"):
            assert 0.0 <= row[key]["command_accuracy"] <= 1.0
            assert 0.0 <= row[key]["unknown_as_command"] <= 1.0
        tuned = tmp_path / "tuned" / row["voice"].replace(":", "-") / "model_int8.tflite"
        assert read_manifest(tuned).version.endswith("+personal")
        # each voice's own recording, by that voice alone, streamed by both models
        events = json.loads((tmp_path / "streams" / (row["voice"].split(":")[1] + ".json"))
                            .read_text())["events"]
        assert {e["voice"] for e in events} == {row["voice"].split(":")[1]}
        said = sum(e["label"] in ("lights", "music") for e in events)
        for model in ("base", "tuned"):
            sweep = row["stream"][model]
            assert list(sweep) == ["0.5", "0.6", "0.7", "0.8", "0.9", "0.95"]
            assert {s["commands"] for s in sweep.values()} == {said} and said > 0
            assert all(0 <= s["detected"] <= said and s["per_hour"] >= 0 for s in sweep.values())
    # the base model is one model: its score on voice A's clips is the same in both rows
    assert rows[0]["base"] == rows[1]["base_others"] and rows[1]["base"] == rows[0]["base_others"]
    assert "| **mean of 2** |" in done.stdout and "| **all 2** |" in done.stdout
    assert "personalised recall at that rate" in done.stdout


def test_an_installed_model_is_personalised_from_recordings_alone(trained, tmp_path):
    """`--install` puts the Keras weights beside the model; `finetune --base MODEL.tflite` with
    no training data synthesises a small replay set of the base's engines and tunes."""
    from training.models.finetune import BaseModel
    from training.models.install import install_model

    data, out = trained
    installed = tmp_path / "models" / "toy.tflite"
    install_model(out / "final" / "model_int8.tflite", installed)
    assert BaseModel.installed(installed).keras.read_bytes() == (
        out / "final" / "model.keras").read_bytes()
    manifest = json.loads(manifest_path(installed).read_text())  # as if calibrated
    manifest_path(installed).write_text(json.dumps({**manifest, "detector": {"threshold": 0.65}}))
    run("-m", "training.cli", "synth", "--out", str(tmp_path / "user"), "--words", WORDS,
        "--voices", "espeak=1", "--takes", "6", "--unknown-per-voice", "6", "--silence", "0",
        "--seed", "99")
    tuned = tmp_path / "tuned"
    done = run("-m", "training.cli", "finetune", "--base", str(installed), "--user",
               str(tmp_path / "user" / "espeak"), "--out", str(tuned), "--shots", "3",
               "--epochs", "1", "--install", str(tmp_path / "models" / "mine.tflite"))
    assert set(json.loads(done.stdout.splitlines()[-1])) == {"base", "personalised"}
    replay = load_synthetic(tuned / "replay", WORDS.split(","))
    assert {c.engine for c in replay} == {"espeak", "flite", "festival", "noise"}
    assert {c.label for c in replay} == {"lights", "music", "_unknown_", "_silence_"}
    mine = BaseModel.installed(tmp_path / "models" / "mine.tflite")
    assert read_manifest(mine.tflite).version.endswith("+personal")
    assert read_manifest(mine.tflite).extra["engines"] == read_manifest(installed).extra["engines"]
    # a user has no held-out people to calibrate on: the base's threshold comes along
    assert read_manifest(mine.tflite).threshold == 0.65
    base_name = f"{manifest['name']} {manifest['version']}"
    assert read_manifest(mine.tflite).extra["calibration"] == {"inherited_from": base_name}


def test_same_command_and_seed_reproduce_the_result(trained, tmp_path):
    data, out = trained
    again = tmp_path / "again"
    run("-m", "training.cli", "train", *TRAIN_ARGS, "--data", str(data), "--out", str(again))
    first = json.loads((out / "report.json").read_text())["final"]["models"]
    second = json.loads((again / "report.json").read_text())["final"]["models"]
    for key in first:
        assert abs(first[key]["accuracy"] - second[key]["accuracy"]) <= 0.05, key
    # the same rows, bit for bit: what is left to differ is TensorFlow's own arithmetic
    rows = [json.loads((run_dir / "final" / "result.json").read_text())["provenance"]
            for run_dir in (out, again)]
    assert rows[0]["train_rows"] == rows[1]["train_rows"]
    assert rows[0]["test_rows"] == rows[1]["test_rows"]


def test_the_default_recipe_runs_end_to_end_with_mining_and_hard_negatives(tmp_path):
    """`kws-train default` in miniature: synth, test recording, mining recording and windows,
    recorded people (FLAC clips of ../shared/speech_commands) and real talk and noise
    (../shared/real_speech), a first model, its hard negatives, the final model, streaming
    evaluation on synthetic voices, held-out people and held-out talk, install; the installed
    model classifies a recorded clip in the node runtime."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed (pip install 'kws-edge-node[train]')")
    people = mini_speech_commands(tmp_path / "speech_commands", per_word=10)
    real = mini_real_speech(tmp_path / "real_speech")
    work, installed = tmp_path / "work", tmp_path / "installed" / "model.tflite"
    recipe = tmp_path / "mini.yaml"  # a user's recipe: what it leaves out is the shipped one's
    recipe.write_text(yaml.safe_dump({
        "synthesis": {"voices": {"espeak": 3, "flite": 2, "festival": 1, "festival-accent": 2},
                      "silence": 30},
        "people": {"speech_commands": str(people), "real_speech": str(real),
                   "talk_windows": 60, "noise_windows": 20},
        "mining": {"minutes": 1, "hard_negatives": True},
        "streams": {"tts_minutes": 0.5, "unseen_minutes": 0.3, "people_minutes": 1},
        "isolation": {"recordings": 1, "validation_recordings": 1, "minutes": 1.5,
                      "epochs": 2},
        "evaluation": {"leave_one_engine_out": False}}))
    run("-m", "training.cli", "default", "--recipe", str(recipe), "--set", "train.epochs=3",
        "--work", str(work), "--install", str(installed))
    saved = load_recipe(installed.with_suffix(".recipe.yaml"))  # traced beside the model
    assert saved == with_overrides(load_recipe(recipe), {"train.epochs": 3})
    assert saved.train.epochs == 3 and saved.synthesis.silence == 30
    assert saved.copies == Recipe().copies
    manifest = read_manifest(installed)
    assert "human" in manifest.extra["engines"]
    # the isolation check it was calibrated with is installed beside it
    check = read_manifest(installed.with_name("isolation.tflite"))
    assert manifest.extra["calibration"]["isolation"]["sha256"] == check.sha256
    assert any(line.startswith("Speech Commands") for line in manifest.extra["attribution"])
    assert any("LibriSpeech" in line for line in manifest.extra["attribution"])
    clip = sorted((people / "go").glob("*.flac"))[0]
    done = run("-c", "import sys; from training.data.audio_files import read_audio; "
               "from edge_node.model import Model; m = Model(sys.argv[1]); "
               "p = m.predict_waveform(read_audio(sys.argv[2])); "
               "print(len(p), abs(float(p.sum()) - 1) < 0.01)", str(installed), str(clip))
    assert done.stdout.split() == [str(len(manifest.labels)), "True"]
    mined = (work / "mined" / "clips.csv").read_text().splitlines()
    assert len(mined) > 100 and json.loads((work / "mined" / "dataset.json").read_text())[
        "kind"] == "stream-windows"
    assert (work / "hard" / "clips.csv").is_file() and (work / "first" / "final").is_dir()
    assert len((work / "noise" / "clips.csv").read_text().splitlines()) == 1 + 20
    report = json.loads((work / "run" / "report.json").read_text())
    streams = {s["recording"]: s for s in report["streams"]}
    assert streams["people.wav"]["commands"] > 0 and streams["people.wav"]["engines"] == [
        "human", "talk"]
    assert streams["talk.wav"]["commands"] == 0
    assert streams["talk.wav"]["false_activations_per_hour"] is not None
    held_out_voices, *unseen = [s for s in report["streams"]
                                if s["recording"] not in ("people.wav", "talk.wav")]
    assert held_out_voices["recording"] == "stream.wav" and held_out_voices["commands"] > 0
    assert held_out_voices["engines"] == ["espeak", "flite", "festival"]
    assert held_out_voices["unseen_engines"] == []
    if ENGINES["piper"].available():  # piper, which this recipe does not train on, speaks it
        assert [(s["recording"], s["engines"], s["unseen_engines"]) for s in unseen] == [
            ("stream-piper.wav", ["piper"], ["piper"])]
        assert unseen[0]["commands"] > 0
        assert "piper: an engine never trained on" in (work / "run" / "report.md").read_text()
    assert manifest.version == Recipe().version
    assert read_manifest(installed).features.profile == "concat"


@pytest.fixture(scope="module")
def seeds_run(trained, tmp_path_factory):
    """`kws-train train --seeds 1,2` holding out espeak and flite, against a baseline file."""
    data, _ = trained
    work = tmp_path_factory.mktemp("seeds")
    out = work / "seeds"
    baseline = work / "baseline.json"  # an earlier run: seeds 2 and 3, espeak only
    baseline.write_text(json.dumps({"seeds": [2, 3], "loeo": {"espeak": {
        "command_accuracy": [0.0, 0.5], "unknown_false_accept": [0.0, 0.0]}}}))
    recording = work / "espeak.wav"  # spoken by espeak alone: streams the espeak-held-out models
    run("-m", "training.cli", "stream", "--out", str(recording), "--duration", "40", "--words",
        WORDS, "--engines", "espeak", "--voices-per-engine", "3", "--seed", "7")
    done = run("-m", "training.cli", "train", "--words", WORDS, "--data", str(data), "--out",
               str(out), "--seeds", "1,2", "--loeo-epochs", "2", "--copies", "1",
               "--batch-size", "32", "--holdout", "espeak,flite", "--against", str(baseline),
               "--stream", str(recording), "--stream-rate", "30")
    return out, done


def test_leave_one_engine_out_over_seeds_reports_each_seed(seeds_run):
    out, done = seeds_run
    result = json.loads((out / "seeds.json").read_text())
    assert result["seeds"] == [1, 2]
    assert set(result["loeo"]) == {"espeak", "flite"}
    for per_seed in result["loeo"].values():
        assert len(per_seed["command_accuracy"]) == 2
        assert all(0.0 <= a <= 1.0 for a in per_seed["command_accuracy"])
    assert "| espeak |" in done.stdout and (out / "seeds.md").read_text() in done.stdout + "\n"
    assert not (out / "final").exists()
    # Compared on the one engine and seed both runs have: seed 2 of espeak, against 0%.
    espeak_seed_2 = 100 * result["loeo"]["espeak"]["command_accuracy"][1]
    assert f"| espeak | 2 | 0.0% | {espeak_seed_2:.1f}% | {espeak_seed_2:+.1f}" in done.stdout
    assert "| flite | " not in done.stdout.split("baseline mean")[1]
    # Each model's probabilities are kept, and they give the accuracy the table reports.
    saved = np.load(out / "probs" / "espeak-seed2.npz")
    labels = list(saved["labels"])
    commands = [i for i, label in enumerate(labels) if Manifest.is_command(label)]
    said = np.isin(saved["y"], commands)
    accuracy = np.mean(saved["probs"][said].argmax(axis=1) == saved["y"][said])
    assert accuracy == pytest.approx(result["loeo"]["espeak"]["command_accuracy"][1])
    assert saved["probs"].shape == (len(saved["y"]), len(labels)) == (len(saved["voices"]),
                                                                       len(labels))
    assert all(voice.startswith("espeak") for voice in saved["voices"])
    assert all("/espeak/" in path for path in saved["paths"])
    # ... and the two figures at equal false accepts: the table shows the threshold-swept one
    fair, _ = accuracy_at_false_accepts(saved["probs"], saved["y"], labels)
    assert fair == pytest.approx(result["loeo"]["espeak"]["command_accuracy_at_5pct"][1])
    detected, _ = detection_at_false_accepts(saved["probs"], saved["y"], labels)
    assert detected == pytest.approx(result["loeo"]["espeak"]["command_detection_at_5pct"][1])
    assert "commands detected at <= 5% `_unknown_` as command" in (out / "seeds.md").read_text()


def test_seeds_run_streams_each_model_on_the_recording_of_the_engine_it_never_heard(seeds_run):
    out, done = seeds_run
    loeo = json.loads((out / "seeds.json").read_text())["loeo"]
    assert "stream_recall" not in loeo["flite"]  # no flite-only recording
    espeak = loeo["espeak"]
    assert espeak["stream_rate"] == 30 and len(espeak["streams"]) == len(espeak["stream_recall"])
    for seed, streamed, recall in zip((1, 2), espeak["streams"], espeak["stream_recall"],
                                      strict=True):
        sweep = streamed["espeak.wav"]["sweep"]
        assert [row["threshold"] for row in sweep] == list(STREAM_THRESHOLDS)
        rows = [(row["threshold"], row) for row in sweep]
        assert recall == recall_at(rows, 30.0) == streamed["espeak.wav"]["recall_at_rate"]
        model = out / "models" / f"espeak-seed{seed}.tflite"
        manifest = read_manifest(model)
        assert manifest.extra["quantization"] == "int8"
        assert "espeak" not in manifest.extra["engines"] and "flite" in manifest.extra["engines"]
    table = (out / "seeds.md").read_text()
    assert "streaming recall at 30 false activations per hour" in table
    assert table.splitlines()[2].count("|") == table.splitlines()[0].count("|")


def test_reference_recogniser_scores_each_engine_beside_a_seeds_run(trained, seeds_run):
    """PocketSphinx, restricted to the two words, on every scored command clip; then our
    held-out models' saved probabilities on the same clips."""
    data, _ = trained
    out, _ = seeds_run
    done = run("-m", "bench.reference_asr", "--data", str(data), "--seeds-run", str(out),
               "--no-write")
    reference, confusions, ours = done.stdout.split("\n\n")
    rows = {}
    for line in reference.splitlines()[2:]:
        cells = line.strip("| ").split(" | ")
        engine, clips = cells[0].rstrip(")").split(" (n=")
        rows[engine] = (int(clips), float(cells[-1].rstrip("%")))
    assert set(rows) == {"espeak", "flite", "festival", "all"}
    assert [rows[e][0] for e in ("espeak", "flite", "festival", "all")] == [24, 16, 8, 48]
    # "lights" or "music" only: clean synthetic words a real-speech model tells apart.
    assert all(accuracy >= 75.0 for _, accuracy in rows.values())
    assert confusions.startswith("Most frequent confusions")
    # Our all-labels figure is the seeds run's own LOEO command accuracy, clip for clip.
    loeo = json.loads((out / "seeds.json").read_text())["loeo"]
    for line in ours.splitlines()[2:]:
        cells = line.strip("| ").split(" | ")
        assert f"{100 * np.mean(loeo[cells[0]]['command_accuracy']):.1f}%" == cells[4]
    assert [line.split(" | ")[0].strip("| ") for line in ours.splitlines()[2:]] == [
        "espeak", "flite"]


def test_reference_comparison_refuses_probabilities_saved_without_clip_paths(tmp_path):
    from training.experiments.seeds import compare_with_reference

    (tmp_path / "probs").mkdir()
    np.savez(tmp_path / "probs" / "espeak-seed1.npz", probs=np.eye(2), y=np.arange(2),
             labels=np.array(["lights", "_unknown_"]), voices=np.array(["espeak:a", "espeak:b"]))
    with pytest.raises(ValueError, match="saved without clip paths"):
        compare_with_reference(tmp_path, {})


def test_seed_comparison_is_seed_by_seed_and_refuses_other_files(tmp_path):
    from training.experiments.seeds import format_comparison, load

    mine = {"espeak": {"command_accuracy": [0.70, 0.60, 0.80]}}
    base = ([1, 2, 3], {"espeak": {"command_accuracy": [0.73, 0.64, 0.73]}})
    table = format_comparison(mine, [1, 2, 3], base)
    assert "| espeak | 1, 2, 3 | 70.0% | 70.0% | -3.0 / -4.0 / +7.0 (mean +0.0) | 1 of 3 |" in table
    assert "at <= 5%" not in table  # neither run has that figure
    mine["espeak"]["command_detection_at_5pct"] = [0.80, 0.75, 0.85]
    base[1]["espeak"]["command_detection_at_5pct"] = [0.78, 0.70, 0.80]
    fair = format_comparison(mine, [1, 2, 3], base)
    assert ("| espeak (commands detected at <= 5% `_unknown_` as command, threshold swept) | "
            "1, 2, 3 | 76.0% | 80.0% | +2.0 / +5.0 / +5.0 (mean +4.0) | 3 of 3 |") in fair
    # a run from before the measure gets it from the probabilities it kept
    old = tmp_path / "old"
    (old / "probs").mkdir(parents=True)
    (old / "seeds.json").write_text(json.dumps(
        {"seeds": [1], "loeo": {"espeak": {"command_accuracy": [1.0]}}}))
    np.savez(old / "probs" / "espeak-seed1.npz", probs=np.array(
        [[0.9, 0.1], [0.3, 0.7], [0.2, 0.8]]), y=np.array([0, 1, 1]),
        labels=np.array(["lights", "_unknown_"]))
    assert load(old)[1]["espeak"]["command_detection_at_5pct"] == [1.0]
    assert "shares no" in format_comparison({"espeak": {"command_accuracy": [0.7]}}, [4], base)
    (tmp_path / "seeds.json").write_text(json.dumps({"seeds": [1]}))
    with pytest.raises(ValueError, match="not a `kws-train train --seeds` result"):
        load(tmp_path)


def test_holding_out_an_engine_the_data_lacks_fails_before_any_work(tmp_path):
    from training.data.dataset import Clip
    from training.experiments.pipeline import PipelineSettings
    from training.experiments.seeds import loeo_over_seeds

    clips = [Clip(tmp_path / f"{e}.wav", "lights", e, f"{e}-s1-0000") for e in ("espeak", "flite")]
    with pytest.raises(ValueError, match=r"no such engine in the data: \['festvial'\]"):
        # the paths do not exist: featurising them would fail differently
        loeo_over_seeds(clips, [], PipelineSettings(out=tmp_path, commands=("lights",)), [1],
                        holdout=("espeak", "festvial"))


def test_console_script_records_benchmarks_from_any_directory(trained, tmp_path):
    """`kws-train ... --benchmarks` must not depend on the source checkout being the cwd."""
    _, out = trained
    script = os.path.join(os.path.dirname(sys.executable), "kws-train")
    if not os.path.exists(script):
        pytest.skip("kws-train console script not installed")
    benchmarks = tmp_path / "BENCHMARKS.md"
    done = subprocess.run([script, "report", str(out), "--benchmarks", str(benchmarks)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    text = benchmarks.read_text()
    assert "<!-- training-" in text and "Final model on held-out voices" in text
    assert "| int8/ai-edge-litert |" in text


def test_benchmark_summary_names_who_speaks_each_streaming_recording():
    model = {"accuracy": 0.9, "command_accuracy": 0.95, "unknown_false_accept": 0.2,
             "bytes": 1000}
    stream = {"duration_s": 1800.0, "commands": 155, "detected": 135, "recall": 135 / 155,
              "false_activations_per_hour": 6.0}
    legacy = benchmark_summary({"final": {"models": {"int8/ai-edge-litert": model}},
                                "streaming": stream}, "kws-train default")
    assert "Streaming (30 min recording, voices never trained on, node detector): recall " \
           "87.1% (135/155), 6.0 false activations per hour." in legacy
    both = benchmark_summary({"final": {"models": {"int8/ai-edge-litert": model}}, "streams": [
        {**stream, "recording": "stream.wav", "engines": ["espeak", "flite"],
         "unseen_engines": []},
        {**stream, "duration_s": 900.0, "recording": "stream-piper.wav", "engines": ["piper"],
         "unseen_engines": ["piper"]}]}, "kws-train default")
    assert "(30 min recording, `stream.wav`, espeak, flite voices never trained on," in both
    assert "(15 min recording, `stream-piper.wav`, piper: an engine never trained on," in both
    unknown = benchmark_summary({"final": {"models": {"int8/ai-edge-litert": model}}, "streams": [
        {**stream, "recording": "a.wav", "engines": ["piper"], "unseen_engines": None}]}, "x")
    assert "(30 min recording, `a.wav`, piper voices, node detector)" in unknown
    said = benchmark_summary({"final": {"models": {"int8/ai-edge-litert": model}}, "streams": [
        {**stream, "false_activations": 3, "false_activations_during": {
            "near-miss word": 2, "other word": 0, "sentence": 0, "command": 0, "no speech": 1}}]},
        "x")
    assert "6.0 false activations per hour (2 during near-miss words, 1 on no speech)." in said


def test_the_isolation_check_trains_on_recorded_people_and_talk_and_runs_in_the_node(
        tmp_path):
    """`kws-train isolation` in miniature: recordings of FLAC clips of ../shared/speech_commands
    between excerpts of ../shared/real_speech talk over its noise, examples, training, a
    threshold chosen on other recordings, int8 export; the node's check loads it and scores a
    window."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed (pip install 'kws-edge-node[train]')")
    people = mini_speech_commands(tmp_path / "speech_commands", per_word=10)
    real = mini_real_speech(tmp_path / "real_speech")
    out = tmp_path / "isolation.tflite"
    run("-m", "training.cli", "isolation", "--speech-commands", str(people), "--real-speech",
        str(real), "--recordings", "2", "--validation-recordings", "1", "--minutes", "1.5",
        "--epochs", "2", "--out", str(out), "--work", str(tmp_path / "recordings"))
    manifest = read_manifest(out)
    assert manifest.labels == ("other", "alone") and manifest.threshold is not None
    assert manifest.extra["isolation"] == {"before_ms": 1500, "after_ms": 500}
    assert manifest.extra["quantization"] == "int8"
    validation = manifest.extra["isolation_training"]["validation"]
    assert validation["alone"] > 0 and validation["other"] > 0
    assert any(line.startswith("Speech Commands") for line in manifest.extra["attribution"])
    done = run("-c", "import sys, numpy as np; from edge_node.isolation import load_isolation; "
               "c = load_isolation(__import__('pathlib').Path(sys.argv[1])); "
               "s = c.score(np.zeros(c.clip_samples, np.float32)); print(0.0 <= s <= 1.0)",
               str(out))
    assert done.stdout.split() == ["True"]
