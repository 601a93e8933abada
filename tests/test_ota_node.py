"""OTA end to end: real Mosquitto, real `edge-node run` processes, the real pusher.

Every node listens on stdin; `listen()` plays the bundled recording and returns what it
detected, with the model version that detected it."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from edge_node.model import DEFAULT_MODEL, file_sha256
from edge_node.ota.install import ModelStore
from provisioning.cli import main as fleet
from tests.support.mqtt_broker import Subscriber
from tests.support.node_imports import modules_after_run
from tests.support.ota_node import OtaNode, model_status, node_config
from tests.support.ota_packages import bad_packages, good

pytestmark = pytest.mark.integration

OLD = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())["version"]
NEW = f"{int(OLD.split('.')[0]) + 1}.0.0"
"""A version newer than the bundled model's."""


@pytest.fixture
def nodes(tmp_path):
    started: list[OtaNode] = []

    def start(node_id: str, *args, fault: str = "", **kwargs) -> OtaNode:
        node = OtaNode(tmp_path / node_id, node_config(tmp_path / node_id, node_id, *args,
                                                       **kwargs), fault)
        started.append(node)
        return node

    yield start
    for node in started:
        node.close()


def test_a_signed_model_installs_live_and_is_kept_across_a_restart(
        ota_broker, ota_keys, nodes, tmp_path, capsys):
    node = nodes("kitchen", ota_broker, ota_keys.public, group="downstairs")
    sub = Subscriber(ota_broker, "kws/kitchen/#", "homeassistant/#")
    model_status(sub, "kitchen", lambda s: s["installed_version"] == OLD)
    assert node.versions_heard() == {OLD}
    package = good(ota_keys, NEW).write(tmp_path / "v2.kwspkg")
    code = fleet(["push-model", str(package), "--group", "downstairs", "--mqtt-host",
                  "127.0.0.1", "--mqtt-port", str(ota_broker.port), "--username", "",
                  "--timeout", "60"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"kitchen: ok installed {NEW}" in out
    done = model_status(sub, "kitchen", lambda s: s["state"] == "installed")
    assert done["installed_version"] == done["latest_version"] == NEW
    assert done["in_progress"] is False and "self-test" in done["reason"]
    states = [m.json()["state"] for m in sub.on("kws/kitchen/model/status")]
    assert states.index("downloading") < states.index("verifying") < states.index("self-test")
    assert node.versions_heard() == {NEW}
    model_status(sub, "kitchen", lambda s: s["confirmed"], "trial confirmed")
    update = sub.last("homeassistant/update/kitchen/model/config").json()
    assert update["command_topic"] == "kws/kitchen/model/install"
    assert update["state_topic"] == "kws/kitchen/model/status"
    device = sub.wait_for(lambda ms: [m for m in ms if m.topic.endswith("command/config")
                                      and f"model {NEW}" in m.text], what="re-announced")
    assert device[-1].json()["device"]["sw_version"].endswith(f"(model {NEW})")

    node.restart()
    assert node.versions_heard() == {NEW}
    assert node.proc.log_has(f"starting with installed model kws-default {NEW}")


def test_bad_packages_are_refused_and_the_node_keeps_detecting(
        ota_broker, ota_keys, nodes, ota_pusher, tmp_path):
    node = nodes("hall", ota_broker, ota_keys.public)
    keyless = nodes("attic", ota_broker, None)
    sub = Subscriber(ota_broker, "kws/hall/model/status", "kws/attic/model/status")
    model_status(sub, "hall", lambda s: s["state"] == "idle")
    for name, (package, reason) in bad_packages(ota_keys, tmp_path).items():
        offer, results = ota_pusher.push(package, "kws/hall/model", {"hall"}, timeout=30,
                                         chunk_size=8192)
        assert not results[0].ok and reason in results[0].detail, (name, results)
        last = model_status(sub, "hall", lambda s, t=offer.transfer: s["offered_transfer"] == t
                            and s["state"] == "failed")
        assert reason in last["reason"] and last["installed_version"] == OLD, name
        assert reason in last["release_summary"]
    offer, results = ota_pusher.push(good(ota_keys, "3.0.0"), "kws/attic/model", {"attic"},
                                     timeout=30)
    assert "no OTA public key configured" in results[0].detail
    assert keyless.versions_heard() == {OLD}

    before = model_status(sub, "hall", lambda s: True)
    huge = 10 ** 12
    oversize = {**offer.to_json(), "size": huge, "chunk_size": 1 << 16,
                "chunks": -(-huge // (1 << 16)), "manifest": {**offer.manifest, "size": huge}}
    for payload in (b"{not json", b"[]", json.dumps({"transfer": "ab", "size": 1}).encode(),
                    json.dumps(oversize).encode()):
        ota_pusher.client.publish("kws/hall/model/offer", payload, qos=1).wait_for_publish(5)
        before = model_status(sub, "hall",
                              lambda s, b=before["error"]: s["error"] and s["error"] != b,
                              "error reported")
        assert before["state"] == "failed" and before["installed_version"] == OLD
    assert "exceeds this node's limit" in before["error"]
    assert node.versions_heard() == {OLD}
    assert node.proc.proc.poll() is None


def test_chunks_reordered_duplicated_missing_or_truncated_still_install(
        ota_broker, ota_keys, nodes, ota_pusher):
    node = nodes("porch", ota_broker, ota_keys.public)
    sub = Subscriber(ota_broker, "kws/porch/model/#")
    model_status(sub, "porch", lambda s: s["state"] == "idle")

    package = good(ota_keys, "4.0.0")
    offer = ota_pusher.offer_for(package, "kws/porch/model", 4096, auto_install=False)
    order = list(range(offer.chunks)) * 2
    random.Random(1).shuffle(order)
    ota_pusher.publish_offer(offer)
    ota_pusher.publish_chunks(offer, package.model, order)
    offered = model_status(sub, "porch", lambda s: s["offered_version"] == "4.0.0")
    assert offered["state"] == "idle" and offered["latest_version"] == "4.0.0"
    assert offered["installed_version"] == OLD
    sub.publish("kws/porch/model/install", "install")
    assert ota_pusher.wait(offer, {"porch"}, 30)[0].ok

    package = good(ota_keys, "5.0.0")
    offer = ota_pusher.offer_for(package, "kws/porch/model", 4096)
    ota_pusher.serve(offer, package.model)
    ota_pusher.publish_offer(offer)
    ota_pusher.publish_chunks(offer, package.model, [i for i in range(offer.chunks) if i % 3])
    assert ota_pusher.wait(offer, {"porch"}, 30)[0].ok
    request = json.loads(sub.last("kws/porch/model/request").payload)
    assert request["transfer"] == offer.transfer and request["missing"] == list(
        range(0, offer.chunks, 3))

    package = good(ota_keys, "6.0.0")
    offer = ota_pusher.offer_for(package, "kws/porch/model", 4096)
    ota_pusher.serve(offer, package.model)
    ota_pusher.client.publish(f"{offer.scope}/chunk/{offer.transfer}/2",
                              ota_pusher.chunk(offer, package.model, 2)[:100], qos=1, retain=True)
    ota_pusher.publish_chunks(offer, package.model, [i for i in range(offer.chunks) if i != 2])
    ota_pusher.publish_offer(offer)
    assert ota_pusher.wait(offer, {"porch"}, 30)[0].ok
    errors = {s["error"] for s in (m.json() for m in sub.on("kws/porch/model/status"))}
    assert f"chunk on {offer.scope}/chunk/{offer.transfer}/2: chunk 2 has 100 bytes, " \
           "expected 4096" in errors
    assert node.versions_heard() == {"6.0.0"}
    sub.publish("kws/porch/model/offer", b"", retain=True)
    withdrawn = model_status(sub, "porch", lambda s: s["offered_version"] is None, "withdrawn")
    assert withdrawn["state"] == "installed" and withdrawn["installed_version"] == "6.0.0"


def test_a_wrong_hash_in_the_chunks_is_refused(ota_broker, ota_keys, nodes, ota_pusher):
    node = nodes("cellar", ota_broker, ota_keys.public)
    package = good(ota_keys, "7.0.0")
    offer = ota_pusher.offer_for(package, "kws/cellar/model", 8192)
    flipped = bytearray(package.model)
    flipped[10000] ^= 0xFF
    ota_pusher.publish_offer(offer)
    ota_pusher.publish_chunks(offer, bytes(flipped))
    result = ota_pusher.wait(offer, {"cellar"}, 30)[0]
    assert not result.ok and "sha256 of the downloaded model does not match" in result.detail
    assert node.versions_heard() == {OLD}


KILL_STEPS = ("chunk", "staged", "loaded", "self-tested", "slot-written", "pointer-written",
              "swapped")


def test_a_kill_at_any_install_step_leaves_a_working_node_that_finishes(
        ota_broker, ota_keys, nodes, ota_pusher):
    package = good(ota_keys, "8.0.0")
    started = {step: nodes(f"kill-{step}", ota_broker, ota_keys.public, fault=step)
               for step in KILL_STEPS}
    sub = Subscriber(ota_broker, "kws/+/model/status")
    offers = {}
    for step in KILL_STEPS:
        model_status(sub, f"kill-{step}", lambda s: s["state"] == "idle")
        offers[step] = ota_pusher.offer_for(package, f"kws/kill-{step}/model", 4096)
        ota_pusher.serve(offers[step], package.model)
        ota_pusher.publish_offer(offers[step])
        ota_pusher.publish_chunks(offers[step], package.model)
    for step, node in started.items():
        assert node.killed() == -9, step
        assert node.proc.log_has(f"fault injection: SIGKILL at {step}")
        # What a power cut at this step leaves: the old model, or the complete new one.
        store = ModelStore(node.folder / "state" / f"kill-{step}-models")
        pointer = store.pointer()
        if step == "swapped":
            assert pointer.current == offers[step].transfer and pointer.trial
            assert file_sha256(store.model_path(pointer.current)) == package.manifest["sha256"]
        else:
            assert pointer.current is None, step
        node.restart()
    for step, node in started.items():
        result = ota_pusher.wait(offers[step], {f"kill-{step}"}, 60)[0]
        assert result.ok, (step, result, node.proc.log())
        assert node.versions_heard() == {"8.0.0"}, step
    chunks = offers["chunk"].chunks
    assert started["chunk"].proc.log_has(f"with {chunks // 2} of {chunks} chunks on disk")


def test_a_node_that_dies_starting_with_a_new_model_rolls_back_to_the_previous(
        ota_broker, ota_keys, nodes, ota_pusher):
    node = nodes("shed", ota_broker, ota_keys.public)
    sub = Subscriber(ota_broker, "kws/shed/model/status")
    assert ota_pusher.push(good(ota_keys, "8.0.0"), "kws/shed/model", {"shed"}, 60)[1][0].ok
    assert node.versions_heard() == {"8.0.0"}
    model_status(sub, "shed", lambda s: s["confirmed"], "v8 confirmed")

    sub.messages.clear()
    node.restart(fault="swapped")
    model_status(sub, "shed",
                 lambda s: s["installed_version"] == "8.0.0" and s["state"] == "installed")
    package = good(ota_keys, "9.0.0")
    offer = ota_pusher.offer_for(package, "kws/shed/model", 8192)
    ota_pusher.publish_offer(offer)
    ota_pusher.publish_chunks(offer, package.model)
    assert node.killed() == -9
    node.restart(fault="boot-trial")
    assert node.killed() == -9
    assert node.proc.log_has("starting with installed model kws-default 9.0.0 (on trial)")
    node.restart()
    back = model_status(sub, "shed", lambda s: s["state"] == "rolled-back" and s["offered_version"])
    assert "stopped while starting with model 9.0.0" in back["reason"]
    assert back["installed_version"] == "8.0.0" and back["offered_version"] == "9.0.0"
    assert node.versions_heard() == {"8.0.0"}


def test_push_to_all_reports_each_node_and_fails_for_an_offline_one(
        ota_broker, ota_keys, nodes, tmp_path, capsys):
    node = nodes("yard", ota_broker, ota_keys.public)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("nodes:\n  - {id: yard, name: Yard, area: Garden, group: outside}\n"
                         "  - {id: ghost, name: Ghost, area: Attic, group: outside}\n")
    package = good(ota_keys, "10.0.0").write(tmp_path / "v10.kwspkg")
    args = ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(ota_broker.port), "--username", ""]
    try:
        code = fleet(["push-model", str(package), "--all", "--inventory", str(inventory),
                      "--timeout", "4", *args])
        out = capsys.readouterr().out
        assert code == 1
        assert "yard: ok installed 10.0.0" in out
        assert "ghost: FAILED no result within 4 s (offline)" in out
        assert node.versions_heard() == {"10.0.0"}
        # The offer stays retained: a node that was offline installs it when it comes back.
        ghost = nodes("ghost", ota_broker, ota_keys.public)
        sub = Subscriber(ota_broker, "kws/ghost/model/status")
        model_status(sub, "ghost", lambda s: s["state"] == "installed"
                     and s["installed_version"] == "10.0.0", "late node installed")
        assert ghost.versions_heard() == {"10.0.0"}
    finally:
        # The fleet-wide offer is retained: remove it so no later node installs it.
        sub = Subscriber(ota_broker, "kws/_fleet/model/#")
        sub.wait_for(lambda ms: len(ms) > 1, what="retained fleet offer and chunks")
        for m in list(sub.messages):
            sub.publish(m.topic, b"", retain=True)
        sub.close()


def test_a_node_without_a_broker_never_imports_the_signature_checks_or_the_mqtt_client():
    """cryptography (~8 MB), paho and sqlite cost a Pi RAM (issue 22): a node that can hear of
    no update and publishes nowhere (no broker) opens its model store at start, but imports the
    signature checks and the MQTT client only with a broker."""
    silence = np.zeros(16000, dtype=np.int16).tobytes()
    loaded = modules_after_run(["run", "--source", "stdin", "--display", "none"],
                               ["cryptography", "paho", "sqlite3", "edge_node.mqtt.wiring",
                                "edge_node.ota.install", "edge_node.ota.package"],
                               stdin=silence)
    assert loaded == (0, ["edge_node.ota.install"])
