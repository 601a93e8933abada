"""The OLED screen through the real adafruit_ssd1306 driver on a fake I2C bus, and PNG output.

The pictures in docs/display/ are what these tests send over the bus, 4x enlarged: each run
decodes them and compares them pixel for pixel with the screen the test drew, so a change to
the screen fails here until the pictures are redrawn on purpose, with
`scripts/test.sh tests/test_display.py --update-docs-images` (an option of tests/conftest.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("adafruit_ssd1306", reason="the OLED tests need the pi extra")

from PIL import Image  # noqa: E402

from edge_node.config import ConfigError, load_config  # noqa: E402
from edge_node.detector import Detection  # noqa: E402
from edge_node.display import DisplaySettings, start_display  # noqa: E402
from edge_node.display.backends import DisplayUnavailable, OledBackend  # noqa: E402
from edge_node.display.extension import Display  # noqa: E402
from edge_node.display.render import render  # noqa: E402
from edge_node.events import (  # noqa: E402
    Detected,
    EventHub,
    NodeProblem,
    SourceProblem,
    SourceRestored,
)
from tests.support.fake_i2c import FakeI2C  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs" / "display"
COMMAND_ROWS, BAR_ROW, METER_ROW = slice(13, 46), 51, 61
MIC_ICON, BROKER_ICON = (slice(0, 10), slice(0, 9)), (slice(0, 10), slice(12, 21))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pixels(bus: FakeI2C) -> np.ndarray:
    return np.array(bus.image(), dtype=bool)


def make(settings: DisplaySettings | None = None, **state: object):
    bus, clock, hub = FakeI2C(), Clock(), EventHub()
    display = Display(OledBackend(bus), settings, model_version="1.4.0", clock=clock).attach(hub)
    display.update(**state)
    return display, bus, clock, hub


def heard(hub: EventHub, label: str, confidence: float) -> None:
    hub.publish(Detected(Detection(label, confidence, 3.0), "1.4.0", time.time()))


def enlarged(bus: FakeI2C) -> np.ndarray:
    """What went over the bus, 4x enlarged as in docs/display.md, as booleans (lit pixels)."""
    return np.array(bus.image().resize((512, 256), Image.NEAREST).convert("1"), dtype=bool)


@pytest.fixture
def docs_picture(request: pytest.FixtureRequest) -> Callable[[FakeI2C, str], None]:
    """docs_picture(bus, name): the screen on `bus` must be docs/display/NAME.png, pixel for
    pixel; with --update-docs-images it is written there instead."""
    update = bool(request.config.getoption("--update-docs-images"))

    def check(bus: FakeI2C, name: str) -> None:
        path = DOCS / f"{name}.png"
        if update:
            DOCS.mkdir(parents=True, exist_ok=True)
            bus.image().resize((512, 256), Image.NEAREST).save(path)
            return
        assert path.is_file(), f"{path} is missing: run with --update-docs-images"
        with Image.open(path) as picture:
            committed = np.array(picture.convert("1"), dtype=bool)
        drawn = enlarged(bus)
        assert committed.shape == drawn.shape, f"{path}: {committed.shape} != {drawn.shape}"
        differing = int((committed != drawn).sum())
        assert differing == 0, (f"{path}: {differing} pixels differ from the screen drawn now; "
                                "if the change is meant, run with --update-docs-images")

    return check


@pytest.mark.unit
def test_the_panel_receives_exactly_the_rendered_image(docs_picture):
    display, bus, _, hub = make(connected=True, level_dbfs=-30.0)
    heard(hub, "stop", 0.87)
    assert display.refresh()
    assert bus.image().tobytes() == render(display.state).tobytes()
    assert display.state.command == "stop"
    docs_picture(bus, "command")


@pytest.mark.unit
def test_each_command_is_drawn_large_and_differently():
    shown = {}
    for label in ("stop", "go", "left", "yes"):
        display, bus, _, hub = make()
        heard(hub, label, 0.9)
        display.refresh()
        region = pixels(bus)[COMMAND_ROWS]
        assert region.sum() > 150, f"{label}: command text too small or missing"
        shown[label] = region
    labels = list(shown)
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            assert (shown[a] != shown[b]).sum() > 100, f"{a} and {b} look alike"


@pytest.mark.unit
def test_confidence_bar_length_is_proportional():
    lengths = {}
    for confidence in (0.2, 0.5, 1.0):
        display, bus, _, hub = make()
        heard(hub, "up", confidence)
        display.refresh()
        lengths[confidence] = int(pixels(bus)[BAR_ROW, 2:98].sum())
    assert lengths[1.0] == 96
    for confidence in (0.2, 0.5):
        assert abs(lengths[confidence] - confidence * lengths[1.0]) <= 1


@pytest.mark.unit
def test_status_icons_show_broker_and_muted_states(docs_picture):
    icons = {}
    for connected in (True, False, None):
        display, bus, _, _ = make(connected=connected)
        display.refresh()
        icons[connected] = pixels(bus)[BROKER_ICON]
        if connected is False:
            assert pixels(bus)[0:10, 24:70].sum() > 40, "'no broker' text missing"
            docs_picture(bus, "no-broker")
    assert icons[None].sum() == 0
    assert icons[True].sum() > 1.5 * icons[False].sum() > 0
    mics = {}
    for listening in (True, False):
        display, bus, _, _ = make(listening=listening, level_dbfs=-20.0)
        display.refresh()
        mics[listening] = pixels(bus)[MIC_ICON]
        meter = pixels(bus)[METER_ROW].sum()
        assert (meter > 60) if listening else (meter == 0), "meter only while listening"
        if not listening:
            docs_picture(bus, "muted")
    assert (mics[True] != mics[False]).sum() > 5


@pytest.mark.unit
def test_level_meter_follows_the_audio_level():
    levels = {}
    for dbfs in (-60.0, -35.0, -10.0):
        display, bus, _, _ = make(level_dbfs=dbfs)
        display.refresh()
        levels[dbfs] = int(pixels(bus)[METER_ROW].sum())
    assert 0 < levels[-60.0] < levels[-35.0] < levels[-10.0] < 128


@pytest.mark.unit
def test_source_problem_shows_an_error_screen_until_restored(docs_picture):
    display, bus, _, hub = make(connected=True)
    heard(hub, "left", 0.8)
    display.refresh()
    main_screen = pixels(bus)
    message = "microphone could not be opened: no default input device; retrying in 2 s"
    hub.publish(SourceProblem(message, fatal=False))
    display.refresh()
    assert display.state.alert == ("No microphone", message)
    error_screen = pixels(bus)
    assert bus.image().tobytes() == render(display.state).tobytes()
    assert (error_screen[12:] != main_screen[12:]).sum() > 300
    docs_picture(bus, "no-microphone")
    hub.publish(SourceRestored("microphone is back"))
    display.refresh()
    assert (pixels(bus) == main_screen).all()


@pytest.mark.unit
def test_a_node_problem_is_shown_until_it_is_over():
    """The detection queue's disk full (or a duplicate node_id) reaches the screen."""
    display, bus, _, hub = make(connected=True)
    display.refresh()
    main_screen = pixels(bus)
    message = "cannot write kitchen-queue.sqlite3: database or disk is full"
    hub.publish(NodeProblem("detection queue", message))
    display.refresh()
    assert display.state.alert == ("Node problem", message)
    assert (pixels(bus)[12:] != main_screen[12:]).sum() > 300
    hub.publish(NodeProblem("detection queue", None))
    display.refresh()
    assert (pixels(bus) == main_screen).all()


@pytest.mark.unit
def test_ota_progress_is_shown_over_everything(docs_picture):
    display, bus, _, _ = make(connected=True)
    display.show_progress("Updating model 1.5.0", 40)
    display.refresh()
    bar = pixels(bus)[46, 2:126].sum()
    display.show_progress("Updating model 1.5.0", 80)
    display.refresh()
    assert abs(pixels(bus)[46, 2:126].sum() - 2 * bar) <= 1
    docs_picture(bus, "ota-progress")
    display.clear_progress()
    display.refresh()
    assert pixels(bus)[46, 2:126].sum() == 0


@pytest.mark.unit
def test_screen_dims_then_blanks_when_idle_and_wakes_on_a_command(docs_picture):
    settings = DisplaySettings(dim_after_s=30, blank_after_s=120)
    display, bus, clock, hub = make(settings, level_dbfs=-30.0)
    display.refresh()
    assert bus.powered() and pixels(bus).any()
    docs_picture(bus, "listening")
    for seconds, level in ((29, -31.0), (31, -32.0)):
        clock.now += seconds - (clock.now - 1000.0)
        display.update(level_dbfs=level)
        display.refresh()
    assert bus.contrast() == 0x01, "not dimmed after 30 s idle"
    clock.now = 1000.0 + 121
    display.refresh()
    assert not bus.powered() and not pixels(bus).any()
    frames = bus.frames
    display.update(level_dbfs=-10.0)
    display.refresh()
    assert bus.frames == frames, "the live meter alone must not wake the screen"
    heard(hub, "go", 0.95)
    display.refresh()
    assert bus.powered() and bus.contrast() == 0xCF and pixels(bus)[COMMAND_ROWS].any()


@pytest.mark.unit
def test_rendering_is_rate_limited_and_off_the_publishing_thread():
    settings = DisplaySettings(max_fps=5)
    bus, hub = FakeI2C(), EventHub()
    backend = OledBackend(bus)
    shown_on: list[str] = []
    ship = backend.show
    backend.show = lambda image: (shown_on.append(threading.current_thread().name), ship(image))
    display = Display(backend, settings).attach(hub)
    display.start()
    frames = bus.frames
    started = time.monotonic()
    took = []
    try:
        for i in range(40):
            t0 = time.perf_counter()
            heard(hub, ("up", "down")[i % 2], 0.5 + i / 100)
            took.append(time.perf_counter() - t0)
            time.sleep(0.025)
        elapsed = time.monotonic() - started
    finally:
        display.stop()
    assert set(shown_on) == {"display"}
    median = float(np.median(took))
    assert median < 0.001, f"publishing a detection took {median * 1000:.1f} ms (drawing?)"
    assert 2 <= bus.frames - frames <= elapsed * 5 + 2
    assert not bus.powered(), "stop() switches the panel off"


@pytest.mark.unit
def test_no_oled_at_the_address_is_reported_and_the_node_runs_on(caplog):
    with pytest.raises(DisplayUnavailable, match="0x3d"):
        OledBackend(FakeI2C(address=0x3C), address=0x3D)
    caplog.set_level(logging.INFO)
    assert start_display(DisplaySettings(backend="oled"), EventHub()) is None
    said = [r for r in caplog.records if "no display" in r.getMessage()]
    assert len(said) == 1


@pytest.mark.unit
def test_a_display_failing_mid_run_is_dropped_once(caplog):
    display, bus, _, hub = make()
    display.refresh()
    bus.fail_with = OSError(121, "Remote I/O error")
    heard(hub, "no", 0.7)
    assert display.refresh() is False
    heard(hub, "yes", 0.7)
    assert display.refresh() is False
    assert len([r for r in caplog.records if "display stopped working" in r.getMessage()]) == 1


@pytest.mark.unit
def test_png_backend_writes_the_same_screen(tmp_path):
    hub = EventHub()
    settings = DisplaySettings(backend=f"png:{tmp_path / 'screen'}", max_fps=10)
    display = start_display(settings, hub, model_version="2.0")
    assert display is not None
    try:
        heard(hub, "right", 0.75)
        deadline = time.monotonic() + 3
        while display.state.command != "right" or not _png_matches(tmp_path, display):
            assert time.monotonic() < deadline, "screen.png never showed the command"
            time.sleep(0.05)
    finally:
        display.stop()
    assert list((tmp_path / "screen").glob("frame-*.png"))


def _png_matches(tmp_path: Path, display: Display) -> bool:
    try:
        shown = Image.open(tmp_path / "screen" / "screen.png").convert("1")
    except OSError:
        return False
    return shown.tobytes() == render(display.state).tobytes()


@pytest.mark.unit
def test_display_section_of_node_yaml(tmp_path):
    path = tmp_path / "node.yaml"
    path.write_text("display:\n  backend: png:/tmp/x\n  i2c_address: 0x3d\n  dim_after_s: 10\n")
    config = load_config(path)
    assert config.display == DisplaySettings("png:/tmp/x", 0x3D, 10.0)
    assert load_config(None, {"display.backend": "none"}).display.backend == "none"
    for bad, words in (("backend: hdmi", "display backend"), ("i2c_address: 300", "7-bit"),
                       ("blank_after_s: 5", "dim_after_s")):
        path.write_text(f"display:\n  {bad}\n")
        with pytest.raises(ConfigError, match=words):
            load_config(path)


@pytest.mark.unit
def test_an_unusable_png_directory_means_no_display(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    settings = DisplaySettings(backend=f"png:{blocker / 'screen'}")
    assert start_display(settings, EventHub()) is None
    assert any("cannot create PNG display directory" in r.getMessage() for r in caplog.records)


def status_line(image: Image.Image) -> bytes:
    """The top row of the screen: microphone, broker icon and "no broker", model version."""
    return image.convert("1").crop((0, 0, image.width, 11)).tobytes()


@pytest.mark.integration
def test_a_running_node_shows_no_broker_when_its_broker_goes_away(tmp_path):
    import subprocess

    from edge_node.display.render import ScreenState
    from edge_node.model import DEFAULT_MODEL, read_manifest
    from tests.support.mqtt_broker import Broker
    from tests.support.node_process import NodeProcess

    version = read_manifest(DEFAULT_MODEL).version
    expected = {up: status_line(render(ScreenState(connected=up, model_version=version)))
                for up in (True, False)}
    assert expected[True] != expected[False]
    broker = Broker(tmp_path / "broker").start()
    screen = tmp_path / "screen" / "screen.png"
    (tmp_path / "node.yaml").write_text(
        f"node_id: oled\nsource: stdin\nmqtt: {{host: 127.0.0.1, port: {broker.port}, "
        f"state_dir: {tmp_path / 'state'}, reconnect_max_s: 1}}\n")
    node = NodeProcess(tmp_path, "--config", str(tmp_path / "node.yaml"),
                       "--display", f"png:{screen.parent}", stdin=subprocess.PIPE)

    def shows(connected: bool) -> bool:
        try:
            return status_line(Image.open(screen)) == expected[connected]
        except OSError:
            return False

    try:
        node.wait_for(lambda: shows(True))
        broker.stop()
        node.wait_for(lambda: shows(False))
        broker.start()
        node.wait_for(lambda: shows(True))
    finally:
        node.close()
        broker.stop()
