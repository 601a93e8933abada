"""Fixtures shared by the test modules; the helpers they use live in tests/support."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from provisioning.broker import BrokerOptions
from provisioning.push import Pusher
from tests.support.audio_signals import RATE, noise, person_saying, synthesise, write_wav
from tests.support.mqtt_broker import Broker
from tests.support.ota_packages import Keys, make_keys
from tests.support.tiers import pytest_collection_modifyitems  # noqa: F401 (the tier check)

pytest_plugins = ("pytester",)


def pytest_addoption(parser: pytest.Parser) -> None:
    """--update-docs-images: redrawing the committed screen pictures is a deliberate act."""
    parser.addoption("--update-docs-images", action="store_true",
                     help="rewrite docs/display/*.png from the screens tests/test_display.py "
                          "draws, instead of comparing the screens with them")


@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    """speech(text, engine="flite", voice="slt") -> cached 16 kHz waveform."""
    cache: dict[tuple[str, str, str], np.ndarray] = {}
    folder = tmp_path_factory.mktemp("speech")

    def make(text: str, engine: str = "flite", voice: str = "slt") -> np.ndarray:
        key = (text, engine, voice)
        if key not in cache:
            cache[key] = synthesise(text, engine, voice, folder / f"{engine}-{voice}-{text}.wav")
        return cache[key]

    return make


@pytest.fixture(scope="session")
def command_recording(tmp_path_factory):
    """A recording with commands at known times over low noise: (path, [(label, start, end)]).

    Real people held out from every bundled model's training (cut from the bundled example),
    so the bundled model hears them at the threshold it was calibrated for on people."""
    words = [("right", 0), ("down", 0), ("up", 2), ("yes", 1)]
    parts, events, t = [noise(1.0, -55, 1)], [], 1.0
    for i, (word, nth) in enumerate(words):
        clip = person_saying(word, nth)
        events.append((word, t, t + clip.size / RATE))
        parts += [clip, noise(2.5, -55, 10 + i)]
        t += clip.size / RATE + 2.5
    audio = np.concatenate(parts)
    audio += noise(audio.size / RATE, -60, 99)
    path = tmp_path_factory.mktemp("recording") / "commands.wav"
    return write_wav(path, audio), events


@pytest.fixture(scope="module")
def ota_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One anonymous Mosquitto for a module's OTA tests (they use distinct node ids, so they do
    not hear each other): a broker per test would add its start-up to every slow test."""
    broker = Broker(tmp_path_factory.mktemp("broker")).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def ota_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """The fleet owner's signing key pair for a module's OTA packages."""
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def ota_pusher(ota_broker: Broker) -> Iterator[Pusher]:
    """The real fleet pusher (`kws-fleet push-model`'s engine) on the OTA broker."""
    pusher = Pusher(BrokerOptions("127.0.0.1", ota_broker.port, username=""))
    yield pusher
    pusher.close()
