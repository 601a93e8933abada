"""Label set and text material for synthetic keyword-spotting data.

The `_unknown_` material deliberately contains near-misses of the commands so the model
learns to reject them, but never exact homophones ("know" = "no", "write" = "right"):
those would be identical audio with contradictory labels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

COMMANDS: tuple[str, ...] = ("go", "down", "up", "stop", "yes", "left", "right", "no")
UNKNOWN_LABEL = "_unknown_"
SILENCE_LABEL = "_silence_"

# Homophones of default commands: never usable as `_unknown_` while that command is a target.
HOMOPHONES: dict[str, tuple[str, ...]] = {
    "no": ("know", "noh"),
    "right": ("write", "rite", "wright"),
}

# Near-misses of the commands, speech-commands auxiliary words, smart-home words.
UNKNOWN_WORDS: tuple[str, ...] = tuple(
    """
    going gone goat goal good ghost toe row so town gown done dune dawn downy sound crown
    cup pup us upper hut shop top stopped stock step spot drop mop yet yeah yell chess less
    mess guess lift laughed leaf lefty felt light bright night ride rice white fight wrote
    now nope note low snow nose nine new knee

    bed bird cat dog house happy tree wow sheila marvin learn follow forward backward
    visual on off zero one two three four five six seven eight

    door window kitchen lamp music coffee water morning evening hello thanks please maybe
    later today tomorrow weather garden table chair phone paper yellow purple orange banana
    apple pizza cheese bottle minute second number computer picture summer winter open
    close start begin finish again turn play pause volume quiet loud warm cold sleep dinner
    """.split()
)

# Which of UNKNOWN_WORDS sound most like each command: the words a streaming model falsely
# fires on (measured on held-out streams: "gown" -> down, "lift" -> left, "ride" -> right).
NEAR_MISSES: dict[str, tuple[str, ...]] = {
    "go": ("going", "gone", "goat", "goal", "good", "ghost", "toe", "row", "so", "low"),
    "down": ("town", "gown", "done", "dune", "dawn", "downy", "sound", "crown", "now"),
    "up": ("cup", "pup", "us", "upper", "hut", "on", "off"),
    "stop": ("shop", "top", "stopped", "stock", "step", "spot", "drop", "mop"),
    "yes": ("yet", "yeah", "yell", "chess", "less", "mess", "guess"),
    "left": ("lift", "laughed", "leaf", "lefty", "felt"),
    "right": ("light", "bright", "night", "ride", "rice", "white", "fight", "wrote"),
    "no": ("now", "nope", "note", "low", "snow", "nose", "nine", "new", "knee"),
}

# Sentences must not contain a default command word (checked by a test).
SENTENCES: tuple[str, ...] = (
    "what time is it",
    "the weather looks nice today",
    "could you pass me the salt",
    "i think the kettle is boiling",
    "where did i leave my keys",
    "that was a really good film",
    "let me call you back later",
    "the cat is sleeping on the sofa",
    "we should buy more milk",
    "have you seen my glasses",
    "dinner will be ready in ten minutes",
    "the children are playing outside",
    "please close the window",
    "it is getting dark already",
    "my phone battery is almost empty",
    "turn the music a bit louder",
    "the train was late again",
    "i would like a cup of tea",
    "how was your day at work",
    "this soup tastes wonderful",
    "the garden needs some water",
    "can you hear that noise",
    "i forgot to feed the fish",
    "we are going to the beach on saturday",
    "the meeting starts at nine",
    "put the books on the table",
    "my brother lives in the city",
    "it smells like rain",
    "the baby finally fell asleep",
    "what are we having for lunch",
    "open the curtains please",
    "thank you very much",
    "i am not sure about that",
    "the printer is out of paper",
    "she has a beautiful garden",
    "we watched a movie last night",
    "the dog wants to play",
    "let us meet at the station",
    "that sounds like a plan",
    "good morning everybody",
    "the heating is too warm",
    "where is the remote control",
)

_WORD_RE = re.compile(r"[a-z']+")


def text_variants(word: str) -> tuple[str, ...]:
    """Spellings the engines read with different prosody (statement, exclamation, question)."""
    cap = word[:1].upper() + word[1:]
    return (word, f"{word}!", f"{word}.", f"{cap}?", f"{cap}!", f"{cap}.", cap, f"{word}?")


_QUESTION_STARTS = ("what", "where", "how", "can", "could", "have", "is", "do")


def sentence_variants(sentence: str) -> tuple[str, ...]:
    """Punctuation/capitalisation variants of a sentence, for varied intonation."""
    cap = sentence[:1].upper() + sentence[1:]
    if sentence.split()[0] in _QUESTION_STARTS:
        return (f"{cap}?", f"{cap}?", f"{cap}.")
    return (f"{cap}.", f"{cap}!", cap)


def pick_variant(variants: Sequence[str], rng: np.random.Generator) -> str:
    """Choose one variant; separate so callers keep the RNG call sequence explicit."""
    return variants[int(rng.integers(len(variants)))]


def plain_words(text: str) -> str:
    """`text` in lower case without punctuation ("Stop!" -> "stop")."""
    return " ".join(_WORD_RE.findall(text.lower()))


def contains_phrase(text: str, phrase: str) -> bool:
    """True if `phrase` (one or more words) occurs in `text` on word boundaries."""
    words = _WORD_RE.findall(text.lower())
    target = _WORD_RE.findall(phrase.lower())
    n = len(target)
    return n > 0 and any(words[i : i + n] == target for i in range(len(words) - n + 1))


def near_misses(targets: Iterable[str]) -> tuple[str, ...]:
    """Unknown words that sound like one of `targets` (none for custom keywords)."""
    words: dict[str, None] = {}
    for t in targets:
        words.update(dict.fromkeys(NEAR_MISSES.get(t.lower(), ())))
    return tuple(words)


def pick_unknown_word(words: Sequence[str], close: Sequence[str], near_miss_share: float,
                      rng: np.random.Generator) -> str:
    """An unknown word; with probability `near_miss_share` one of the `close` near-misses.

    A share of 0 draws exactly as before the option existed (same RNG calls), so recordings
    made without it stay byte-identical.
    """
    if close and near_miss_share > 0 and rng.random() < near_miss_share:
        return close[int(rng.integers(len(close)))]
    return words[int(rng.integers(len(words)))]


def unknown_material(targets: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Unknown words and sentences safe to use when `targets` are the keywords.

    Default commands that are not targets become unknown words, so a custom-keyword
    model still learns to reject them.
    """
    tset = {t.lower() for t in targets}
    banned = set(tset)
    for t in tset:
        banned.update(HOMOPHONES.get(t, ()))
    extra = tuple(c for c in COMMANDS if c not in tset)
    words = tuple(w for w in dict.fromkeys(UNKNOWN_WORDS + extra) if w not in banned)
    sentences = tuple(s for s in SENTENCES if not any(contains_phrase(s, b) for b in banned))
    return words, sentences
