"""Fleet tools under hostile input. `kws-fleet status` survives any retained payload: a seeded
generator of hostile node topics (non-finite and huge numbers, wrong types, deep nesting, bytes
that are not UTF-8) on a real Mosquitto; the real command line prints its table and strict JSON
for the whole fleet. `render` refuses node ids Home Assistant would take for one and checks
every node before it writes anything."""

from __future__ import annotations

import json
import random
import re

import pytest

from provisioning.inventory import InventoryError
from tests.support.fleet_helpers import INVENTORY, kws_fleet, render_fleet
from tests.support.mqtt_broker import Subscriber, broker  # noqa: F401

pytestmark = pytest.mark.integration

NUMBERS = ["Infinity", "-Infinity", "NaN", "1e999", "-1e999", str(10 ** 400), "1e308",
           "true", "null", '"12"', "[]", "{}", "-0"]
FIELDS = {"status": ["latency_ms", "uptime_s", "model_name", "model_version", "group",
                     "detections", "level_dbfs"],
          "last_command": ["command", "confidence", "timestamp", "seq"]}


def hostile_payloads(rng: random.Random, count: int) -> list[tuple[str, bytes]]:
    """(topic key, payload) pairs; some whole-payload oddities, most JSON with odd fields."""
    odd = [b"Infinity", b"NaN", b"[" * 5000 + b"]" * 5000, b'{"a": ' * 3000 + b"1" + b"}" * 3000,
           b"\xff\xfe{}", b'"text"', b"12", b"", b"\x00" * 64, b'{"uptime_s": 1e999}']
    out: list[tuple[str, bytes]] = []
    for _ in range(count):
        key = rng.choice(["status", "last_command", "availability"])
        if key == "availability" or rng.random() < 0.3:
            out.append((key, rng.choice(odd + [b"online", b"offline", b"maybe"])))
            continue
        fields = rng.sample(FIELDS[key], rng.randint(1, len(FIELDS[key])))
        body = ", ".join(f'"{f}": {rng.choice(NUMBERS)}' for f in fields)
        out.append((key, ("{" + body + "}").encode()))
    return out


def strict_json(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_fleet_status_survives_any_retained_payload(broker, tmp_path):  # noqa: F811
    rng = random.Random(2323)
    owner = Subscriber(broker, "nothing/#")
    payloads = hostile_payloads(rng, 60)
    for k, (key, payload) in enumerate(payloads):
        owner.publish(f"kws/node{k:02d}/{key}", payload, retain=True)
    owner.publish("kws/kitchen/status", json.dumps({"model_name": "kws", "uptime_s": 5,
                                                   "latency_ms": 3.5}), retain=True)
    owner.publish("kws/kitchen/availability", "online", retain=True)
    args = ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port), "--username", "",
            "--wait", "5"]
    shown = kws_fleet("status", "--once", *args)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert "kitchen" in shown.stdout and "3.5 ms" in shown.stdout
    dumped = kws_fleet("status", "--json", *args)
    assert dumped.returncode == 0 and "Traceback" not in dumped.stderr, dumped.stderr
    nodes = {n["node_id"]: n for n in strict_json(dumped.stdout)["nodes"]}
    assert nodes["kitchen"]["latency_ms"] == 3.5 and nodes["kitchen"]["online"] is True
    assert len(nodes) >= 50, "every node that sent something is still listed"


@pytest.mark.parametrize(("ids", "message"), [
    (["kitchen-1", "kitchen_1"], "are one id to Home Assistant ('kitchen_1')"),
    (["Hall", "hall"], "are one id to Home Assistant ('hall')"),
])
def test_render_refuses_ids_that_collide_for_home_assistant_and_writes_nothing(tmp_path, ids,
                                                                               message):
    inventory = {**INVENTORY, "nodes": [{"id": i} for i in ids]}
    with pytest.raises(InventoryError, match=re.escape(message)):
        render_fleet(tmp_path, inventory)
    assert not (tmp_path / "out").exists()


def test_render_checks_every_node_before_writing_anything(tmp_path):
    inventory = {**INVENTORY, "nodes": [*INVENTORY["nodes"],
                                        {"id": "last", "config": {"detector":
                                                                  {"threshold": 0}}}]}
    with pytest.raises(InventoryError, match="node last: detector.threshold"):
        render_fleet(tmp_path, inventory)
    assert not (tmp_path / "out").exists(), "not even the passwords file"
