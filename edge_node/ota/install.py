"""Installed models on the node: slots, the active pointer, self-test, boot trial, rollback.

Layout under the models dir (see docs/ota.md):

    active.json          {"current": T, "previous": P, "trial": bool, "starts": n}
    ota-state.json       failed transfers, interrupted install attempts, last result
    slots/<T>/           model.tflite, model.json (the signed manifest), signature
    staging/<T>.part     a download in progress (+ <T>.json: which chunks are on disk)

A new model is written to `slots/<T>.new/`, fsynced, renamed to `slots/<T>/`, and only then
does `active.json` (written to a temp file, fsynced, `os.replace`d, directory fsynced) point
at it. A power cut therefore leaves either the old pointer or the new one, and each names a
complete slot. A new model starts on trial: each start with it counts, and a start that
finds an unconfirmed trial that already had a start (the node died before the model ran for
a while) goes back to the previous model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.audio.wav import read_wav_mono16k
from edge_node.detector import Detector, DetectorSettings
from edge_node.events import EventHub, ModelRunning
from edge_node.model import Model, ModelError
from edge_node.ota.durable import fsync_dir, fsync_file, write_json_atomic
from edge_node.ota.faults import maybe_die

log = logging.getLogger(__name__)

REFERENCE_WAV = Path(__file__).resolve().parent.parent / "data" / "example.wav"
REFERENCE_EVENTS = REFERENCE_WAV.with_suffix(".json")
LATE_S = 1.5
"""A detection counts for a reference word if it fires between the word's start and this long
after its end (the detector smooths over a few windows)."""


POINTER_LOCK = threading.RLock()
"""The install worker (activate) and the audio thread (confirm) both rewrite active.json."""


class SelfTestError(ModelError):
    """The model loads but does not recognise the reference recording sensibly."""


def self_test(model: Model, settings: DetectorSettings, min_recall: float,
              wav: Path = REFERENCE_WAV, events_path: Path = REFERENCE_EVENTS) -> str:
    """Stream the reference recording through `model` as the node would; a summary, or
    SelfTestError when too few commands were heard or more wrong than right ones."""
    audio = read_wav_mono16k(wav)
    events = json.loads(events_path.read_text())["events"]
    try:
        detector = Detector(model, settings)
    except ValueError as exc:
        raise SelfTestError(f"model does not fit the detector settings: {exc}") from exc
    probs = model.predict_waveform(audio[:16000])
    if not np.all(np.isfinite(probs)):
        raise SelfTestError("model outputs non-finite scores")
    hop = detector.hop_samples
    detections = []
    for start in range(0, audio.size, hop):
        detections += detector.push(audio[start:start + hop])
    wanted = [e for e in events if e["label"] in model.manifest.commands]
    if not wanted:
        return "self-test skipped: the reference recording has none of the model's commands"
    used: set[int] = set()
    for event in wanted:
        for i, d in enumerate(detections):
            if i not in used and d.label == event["label"] and \
                    event["start_s"] <= d.time_s <= event["end_s"] + LATE_S:
                used.add(i)
                break
    right, wrong = len(used), len(detections) - len(used)
    summary = (f"self-test: {right} of {len(wanted)} reference commands heard, "
               f"{wrong} wrong detections")
    if right < min_recall * len(wanted) or wrong > right or right == 0:
        raise SelfTestError(summary + f" (needs >= {min_recall:.0%} and no more wrong than "
                            "right)")
    return summary


@dataclass
class Pointer:
    """Which slot is in use, which one to go back to, and whether it is still on trial."""

    current: str | None = None
    previous: str | None = None
    trial: bool = False
    starts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"current": self.current, "previous": self.previous, "trial": self.trial,
                "starts": self.starts}


class ModelStore:
    """The models dir: slots, the active pointer and the OTA state file."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.slots = self.root / "slots"
        self.staging = self.root / "staging"
        self.pointer_path = self.root / "active.json"
        self.state_path = self.root / "ota-state.json"
        for folder in (self.root, self.slots, self.staging):
            folder.mkdir(parents=True, exist_ok=True)
        self.state = self._read_json(self.state_path)

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("OTA: ignoring unreadable %s: %s", path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    # --- state file -----------------------------------------------------------------------

    def save_state(self) -> None:
        write_json_atomic(self.state_path, self.state)

    def failure(self, transfer: str) -> str | None:
        return self.state.get("failed", {}).get(transfer)

    def mark_failed(self, transfer: str, reason: str) -> None:
        failed = self.state.setdefault("failed", {})
        failed[transfer] = reason
        for old in list(failed)[:-20]:
            del failed[old]
        self.state.get("attempts", {}).pop(transfer, None)
        self.save_state()

    def forget_failure(self, transfer: str) -> None:
        self.state.get("failed", {}).pop(transfer, None)
        self.state.get("attempts", {}).pop(transfer, None)
        self.save_state()

    def bump_attempts(self, transfer: str) -> int:
        """Count an install attempt before loading untrusted bytes (a crash leaves it counted)."""
        attempts = self.state.setdefault("attempts", {})
        attempts[transfer] = int(attempts.get(transfer, 0)) + 1
        self.save_state()
        return attempts[transfer]

    def attempts(self, transfer: str) -> int:
        return int(self.state.get("attempts", {}).get(transfer, 0))

    def refusal(self, transfer: str) -> tuple[str, str] | None:
        """Why an offer must not be installed again unasked (its state and reason): it failed
        or was rolled back before, or two installs of it died while testing it."""
        failure = self.failure(transfer)
        if failure:
            last = self.state.get("last", {})
            rolled = last.get("transfer") == transfer and last.get("state") == "rolled-back"
            return ("rolled-back" if rolled else "failed"), failure
        if self.attempts(transfer) >= 2:
            reason = "the install was interrupted twice (the node died while testing the model)"
            self.mark_failed(transfer, reason)
            return "failed", reason
        return None

    def set_last(self, **result: Any) -> None:
        """The outcome shown on the status topic after a restart."""
        self.state["last"] = result
        self.save_state()

    # --- slots and pointer ----------------------------------------------------------------

    def pointer(self) -> Pointer:
        data = self._read_json(self.pointer_path)
        slot = lambda key: data.get(key) if isinstance(data.get(key), str) else None  # noqa: E731
        return Pointer(slot("current"), slot("previous"), data.get("trial") is True,
                       int(data.get("starts", 0)) if isinstance(data.get("starts"), int) else 0)

    def write_pointer(self, pointer: Pointer) -> None:
        tmp = self.pointer_path.with_name("active.json.tmp")
        with open(tmp, "w") as fh:
            fh.write(json.dumps(pointer.to_json()))
            fh.flush()
            os.fsync(fh.fileno())
        maybe_die("pointer-written")
        os.replace(tmp, self.pointer_path)
        fsync_dir(self.root)

    def model_path(self, slot: str) -> Path:
        return self.slots / slot / "model.tflite"

    def stage_slot(self, transfer: str, part: Path, manifest: dict[str, Any],
                   signature: str) -> Path:
        """Move a verified download into `slots/<T>.new/` with its manifest; the model path."""
        new = self.slots / f"{transfer}.new"
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir()
        model = new / "model.tflite"
        os.replace(part, model)
        (new / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
        (new / "signature").write_text(signature + "\n")
        return model

    def commit_slot(self, transfer: str) -> Path:
        """Make `slots/<T>.new/` durable and give it its final name."""
        new = self.slots / f"{transfer}.new"
        for path in new.iterdir():
            fsync_file(path)
        fsync_dir(new)
        final = self.slots / transfer
        shutil.rmtree(final, ignore_errors=True)
        os.replace(new, final)
        fsync_dir(self.slots)
        maybe_die("slot-written")
        return self.model_path(transfer)

    def activate(self, transfer: str) -> Pointer:
        """Point at the new slot (on trial), keeping the current one as the way back."""
        with POINTER_LOCK:
            old = self.pointer()
            pointer = Pointer(current=transfer, previous=old.current if old.current != transfer
                              else old.previous, trial=True, starts=0)
            self.write_pointer(pointer)
        return pointer

    def confirm(self, transfer: str) -> bool:
        """The model ran fine: end its trial and drop slots older than the previous one."""
        with POINTER_LOCK:
            pointer = self.pointer()
            if pointer.current != transfer or not pointer.trial:
                return False
            pointer.trial, pointer.starts = False, 0
            self.write_pointer(pointer)
            self.prune(pointer)
        return True

    def prune(self, pointer: Pointer) -> None:
        keep = {pointer.current, pointer.previous}
        for path in self.slots.iterdir():
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)

    def clean_staging(self, keep: str) -> None:
        """Drop downloads of transfers other than `keep` (replaced offers)."""
        for path in self.staging.iterdir():
            if path.name.split(".")[0] != keep:
                path.unlink(missing_ok=True)

    def discard_slot(self, transfer: str) -> None:
        for name in (transfer, f"{transfer}.new"):
            shutil.rmtree(self.slots / name, ignore_errors=True)

    # --- boot -----------------------------------------------------------------------------

    def boot(self, fallback: Path, runtime: str | None = None) -> tuple[Model, str | None]:
        """The model to start with and its slot (None: `fallback`, e.g. the bundled model).

        Rolls back when the current model is on trial and already had a start that never
        got confirmed, or when it does not load."""
        pointer = self.pointer()
        while pointer.current is not None:
            slot = pointer.current
            if pointer.trial and pointer.starts >= 1:
                reason = (f"the node stopped while starting with model {self._version(slot)}; "
                          "rolled back")
                pointer = self._roll_back(pointer, reason)
                continue
            if pointer.trial:
                pointer.starts += 1
                self.write_pointer(pointer)
            try:
                model = Model(self.model_path(slot), runtime)
            except (ModelError, OSError) as exc:
                pointer = self._roll_back(pointer, f"installed model does not load ({exc}); "
                                          "rolled back")
                continue
            log.info("OTA: starting with installed model %s %s%s", model.name, model.version,
                     " (on trial)" if pointer.trial else "")
            if pointer.trial:
                maybe_die("boot-trial")
            return model, slot
        return Model(fallback, runtime), None

    def _version(self, slot: str) -> str:
        try:
            return str(json.loads((self.slots / slot / "model.json").read_text())["version"])
        except (OSError, ValueError, KeyError):
            return slot

    def _roll_back(self, pointer: Pointer, reason: str) -> Pointer:
        bad = pointer.current
        assert bad is not None
        log.error("OTA: %s", reason)
        back = Pointer(current=pointer.previous, previous=None, trial=False, starts=0)
        self.write_pointer(back)
        self.mark_failed(bad, reason)
        self.set_last(state="rolled-back", reason=reason, transfer=bad,
                      version=self._version(bad))
        self.discard_slot(bad)
        return back


def confirm_when_running(hub: EventHub, store: ModelStore) -> None:
    """End a model's trial once the agent reports it ran (`ModelRunning`)."""

    def on_running(event: ModelRunning) -> None:
        path = Path(getattr(event.model, "path", ""))
        if path.parent.parent == store.slots and store.confirm(path.parent.name):
            log.info("OTA: model %s confirmed after running", event.model.version)

    hub.subscribe(ModelRunning, on_running)
