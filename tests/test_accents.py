"""Accented festival voices: respelling, rendering and train-only clips."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from training.data.dataset import load_synthetic
from training.data.dataset_synth import read_clips_csv, synthesize_dataset
from training.data.vocab import COMMANDS, SENTENCES, UNKNOWN_WORDS
from training.tts.accents import ACCENTS, english_phonemes, respell
from training.tts.engines import ENGINES, make_voices
from training.tts.synthesis import SAMPLE_RATE, ClipSpec, render_clips

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing"),
]


def _need_accents() -> None:
    if not ENGINES["festival-accent"].available():
        pytest.skip("non-English festival voices not installed")


def test_every_training_word_has_english_phonemes() -> None:
    words = {w for s in SENTENCES for w in s.split()} | set(UNKNOWN_WORDS) | set(COMMANDS)
    for word in sorted(words):
        assert english_phonemes(word), word


@pytest.mark.parametrize(("lang", "expected"), [
    ("it", "gou daun ap stap ies left rait nou"),
    ("fi", "gou daun ap staap jes left rait nou"),
    ("cs", "gou daun ap stáp jes left rait nou"),
    ("ca", "gou daun ap stap ies left rait nou"),
    ("ru", "гоу даун ап стап йэс лэфт райт ноу"),
])  # fmt: skip
def test_commands_respelled_in_each_orthography(lang: str, expected: str) -> None:
    assert respell(" ".join(COMMANDS), lang) == expected


def test_respelling_keeps_punctuation_and_applies_spelling_rules() -> None:
    assert respell("Kitchen? Chess, shop!", "it") == "chician? ces, sciap!"
    assert respell("Kitchen? Chess, shop!", "cs") == "kičan? čes, šáp!"
    assert respell("Kitchen? Chess, shop!", "ca") == "quitxan? txes, xap!"


@pytest.mark.parametrize(("dialect", "expected"), [
    ("en-gb-x-rp", "gheu daun ap stop ies left rait neu"),
    ("en-gb-x-gbcwmd", "gau deun up stop ies left roit nau"),
    ("en-gb-scotland", "go daun ap stop ies left rait no"),
])  # fmt: skip
def test_commands_respelled_as_spoken_in_an_english_dialect(dialect: str, expected: str) -> None:
    assert respell(" ".join(COMMANDS), "it", dialect) == expected


def test_sentences_respell_in_every_english_dialect() -> None:
    from training.tts.engines import DialectAccentEngine

    for dialect in DialectAccentEngine.DIALECTS:
        for text in SENTENCES:
            assert respell(text, "cs", dialect), (dialect, text)


def test_dialect_voices_draw_dialects_and_are_festival_voices() -> None:
    voices = make_voices("festival-dialect", 40, seed=1)
    assert {v.engine for v in voices} == {"festival"}
    assert all(v.voice_id.startswith("festival-dialect-s1-") for v in voices)
    assert len({v.synth["dialect"] for v in voices}) >= 6
    assert ENGINES["festival-dialect"].train_only


def test_every_language_spells_every_phoneme() -> None:
    from training.tts.accents import _PHONEMES

    for lang, accent in ACCENTS.items():
        missing = [p for p in _PHONEMES if p not in accent.spell]
        assert not missing, (lang, missing)


def test_accented_voices_are_festival_voices_and_render_short_words() -> None:
    _need_accents()
    voices = make_voices("festival-accent", 12, seed=3)
    assert {v.engine for v in voices} == {"festival"}
    assert all(v.voice_id.startswith("festival-accent-s3-") for v in voices)
    czech = next(v for v in voices if v.synth["lang"] == "cs")
    # Czech festival reads ISO-8859-2: UTF-8 bytes would be spelled out letter by letter (~2 s).
    clip = render_clips(czech, [ClipSpec("stop", "word", (3, 0))])[0]
    assert 0.15 <= len(clip) / SAMPLE_RATE <= 1.0


def test_accented_clips_train_but_are_never_scored(tmp_path: Path) -> None:
    _need_accents()
    out = synthesize_dataset(
        tmp_path / "ds", seed=5, clips_per_word_per_engine={"festival-accent": 2, "flite": 1},
        unknown_clips_per_engine=2, silence_clips=2, engines=("festival-accent", "flite"),
        workers=1, progress=False,
    )  # fmt: skip
    rows = read_clips_csv(out / "clips.csv")
    accented = [r for r in rows if r["voice"].startswith("festival-accent")]
    assert accented and all(r["engine"] == "festival" and r["scored"] == "0" for r in accented)
    clips = load_synthetic(out)
    assert {c.scored for c in clips if c.voice.startswith("festival:festival-accent")} == {False}
    assert {c.scored for c in clips if c.engine == "flite"} == {True}
