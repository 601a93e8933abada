"""English words respelled for non-English festival voices: accented speakers for training.

The English festival voices Debian packages are three speakers (kal, ked, slt); flite adds
four more. Debian also packages Italian, Finnish, Czech, Catalan and Russian festival voices,
each a different speaker recorded and synthesised differently. They cannot read English, but
they can read English *respelled in their own orthography*: espeak-ng's English phonemes for
the text, mapped phoneme by phoneme to that language's spelling. The result is English spoken
with an accent, the way many users of a voice node speak it.
"""

from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass

# espeak-ng IPA (en-us) symbols, longest first so diphthongs and affricates win.
_PHONEMES: tuple[str, ...] = (
    "aɪə", "aɪɚ", "aʊɚ", "tʃ", "dʒ", "aɪ", "aʊ", "oʊ", "eɪ", "ɔɪ", "ɪɹ", "ɛɹ", "ʊɹ", "ɔːɹ",
    "ɑːɹ", "iː", "uː", "ɑː", "ɔː", "ɜː", "ɚ", "ə", "ɪ", "i", "ɛ", "æ", "ɑ", "ɔ", "ʊ", "u", "ʌ",
    "ɐ", "ᵻ", "e", "o", "a", "p", "b", "t", "d", "k", "ɡ", "f", "v", "θ", "ð", "s", "z", "ʃ",
    "ʒ", "h", "m", "n", "ŋ", "l", "ɹ", "j", "w", "ɾ", "ʔ", "x", "r",
)  # fmt: skip
DEFAULT_DIALECT = "en-us"
"""The English the accented voices read unless a voice draws another (`festival-dialect`)."""
_IGNORED = set("ˈˌ‍̩̪")  # stress, zero-width joiner, syllabic and dental marks
# Phonemes of espeak-ng's British, Scottish and Caribbean English that the en-us tables lack,
# as the nearest en-us phonemes: RP "go" is [ɡəʊ], spelled like [ɡɛʊ], not like "gow".
_DIALECT_EQUIVALENTS: dict[str, tuple[str, ...]] = {
    "əʊ": ("ɛ", "ʊ"), "ɒ": ("ɔ",), "ɜ": ("ɜː",), "ʉ": ("u",), "ʍ": ("w",), ":": (),
}  # fmt: skip
_TOKENS = tuple(sorted((*_PHONEMES, *_DIALECT_EQUIVALENTS), key=len, reverse=True))

_VOWELS_EN = {
    "ɚ": "er", "ə": "a", "ɪ": "i", "i": "i", "iː": "i", "ɛ": "e", "æ": "e", "ɑ": "a", "ɑː": "a",
    "ɔ": "o", "ɔː": "o", "ʊ": "u", "u": "u", "uː": "u", "ʌ": "a", "ɐ": "a", "ᵻ": "i", "e": "e",
    "o": "o", "a": "a", "ɜː": "er", "eɪ": "ei", "aɪ": "ai", "aʊ": "au", "oʊ": "ou", "ɔɪ": "oi",
    "ɪɹ": "ir", "ɛɹ": "er", "ʊɹ": "ur", "ɔːɹ": "or", "ɑːɹ": "ar", "aɪə": "aie", "aɪɚ": "aier",
    "aʊɚ": "auer",
}  # fmt: skip
_CONSONANTS = {
    "p": "p", "b": "b", "t": "t", "d": "d", "k": "k", "ɡ": "g", "f": "f", "v": "v", "θ": "t",
    "ð": "d", "s": "s", "z": "z", "ʃ": "sh", "ʒ": "zh", "h": "h", "m": "m", "n": "n", "ŋ": "ng",
    "l": "l", "ɹ": "r", "r": "r", "j": "j", "w": "v", "ɾ": "t", "ʔ": "", "x": "k",
    "tʃ": "ch", "dʒ": "dzh",
}  # fmt: skip


@dataclass(frozen=True)
class Accent:
    """How one language spells English phonemes, and how its festival voices read text."""

    lang: str
    spell: dict[str, str]  # phoneme -> spelling (context rules are in `respell`)
    encoding: str = "utf-8"  # what the language's festival front end expects


def _table(**overrides: str) -> dict[str, str]:
    return {**_VOWELS_EN, **_CONSONANTS, **overrides}


ACCENTS: dict[str, Accent] = {
    # Italian: c/ch, g/gh and ci/gi/sci before front vowels are handled in `respell`.
    "it": Accent("it", _table(j="i", w="u", h="", z="s", ʃ="sc", ʒ="g", tʃ="c", dʒ="g",
                              ŋ="n", k="c", ɡ="g", ɚ="er")),  # fmt: skip
    "fi": Accent("fi", _table(z="s", ʃ="sh", ʒ="sh", tʃ="ts", dʒ="dz", w="v", iː="ii", uː="uu",
                              ɑː="aa", ɔː="oo", æ="ä", ʌ="a", ɐ="ä", eɪ="ei", ŋ="ng")),
    "cs": Accent("cs", _table(ʃ="š", ʒ="ž", tʃ="č", dʒ="dž", w="u", iː="í", uː="ú", ɑː="á",
                              ɔː="ó", ŋ="n", ɚ="er", ɜː="ér", h="h"), encoding="iso-8859-2"),
    "ca": Accent("ca", _table(j="i", w="u", h="", z="s", ʃ="x", ʒ="j", tʃ="tx", dʒ="tj",
                              ŋ="n", k="c", ɡ="g")),  # fmt: skip
    "ru": Accent("ru", {
        **{k: v for k, v in zip(
            ("p", "b", "t", "d", "k", "ɡ", "f", "v", "θ", "ð", "s", "z", "ʃ", "ʒ", "h", "m", "n",
             "ŋ", "l", "ɹ", "r", "j", "w", "ɾ", "ʔ", "x", "tʃ", "dʒ"),
            ("п", "б", "т", "д", "к", "г", "ф", "в", "т", "д", "с", "з", "ш", "ж", "х", "м", "н",
             "нг", "л", "р", "р", "й", "у", "т", "", "х", "ч", "дж"), strict=True)},
        **{k: v for k, v in zip(
            ("ɚ", "ə", "ɪ", "i", "iː", "ɛ", "æ", "ɑ", "ɑː", "ɔ", "ɔː", "ʊ", "u", "uː", "ʌ", "ɐ",
             "ᵻ", "e", "o", "a", "ɜː", "eɪ", "aɪ", "aʊ", "oʊ", "ɔɪ", "ɪɹ", "ɛɹ", "ʊɹ", "ɔːɹ",
             "ɑːɹ", "aɪə", "aɪɚ", "aʊɚ"),
            ("ер", "а", "и", "и", "и", "э", "э", "а", "а", "о", "о", "у", "у", "у", "а", "а",
             "и", "э", "о", "а", "ёр", "эй", "ай", "ау", "оу", "ой", "ир", "эр", "ур", "ор",
             "ар", "айе", "айер", "ауер"), strict=True)},
    }),
}  # fmt: skip

_FRONT = ("e", "i")


@functools.lru_cache(maxsize=4096)
def english_phonemes(word: str, dialect: str = DEFAULT_DIALECT) -> tuple[str, ...]:
    """espeak-ng's pronunciation of one word in an English `dialect` (an espeak-ng voice:
    en-us, en-gb-x-rp, en-gb-scotland...), as IPA phoneme tokens of the en-us tables."""
    res = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", dialect, "--", word],
                         capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    ipa = "".join(ch for ch in res.stdout.strip() if ch not in _IGNORED and not ch.isspace())
    tokens: list[str] = []
    i = 0
    while i < len(ipa):
        match = next((p for p in _TOKENS if ipa.startswith(p, i)), None)
        if match is None and ipa[i] == "ː":  # length on a vowel the table has only short
            i += 1
            continue
        if match is None:
            raise ValueError(f"unknown IPA symbol {ipa[i]!r} in {word!r} ({ipa})")
        tokens.extend(_DIALECT_EQUIVALENTS.get(match, (match,)))
        i += len(match)
    return tuple(tokens)


def _spell_word(phonemes: tuple[str, ...], accent: Accent) -> str:
    parts = [accent.spell[p] for p in phonemes]
    if accent.lang in ("it", "ca"):
        # c/g are hard before a/o/u and soft before e/i: harden or soften by the next letter.
        for n, p in enumerate(phonemes):
            nxt = parts[n + 1][:1] if n + 1 < len(parts) else ""
            front = nxt in _FRONT
            if p == "k":
                parts[n] = ("ch" if accent.lang == "it" else "qu") if front else "c"
            elif p == "ɡ":
                parts[n] = ("gh" if accent.lang == "it" else "gu") if front else "g"
            elif accent.lang == "it" and p in ("tʃ", "dʒ", "ʃ") and not front and nxt:
                parts[n] += "i"
    return "".join(parts)


_WORD_RE = re.compile(r"[A-Za-z']+|[^A-Za-z']+")


def respell(text: str, lang: str, dialect: str = DEFAULT_DIALECT) -> str:
    """`text` (English, as spoken in `dialect`) respelled for `lang`; punctuation and spacing
    are kept for prosody."""
    accent = ACCENTS[lang]
    out = []
    for chunk in _WORD_RE.findall(text):
        if chunk[0].isalpha() or chunk[0] == "'":
            out.append(_spell_word(english_phonemes(chunk.lower(), dialect), accent))
        else:
            out.append(chunk)
    return "".join(out)
