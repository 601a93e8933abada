"""Tests for offline speech synthesis, noise, dataset and stream generation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from training.data.dataset_synth import plan_voice_jobs, read_clips_csv, synthesize_dataset
from training.data.noise import LEVELS_DBFS, NOISE_KINDS, make_noise, rms_dbfs
from training.data.stream_synth import VOICE_SEED_OFFSET, _plan_items, make_stream_recording
from training.data.vocab import (
    COMMANDS,
    NEAR_MISSES,
    SENTENCES,
    SILENCE_LABEL,
    UNKNOWN_LABEL,
    contains_phrase,
    near_misses,
    unknown_material,
)
from training.tts.engines import ENGINES, make_voices, scratch_dir
from training.tts.synthesis import MAX_WORD_S, SAMPLE_RATE, ClipSpec, render_clips, trim_silence

pytestmark = pytest.mark.integration

ENGINE_NAMES = tuple(ENGINES)


def _need(engine: str) -> None:
    if not ENGINES[engine].available():
        pytest.skip(f"{engine} not installed")


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_engine_renders_every_command(engine: str) -> None:
    _need(engine)
    for voice in make_voices(engine, 2, seed=11):
        specs = [ClipSpec(w, "word", (11, i)) for i, w in enumerate(COMMANDS)]
        clips = render_clips(voice, specs)
        assert len(clips) == len(COMMANDS)
        for word, clip in zip(COMMANDS, clips, strict=True):
            assert clip.dtype == np.float32 and np.all(np.isfinite(clip))
            dur = len(clip) / SAMPLE_RATE
            assert 0.15 <= dur <= MAX_WORD_S, (voice.voice_id, word, dur)
            assert np.max(np.abs(clip)) > 0.1
            assert rms_dbfs(clip) > -40.0, (voice.voice_id, word)
        assert len({c.tobytes() for c in clips}) == len(clips)


def test_espeak_generated_variant_is_applied(tmp_path: Path) -> None:
    _need("espeak")
    voice = next(v for v in make_voices("espeak", 20, seed=2) if v.synth["variant_text"])
    fallback = replace(
        voice, synth={**voice.synth, "variant": "no-such-variant", "variant_text": ""}
    )
    eng = ENGINES["espeak"]
    a = eng.render_raw(voice, ["stop"], scratch_dir(tmp_path))[0][0]
    b = eng.render_raw(fallback, ["stop"], scratch_dir(tmp_path))[0][0]
    assert len(a) != len(b) or not np.array_equal(a, b)


def test_espeak_survives_hundreds_of_voices_per_process(tmp_path: Path) -> None:
    """espeak-ng refuses to run once its voices dir lists > 349 files (seen in a 10k run)."""
    _need("espeak")
    eng = ENGINES["espeak"]
    for voice in make_voices("espeak", 400, seed=9):
        x, _ = eng.render_raw(voice, ["go"], scratch_dir(tmp_path))[0]
        assert np.max(np.abs(x)) > 0.01, voice.voice_id


def test_pico_voices_draw_both_speakers_and_pitch_levels() -> None:
    voices = make_voices("pico", 20, seed=1)
    assert {v.base for v in voices} == {"en-GB", "en-US"}
    assert all(70 <= v.synth["pitch"] <= 140 for v in voices)
    assert len({v.synth["pitch"] for v in voices}) > 10


def test_piper_returns_one_clip_per_text_in_order(tmp_path: Path) -> None:
    """piper names its files by a clock; repeated and long texts must still map back in order."""
    _need("piper")
    voice = make_voices("piper", 1, seed=3)[0]
    texts = ["go", "Have you seen my glasses? I think I left them here.", "go"]
    out = ENGINES["piper"].render_raw(voice, texts, scratch_dir(tmp_path))
    durations = [len(x) / sr for x, sr in out]
    assert len(out) == 3
    assert durations[1] > 2 * max(durations[0], durations[2]), durations


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_voices_are_stable_and_distinct(engine: str) -> None:
    voices = make_voices(engine, 6, seed=4)
    assert make_voices(engine, 1, seed=4, start=3)[0] == voices[3]
    assert len({v.voice_id for v in voices}) == 6
    assert len({json.dumps(v.to_json(), sort_keys=True) for v in voices}) == 6
    assert make_voices(engine, 1, seed=5)[0].to_json() != voices[0].to_json()


def test_trim_silence_keeps_only_the_sound() -> None:
    t = np.arange(int(0.3 * SAMPLE_RATE)) / SAMPLE_RATE
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    x = np.concatenate([np.zeros(8000), tone, np.zeros(8000)]).astype(np.float32)
    y = trim_silence(x, SAMPLE_RATE)
    assert 0.3 <= len(y) / SAMPLE_RATE <= 0.36


def test_vocabulary_is_consistent() -> None:
    assert not [s for s in SENTENCES if any(contains_phrase(s, c) for c in COMMANDS)]
    words, sentences = unknown_material(COMMANDS)
    assert not set(words) & (set(COMMANDS) | {"know", "write"})
    assert len(words) >= 100 and len(sentences) >= 30
    custom_words, _ = unknown_material(("lights", "music"))
    assert "music" not in custom_words and "stop" in custom_words


def test_near_misses_are_unknown_words_of_their_command() -> None:
    words, _ = unknown_material(COMMANDS)
    assert set(NEAR_MISSES) == set(COMMANDS)
    assert set(near_misses(COMMANDS)) <= set(words)
    assert near_misses(("lights", "music")) == ()


def _unknown_words_planned(share: float) -> list[str]:
    voices = make_voices("espeak", 3, 1)
    items = _plan_items(2000, 0, np.random.default_rng(7), voices, COMMANDS, 0.0, 0.0, 1, share)
    return [spec.text.strip("!?.").lower() for _, spec, _ in items]


def test_mining_can_favour_near_misses_and_share_zero_draws_as_before() -> None:
    close = set(near_misses(COMMANDS))
    plain, favoured = _unknown_words_planned(0.0), _unknown_words_planned(0.8)
    base_rate = len(close) / len(unknown_material(COMMANDS)[0])
    assert abs(np.mean([w in close for w in plain]) - base_rate) < 0.05
    assert np.mean([w in close for w in favoured]) > 0.8 + 0.2 * base_rate - 0.05
    # Share 0 makes exactly the draws of the uniform sampler (evaluation recordings unchanged).
    rng, words = np.random.default_rng(7), unknown_material(COMMANDS)[0]
    voices = make_voices("espeak", 3, 1)
    expected = []
    for _ in range(2000):
        rng.integers(len(voices)), rng.random()
        expected.append(words[int(rng.integers(len(words)))])
        rng.integers(8)  # pick_variant
    assert plain == expected


def test_near_miss_clips_are_added_to_the_same_voices_and_change_nothing_else() -> None:
    per_word, unknown = {"espeak": 4, "flite": 2}, {"espeak": 6, "flite": 3}
    before = plan_voice_jobs(COMMANDS, per_word, unknown, seed=5)
    after = plan_voice_jobs(COMMANDS, per_word, unknown, seed=5,
                            near_miss_clips={"espeak": 40, "flite": 0})
    close = set(near_misses(COMMANDS))
    added: list[str] = []
    for old, new in zip(before, after, strict=True):
        assert new.voice == old.voice
        n = len(old.specs)
        assert (new.specs[:n], new.labels[:n], new.paths[:n]) == (old.specs, old.labels, old.paths)
        added += [spec.text.strip("!?.").lower() for spec in new.specs[n:]]
        assert set(new.labels[n:]) <= {UNKNOWN_LABEL}
        assert len(set(new.paths)) == len(new.paths)
    assert len(added) == 40 and set(added) <= close
    assert len(set(added)) > 15  # spread over the near-misses of every command
    # each espeak voice says its share; custom keywords have no near-misses to add
    assert {len(j.specs) - len(COMMANDS) for j in after if j.voice.engine == "espeak"} == {11, 12}
    custom = plan_voice_jobs(("lights",), {"espeak": 2}, {"espeak": 2}, seed=5,
                             near_miss_clips={"espeak": 9})
    assert sum(len(j.specs) for j in custom) == 2 + 2


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_noise_kinds_length_and_level(kind: str) -> None:
    x = make_noise(kind, 1.5, np.random.default_rng(0))
    assert x.dtype == np.float32 and len(x) == int(1.5 * SAMPLE_RATE)
    y = make_noise(kind, 1.5, np.random.default_rng(0))
    assert np.array_equal(x, y)
    if kind == "digital_silence":
        assert not np.any(x)
        return
    lo, hi = LEVELS_DBFS[kind]
    assert lo - 0.5 <= rms_dbfs(x) <= hi + 0.5
    assert np.max(np.abs(x)) < 0.5
    assert not np.array_equal(x, make_noise(kind, 1.5, np.random.default_rng(1)))


def test_noise_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError):
        make_noise("thunder", 1.0, np.random.default_rng(0))


def _tiny(out: Path, workers: int, words: tuple[str, ...] = COMMANDS) -> Path:
    engines = tuple(e for e in ENGINE_NAMES if ENGINES[e].available())
    return synthesize_dataset(
        out, seed=7, words=words, clips_per_word_per_engine=2, unknown_clips_per_engine=3,
        silence_clips=4, workers=workers, engines=engines, progress=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny(tmp_path_factory.mktemp("ds") / "a", workers=2)


def test_dataset_layout_and_csv(tiny_dataset: Path) -> None:
    rows = read_clips_csv(tiny_dataset / "clips.csv")
    meta = json.loads((tiny_dataset / "dataset.json").read_text())
    assert meta["failures"] == [] and meta["n_clips"] == len(rows)
    engines = meta["engines"]
    assert len(rows) == len(engines) * (2 * len(COMMANDS) + 3) + 4
    for r in rows:
        path = tiny_dataset / r["path"]
        assert r["path"] == f"{r['engine']}/{r['label']}/{path.name}"
        sr, data = wavfile.read(path)
        assert sr == SAMPLE_RATE and data.dtype == np.int16 and data.ndim == 1
        assert path.name.startswith(r["voice"] + "_")
        if r["label"] in COMMANDS:
            assert len(data) <= MAX_WORD_S * SAMPLE_RATE
            assert r["text"].strip("!?.").lower() == r["label"]
        elif r["label"] == SILENCE_LABEL:
            assert r["engine"] == "noise" and len(data) == SAMPLE_RATE
        else:
            assert r["label"] == UNKNOWN_LABEL
            assert not any(contains_phrase(r["text"], c) for c in COMMANDS)
    for engine in engines:
        by_voice: dict[str, set[str]] = {}
        for r in rows:
            # voice ids start with the engine that drew them (accented voices are festival's)
            if r["voice"].rsplit("-s", 1)[0] == engine and r["label"] in COMMANDS:
                by_voice.setdefault(r["voice"], set()).add(r["label"])
        assert len(by_voice) == 2 and all(s == set(COMMANDS) for s in by_voice.values())


def test_dataset_is_deterministic(tiny_dataset: Path, tmp_path: Path) -> None:
    again = _tiny(tmp_path / "b", workers=1)
    assert (again / "clips.csv").read_bytes() == (tiny_dataset / "clips.csv").read_bytes()
    assert (again / "dataset.json").read_bytes() == (tiny_dataset / "dataset.json").read_bytes()
    for r in read_clips_csv(again / "clips.csv"):
        assert (again / r["path"]).read_bytes() == (tiny_dataset / r["path"]).read_bytes()


def test_dataset_renders_near_miss_clips_per_voice(tmp_path: Path) -> None:
    _need("espeak")
    out = synthesize_dataset(
        tmp_path / "n", seed=1, clips_per_word_per_engine=2, unknown_clips_per_engine=0,
        silence_clips=0, workers=1, engines=("espeak",), near_misses_per_voice=1.5,
        progress=False,
    )  # fmt: skip
    rows = read_clips_csv(out / "clips.csv")
    unknown = [r for r in rows if r["label"] == UNKNOWN_LABEL]
    assert len(unknown) == 3 and len(rows) == 2 * len(COMMANDS) + 3
    assert {r["text"].strip("!?.").lower() for r in unknown} <= set(near_misses(COMMANDS))
    assert {r["voice"] for r in unknown} == {r["voice"] for r in rows}
    assert json.loads((out / "dataset.json").read_text())["near_misses_per_voice"] == 1.5


def test_dataset_custom_keywords(tmp_path: Path) -> None:
    _need("espeak")
    out = synthesize_dataset(
        tmp_path / "c", seed=1, words=("lights", "music"), clips_per_word_per_engine=2,
        unknown_clips_per_engine=4, silence_clips=0, workers=1, engines=("espeak",),
        progress=False,
    )  # fmt: skip
    rows = read_clips_csv(out / "clips.csv")
    assert sorted({r["label"] for r in rows}) == [UNKNOWN_LABEL, "lights", "music"]
    unknown = [r["text"] for r in rows if r["label"] == UNKNOWN_LABEL]
    assert len(unknown) == 4
    assert not any(contains_phrase(t, w) for t in unknown for w in ("lights", "music"))


def test_dataset_refuses_non_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    with pytest.raises(FileExistsError):
        synthesize_dataset(tmp_path, seed=1, clips_per_word_per_engine=1, progress=False)


def test_stream_recording_events(tmp_path: Path) -> None:
    engines = tuple(e for e in ("espeak", "flite") if ENGINES[e].available())
    if not engines:
        pytest.skip("no fast engine installed")
    wav, js = tmp_path / "s.wav", tmp_path / "s.json"
    meta = make_stream_recording(wav, js, seed=3, duration_s=40.0, engines=engines,
                                 voices_per_engine=3)  # fmt: skip
    assert json.loads(js.read_text()) == meta
    sr, data = wavfile.read(wav)
    assert sr == SAMPLE_RATE and len(data) == 40 * SAMPLE_RATE
    x = data.astype(np.float64) / 32768.0
    events = meta["events"]
    assert len(events) >= 4
    assert all(e["voice"].split("-s")[1].startswith(str(3 + VOICE_SEED_OFFSET)) for e in events)
    prev_end = -10.0
    for e in events:
        assert 0.0 <= e["start_s"] < e["end_s"] <= 40.0
        assert e["start_s"] - prev_end >= meta["min_gap_s"] - 1e-6
        prev_end = e["end_s"]
        assert e["label"] in COMMANDS or e["label"] == UNKNOWN_LABEL
        seg = x[int(e["start_s"] * sr) : int(e["end_s"] * sr)]
        floor = e["noise_dbfs"] if e["noise_dbfs"] is not None else -80.0
        assert rms_dbfs(seg) > floor + 3.0, e


def test_stream_recording_refuses_an_engine_it_cannot_run(tmp_path: Path) -> None:
    wav, js = tmp_path / "s.wav", tmp_path / "s.json"
    with pytest.raises(RuntimeError, match="not available: \\['no-such-engine'\\]"):
        make_stream_recording(wav, js, seed=3, duration_s=10.0, engines=("no-such-engine",))
    assert not wav.exists() and not js.exists()


def test_piper_stream_recording_is_spoken_by_piper_voices(tmp_path: Path) -> None:
    _need("piper")
    wav, js = tmp_path / "p.wav", tmp_path / "p.json"
    meta = make_stream_recording(wav, js, seed=2, duration_s=20.0, engines=("piper",),
                                 voices_per_engine=2)  # fmt: skip
    assert meta["engines"] == ["piper"] and meta["events"]
    assert {e["engine"] for e in meta["events"]} == {"piper"}
