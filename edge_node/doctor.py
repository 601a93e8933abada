"""`edge-node doctor`: check a Pi's setup and say what to fix, one small function per check.

Each check returns a `Check` (ok True/False, or None when it does not apply) with a fix for
failures, so a user reads one list instead of debugging the service log.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.audio import AudioSourceError, open_source
from edge_node.audio.base import SAMPLE_RATE
from edge_node.config import NodeConfig
from edge_node.detector import Detector, DetectorSettings, rms_dbfs
from edge_node.display import DisplaySettings
from edge_node.model import Model, ModelError

BOOT_CONFIGS = (Path("/boot/firmware/config.txt"), Path("/boot/config.txt"))
"""Bookworm moved config.txt to /boot/firmware; older Raspberry Pi OS has /boot."""
I2S_OVERLAYS = ("googlevoicehat-soundcard", "adau7002-simple", "i2s-mmap", "rpi-i2s-mic")
SILENT_DBFS, CLIPPED_PEAK = -85.0, 0.99
QUEUE_MIN_FREE = 1 << 20
"""Free bytes below which the detection queue's disk counts as full (each detection is a few
hundred bytes, but sqlite's journal grows in pages)."""
NOT_BEFORE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None
    """True passed, False failed, None did not apply (skipped)."""
    detail: str
    fix: str = ""


def check_i2s_overlay(paths: Sequence[Path] = BOOT_CONFIGS) -> Check:
    """The I2S bus must be switched on in config.txt for the SPH0645 to exist at all."""
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        return Check("i2s", None, "no config.txt (not a Raspberry Pi?)")
    lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
    i2s_on = any(re.fullmatch(r"dtparam=(.*,)?i2s=on(,.*)?", ln) for ln in lines)
    overlays = [ln.split("=", 1)[1].split(",")[0] for ln in lines if ln.startswith("dtoverlay=")]
    mic = [o for o in overlays if o in I2S_OVERLAYS]
    if i2s_on or mic:
        return Check("i2s", True, f"{path}: " + ", ".join(["i2s=on"] * i2s_on + mic))
    return Check("i2s", False, f"{path} does not enable I2S",
                 f"add 'dtparam=i2s=on' (and your microphone's overlay, e.g. "
                 f"'dtoverlay=googlevoicehat-soundcard') to {path}, then reboot")


def check_microphone(config: NodeConfig, seconds: float = 1.0) -> Check:
    """Open the configured microphone and measure its level: silence means wiring/channel."""
    if config.source != "mic":
        return Check("microphone", None, f"source is {config.source}")
    try:
        with open_source("mic", config.audio) as source:
            blocks = [source.read() for _ in range(max(1, int(seconds * 10)))]
            name = getattr(source, "device", {}).get("name", "?")
    except AudioSourceError as exc:
        return Check("microphone", False, str(exc),
                     "check the wiring and the I2S overlay; `edge-node devices` lists inputs; "
                     "set audio.device in node.yaml")
    audio = np.concatenate([b for b in blocks if b is not None] or [np.zeros(1, np.float32)])
    level, peak = rms_dbfs(audio), float(np.abs(audio).max())
    detail = f"{name!r}: level {level:.0f} dBFS, peak {peak:.2f}"
    if level < SILENT_DBFS:
        return Check("microphone", False, detail + " (silent)",
                     "check the SEL/LRCL wiring or set audio.channel; "
                     "`edge-node record test.wav` and listen")
    if peak >= CLIPPED_PEAK:
        return Check("microphone", False, detail + " (clipping)", "lower audio.gain_db")
    return Check("microphone", True, detail)


def check_oled(settings: DisplaySettings, i2c: Any = None) -> Check:
    """The SSD1306 answering on I2C (skipped for png/none displays)."""
    if settings.backend.partition(":")[0] in ("png", "none"):
        return Check("oled", None, f"display backend is {settings.backend}")
    try:
        from edge_node.display.backends import DisplayUnavailable, OledBackend, open_i2c
    except ImportError as exc:
        return Check("oled", False, str(exc), "pip install 'kws-edge-node[pi]'")
    try:
        OledBackend(i2c if i2c is not None else open_i2c(), settings.i2c_address)
    except DisplayUnavailable as exc:
        ok = None if settings.backend == "auto" else False
        return Check("oled", ok, str(exc),
                     "enable I2C (raspi-config), check SDA/SCL wiring, find the address with "
                     "`i2cdetect -y 1` and set display.i2c_address")
    return Check("oled", True, f"SSD1306 at {settings.i2c_address:#x}")


def check_broker(host: str | None, port: int = 1883, timeout_s: float = 3.0) -> Check:
    """A TCP connection to the MQTT broker (authentication is the MQTT client's concern)."""
    if not host:
        return Check("broker", None, "MQTT not configured")
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return Check("broker", True, f"{host}:{port} reachable")
    except OSError as exc:
        return Check("broker", False, f"{host}:{port}: {exc.strerror or exc}",
                     "is the broker running and the host/port in node.yaml right? "
                     "(firewall, Wi-Fi)")


def check_model(path: Path, detector: DetectorSettings | None = None) -> Check:
    """The model loads with its manifest and answers in reasonable time; which threshold
    the node would use with it, and where that comes from."""
    try:
        model = Model(path)
    except ModelError as exc:
        return Check("model", False, str(exc), "reinstall the package or point `model:` at a "
                     ".tflite with its .json manifest")
    started = time.perf_counter()
    model.predict_features(np.zeros(model.features.shape, dtype=np.float32))
    ms = (time.perf_counter() - started) * 1000
    in_force = Detector(model, detector)
    return Check("model", True, f"{model.name} {model.version} ({model.runtime}), "
                 f"{len(model.labels)} labels, {model.manifest.features.profile} features, "
                 f"first inference {ms:.0f} ms; threshold {in_force.settings.threshold:.3f}, "
                 f"{in_force.threshold_source}")


def check_isolation(path: Path | None, detector: DetectorSettings | None = None) -> Check:
    """The isolation check loads, and how sure it must be (and how long a detection waits)."""
    from edge_node.isolation import IsolationCheck

    if path is None:
        return Check("isolation", None, "off (isolation_model: null): words inside talk are "
                                        "reported too")
    try:
        check = IsolationCheck(Model(path))
    except ModelError as exc:
        return Check("isolation", False, f"{exc}; the node runs without the check",
                     "reinstall the package, point `isolation_model:` at a model made by "
                     "`kws-train isolation`, or set it to null")
    requested = detector or DetectorSettings()
    threshold = requested.resolved(None, check.threshold).isolation_threshold
    where = ("its manifest" if requested.isolation_threshold is None
             else "set in node.yaml or from Home Assistant")
    return Check("isolation", True, f"{check.name}: threshold {threshold:.2f} ({where}), "
                 f"a detection waits {1000 * check.after_samples // SAMPLE_RATE} ms for the pause "
                 "after its word")


def ntp_synchronized() -> bool | None:
    """timedatectl's view, None when it cannot tell (no systemd)."""
    if shutil.which("timedatectl") is None:
        return None
    try:
        out = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"yes": True, "no": False}.get(out)


def check_clock(now: dt.datetime | None = None, not_before: dt.datetime = NOT_BEFORE,
                synced: bool | None = None) -> Check:
    """A Pi without RTC boots in the past until NTP syncs: TLS and timestamps then fail."""
    now = now or dt.datetime.now(dt.UTC)
    if now < not_before:
        return Check("clock", False, f"clock says {now:%Y-%m-%d %H:%M} UTC",
                     "network time is not synced: check the network and "
                     "`timedatectl set-ntp true`")
    detail = f"{now:%Y-%m-%d %H:%M} UTC"
    if synced is False:
        return Check("clock", False, detail + ", not NTP-synchronised", "timedatectl set-ntp true")
    return Check("clock", True, detail + (", NTP-synchronised" if synced else ""))


def check_queue(path: Path | None) -> Check:
    """The detection queue's disk takes writes and its database is sound; otherwise the node
    still sends detections live but holds them in memory only."""
    from edge_node.mqtt.queue import QueueStoreError, inspect_store

    if path is None:
        return Check("queue", None, "MQTT not configured")
    folder = path.parent
    fix_disk = f"free space on the disk holding {folder} (or move mqtt.queue_dir)"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        return Check("queue", False, f"{folder} takes no writes: {exc.strerror or exc}",
                     fix_disk)
    free = shutil.disk_usage(folder).free
    if free < QUEUE_MIN_FREE:
        return Check("queue", False, f"{folder} has only {free // 1024} KB free", fix_disk)
    waiting = 0
    if path.exists():
        try:
            waiting = inspect_store(path)
        except QueueStoreError as exc:
            return Check("queue", False, f"{path.name} is corrupt: {exc}",
                         "none needed: the node moves it aside and starts a new one")
    return Check("queue", True, f"{folder}: {free >> 20} MB free, {waiting} detection(s) "
                 "waiting")


def run_checks(config: NodeConfig) -> list[Check]:
    mqtt = getattr(config, "mqtt", None)
    return [
        check_i2s_overlay(),
        check_microphone(config),
        check_oled(config.display),
        check_broker(getattr(mqtt, "host", None), int(getattr(mqtt, "port", 1883) or 1883)),
        check_model(config.model, config.detector),
        check_isolation(config.isolation_model, config.detector),
        check_queue(mqtt.queue_path(config.node_id) if mqtt and mqtt.enabled else None),
        check_clock(synced=ntp_synchronized()),
    ]


def report(checks: Sequence[Check], as_json: bool = False) -> str:
    if as_json:
        return "\n".join(json.dumps(asdict(c)) for c in checks)
    words = {True: "OK  ", False: "FAIL", None: "SKIP"}
    lines = []
    for c in checks:
        lines.append(f"{words[c.ok]} {c.name:11s} {c.detail}")
        if c.ok is False and c.fix:
            lines.append(f"     {'':11s} fix: {c.fix}")
    return "\n".join(lines)
