"""OTA over MQTT: offers, chunks, re-requests, the install worker and the status topic.

The topics, the offer rules (newest `pushed_at` wins, but only against a verified offer and
never dated later than its arrival) and the state machine are in docs/ota.md; topic names
come from `edge_node.topics`.

MQTT handlers run in paho's thread and only store chunks; verifying, loading and the self-test
run in a worker thread, so the connection and the audio loop never wait for them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from edge_node import topics
from edge_node.detector import DetectorSettings
from edge_node.events import (
    DetectorChanged,
    EventHub,
    ModelInstalled,
    ModelRunning,
    UpdateProgress,
)
from edge_node.model import Model, ModelError
from edge_node.mqtt.client import MqttConnection
from edge_node.ota.faults import maybe_die
from edge_node.ota.install import ModelStore, self_test
from edge_node.ota.package import PackageError, node_public_key, verify_manifest
from edge_node.ota.settings import OtaSettings
from edge_node.ota.transfer import Offer, Transfer, encode_request, parse_offer

log = logging.getLogger(__name__)

INSTALL_PAYLOAD = "install"
BUSY = ("downloading", "verifying", "self-test")
STATUS_EVERY_S = 0.5


class OtaExtension:
    """Receives, verifies and installs models for one node, reporting on `<base>/model/status`.

    It hands an installed model to the agent as a `ModelInstalled` event and self-tests new
    models with the detector settings of the latest `DetectorChanged`."""

    def __init__(self, conn: MqttConnection, base: str, node_id: str, group: str,
                 settings: OtaSettings, store: ModelStore, model: Any, hub: EventHub,
                 detector: DetectorSettings) -> None:
        self.conn = conn
        self.base = base
        self.node_id = node_id
        self.group = group
        self.settings = settings
        self.store = store
        self.detector = detector
        self.hub = hub
        self._lock = threading.RLock()
        self.key, self.key_problem = node_public_key(settings.public_key)
        if self.key_problem:
            log.warning("OTA: %s", self.key_problem)
        self.installed_name = str(model.name)
        self.installed_version = str(model.version)
        self.installed_sha = str(getattr(getattr(model, "manifest", None), "sha256", ""))
        self.current = store.pointer().current
        self.offer: Offer | None = None
        self.offer_verified = False
        """The current offer's signature verified with the fleet key."""
        self.offer_at = 0.0
        """The current offer's `pushed_at`, but never later than when it arrived."""
        self.queued: Offer | None = None
        self.transfer: Transfer | None = None
        self.worker: threading.Thread | None = None
        last = store.state.get("last", {})
        self.state = str(last.get("state", "idle"))
        if self.state == "installed" and last.get("transfer") != self.current:
            self.state = "idle"
        self.reason = str(last.get("reason", ""))
        self.error = ""
        self.progress = 0.0
        self.confirmed = not store.pointer().trial
        self._last_status = 0.0
        self._stop = threading.Event()
        for scope in topics.model_scopes(base, group):
            conn.handle(topics.offer_topic(scope), self.on_offer)
        conn.handle(f"{base}/{topics.MODEL}/{topics.INSTALL}", self.on_install)
        conn.add_connect_listener(self.publish_status)
        hub.subscribe(ModelRunning, self.on_model_running)
        hub.subscribe(DetectorChanged, self.on_detector_changed)
        self._watchdog = threading.Thread(target=self._watch, name="ota-watchdog", daemon=True)

    def start(self) -> None:
        self._watchdog.start()

    def on_detector_changed(self, event: DetectorChanged) -> None:
        self.detector = event.settings

    # --- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        offer = self.offer
        latest = offer.version if offer is not None else self.installed_version
        summary = offer.release_summary if offer is not None else ""
        if self.state in ("failed", "rolled-back") and self.reason:
            summary = f"{self.state}: {self.reason}"[:255]
        busy = self.state in BUSY
        return {
            "state": self.state, "progress": round(self.progress, 1), "reason": self.reason,
            "error": self.error, "node_id": self.node_id, "group": self.group,
            "installed_version": self.installed_version, "installed_name": self.installed_name,
            "installed_transfer": self.current, "confirmed": self.confirmed,
            "offered_version": offer.version if offer else None,
            "offered_transfer": offer.transfer if offer else None,
            "latest_version": latest, "title": offer.name if offer else self.installed_name,
            "release_summary": summary, "in_progress": busy,
            "update_percentage": round(self.progress) if busy else None,
        }

    def publish_status(self) -> None:
        with self._lock:
            payload = json.dumps(self.status())
            self._last_status = time.monotonic()
            busy = self.state in BUSY
            screen = UpdateProgress(f"Model {self.state}", self.progress if busy else None)
        self.hub.publish(screen)
        if self.conn.connected.is_set():
            self.conn.publish(f"{self.base}/{topics.MODEL_STATUS}", payload, qos=1, retain=True)

    def _set(self, state: str, reason: str = "", progress: float | None = None) -> None:
        with self._lock:
            self.state, self.reason = state, reason
            if progress is not None:
                self.progress = progress
        if state in ("failed", "rolled-back"):
            log.error("OTA: %s: %s", state, reason)
        else:
            log.info("OTA: %s%s", state, f" ({reason})" if reason else "")
        self.publish_status()

    def reject(self, what: str, problem: str) -> None:
        """Bad input changes nothing but the `error` field (and the log)."""
        log.warning("OTA: rejected %s: %s", what, problem)
        with self._lock:
            self.error = f"{what}: {problem}"
        self.publish_status()

    # --- offers ---------------------------------------------------------------------------

    def on_offer(self, topic: str, payload: bytes) -> None:
        scope = topic.removesuffix(f"/{topics.OFFER}")
        if not payload:
            self._withdrawn(scope)
            return
        try:
            offer = parse_offer(payload, scope, self.settings.max_model_bytes,
                                self.settings.max_chunk_bytes)
        except PackageError as exc:
            self.reject(f"offer on {topic}", str(exc))
            return
        with self._lock:
            if self.offer is not None and offer.transfer == self.offer.transfer:
                return
            if self.offer is not None and self.offer_verified and \
                    offer.pushed_at < self.offer_at:
                log.info("OTA: ignoring offer %s on %s: older than offer %s", offer.transfer,
                         topic, self.offer.transfer)
                return
            if self.worker is not None and self.worker.is_alive():
                log.info("OTA: offer %s waits for the install in progress", offer.transfer)
                self.queued = offer
                return
            self._take(offer)

    def _withdrawn(self, scope: str) -> None:
        """The owner cleared the retained offer: stop a download of it, forget it."""
        with self._lock:
            offer = self.offer
            if offer is None or offer.scope != scope or (
                    self.worker is not None and self.worker.is_alive()):
                return
            log.info("OTA: offer %s withdrawn", offer.transfer)
            self._drop_transfer()
            self.offer, self.progress = None, 0.0
            self._set("installed" if self._is_installed(offer) else "idle", "")

    def _take(self, offer: Offer, requested: bool = False) -> None:
        """Make `offer` the current one and decide what to do with it (lock held)."""
        self._drop_transfer()
        self.offer, self.error, self.progress = offer, "", 0.0
        self.offer_verified, self.offer_at = False, min(offer.pushed_at, time.time())
        log.info("OTA: offer %s: %s %s (%d bytes, %d chunks) on %s", offer.transfer, offer.name,
                 offer.version, offer.size, offer.chunks, offer.scope)
        if self.key is None:
            self._set("failed", f"{self.key_problem} (offered {offer.name} {offer.version})")
            return
        if self._is_installed(offer):
            self.offer_verified = True  # it was, when it was installed
            self._set("installed", "", 100.0)
            return
        refusal = None if requested else self.store.refusal(offer.transfer)
        if refusal:
            self._set(*refusal)
            return
        try:
            verify_manifest(offer.manifest, offer.signature, self.key)
        except PackageError as exc:
            self.store.mark_failed(offer.transfer, str(exc))
            self._set("failed", str(exc))
            return
        self.offer_verified = True
        if not offer.auto_install and not requested:
            self._set("idle", f"{offer.name} {offer.version} offered; install it from Home "
                      "Assistant")
            return
        self._start_download(offer)

    def _is_installed(self, offer: Offer) -> bool:
        return offer.transfer == self.current or (
            offer.manifest.get("sha256") == self.installed_sha
            and offer.version == self.installed_version)

    def on_install(self, topic: str, payload: bytes) -> None:
        """Home Assistant's update.install: install (or retry) the offered model."""
        if payload.strip() != INSTALL_PAYLOAD.encode():
            self.reject(f"command on {topic}", f"expected {INSTALL_PAYLOAD!r}")
            return
        with self._lock:
            offer = self.offer
            if offer is None:
                self.reject(f"command on {topic}", "no model is offered")
                return
            if self.state in BUSY:
                return
            self.store.forget_failure(offer.transfer)
            self._take(offer, requested=True)

    # --- transfer -------------------------------------------------------------------------

    def _start_download(self, offer: Offer) -> None:
        try:
            self.store.clean_staging(keep=offer.transfer)
            self.transfer = Transfer(offer, self.store.staging)
        except OSError as exc:
            self._set("failed", f"cannot write the staging file: {exc}")
            return
        self._set("downloading", "", self.transfer.progress)
        if self.transfer.complete:
            self._finish_download()
            return
        self.conn.handle(offer.chunk_filter(), self.on_chunk)

    def _drop_transfer(self) -> None:
        if self.transfer is not None:
            self.conn.unhandle(self.transfer.offer.chunk_filter())
            self.transfer.discard()
            self.transfer = None

    def on_chunk(self, topic: str, payload: bytes) -> None:
        with self._lock:
            transfer = self.transfer
            if transfer is None or not topic.startswith(
                    topics.chunk_topic(transfer.offer.scope, transfer.offer.transfer, "")):
                return
            try:
                added = transfer.add(topic.rsplit("/", 1)[1], payload)
                if added:
                    self.progress = transfer.progress
                    if transfer.complete:
                        self._finish_download()
                        return
            except ValueError as exc:
                transfer.rejected += 1
                self.reject(f"chunk on {topic}", str(exc))
                return
            except OSError as exc:
                self._drop_transfer()
                self._set("failed", f"cannot write the staging file: {exc}")
                return
            if added and time.monotonic() - self._last_status >= STATUS_EVERY_S:
                self.publish_status()

    def _finish_download(self) -> None:
        transfer = self.transfer
        assert transfer is not None
        self.conn.unhandle(transfer.offer.chunk_filter())
        transfer.close()
        self.state = "verifying"
        self.worker = threading.Thread(target=self._install, args=(transfer,),
                                       name="ota-install", daemon=True)
        self.worker.start()

    def _watch(self) -> None:
        """Ask again for missing chunks when none arrived for a while; give up eventually.

        Nothing may end this thread but `close()`: a node whose watchdog died would wait
        for a stalled transfer forever."""
        while not self._stop.wait(0.25):
            try:
                self._watch_once()
            except Exception:
                log.exception("OTA: transfer watchdog failed; it keeps watching")

    def _watch_once(self) -> None:
        """One look at the transfer (lock held): ask again, or give up."""
        with self._lock:
            t = self.transfer
            if t is None or self.state != "downloading" or t.complete or \
                    time.monotonic() - t.last_chunk < self.settings.chunk_timeout_s or \
                    not self.conn.connected.is_set():
                return
            t.requests += 1
            t.last_chunk = time.monotonic()
            missing = t.missing()
            if t.requests > self.settings.max_requests:
                self._drop_transfer()
                self._fail(t.offer, f"transfer stalled: {len(missing)} of {t.offer.chunks} "
                           f"chunks missing after {self.settings.max_requests} requests")
                return
            log.info("OTA: %d chunks missing; requesting them (request %d)", len(missing),
                     t.requests)
            self.conn.publish(f"{self.base}/{topics.MODEL}/{topics.REQUEST}",
                              encode_request(t.offer.transfer, missing), qos=1)
            # Subscribing again makes the broker re-send retained chunks.
            self.conn.unhandle(t.offer.chunk_filter())
            self.conn.handle(t.offer.chunk_filter(), self.on_chunk)

    # --- install --------------------------------------------------------------------------

    def _install(self, transfer: Transfer) -> None:
        offer = transfer.offer
        try:
            self._verify_and_swap(transfer)
        except Exception as exc:
            expected = isinstance(exc, PackageError | ModelError | OSError | ValueError)
            if not expected:
                log.exception("OTA: install failed")
            self.store.discard_slot(offer.transfer)
            transfer.discard()
            self._fail(offer, str(exc) if expected else f"unexpected error: {exc!r}")
        with self._lock:
            self.transfer = None if self.transfer is transfer else self.transfer
            queued, self.queued = self.queued, None
            if queued is not None and queued.transfer != offer.transfer:
                self._take(queued)

    def _fail(self, offer: Offer, reason: str) -> None:
        try:
            self.store.mark_failed(offer.transfer, reason)
            self.store.set_last(state="failed", reason=reason, transfer=offer.transfer,
                                version=offer.version)
        except OSError as exc:  # the same full disk: report the failure all the same
            log.error("OTA: cannot record the failure of %s: %s", offer.transfer, exc)
        self._set("failed", reason)

    def _verify_and_swap(self, transfer: Transfer) -> None:
        offer = transfer.offer
        maybe_die("staged")
        self._set("verifying", "", 100.0)
        assert self.key is not None
        transfer.verify(self.key)
        self.store.bump_attempts(offer.transfer)
        path = self.store.stage_slot(offer.transfer, transfer.part, offer.manifest,
                                     offer.signature)
        model = Model(path)
        maybe_die("loaded")
        self._set("self-test")
        summary = self_test(model, self.detector, self.settings.self_test_min_recall)
        log.info("OTA: %s", summary)
        maybe_die("self-tested")
        path = self.store.commit_slot(offer.transfer)
        model.path = path
        self.store.activate(offer.transfer)
        maybe_die("swapped")
        self.hub.publish(ModelInstalled(model))
        transfer.discard()
        with self._lock:
            self.current = offer.transfer
            self.installed_name, self.installed_version = model.name, model.version
            self.installed_sha = model.manifest.sha256
            self.confirmed = False
        self.store.forget_failure(offer.transfer)
        self.store.set_last(state="installed", reason=summary, transfer=offer.transfer,
                            version=model.version)
        self._set("installed", summary, 100.0)

    def on_model_running(self, event: ModelRunning) -> None:
        """Show that a trial ended (`confirm_when_running` ends it, with or without MQTT)."""
        with self._lock:
            was, self.confirmed = self.confirmed, not self.store.pointer().trial
        if self.confirmed != was:
            self.publish_status()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self.transfer is not None and self.state == "downloading":
                self.transfer.close()
