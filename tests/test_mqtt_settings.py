"""The `mqtt:` section of node.yaml and the command-line overrides."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from edge_node.config import ConfigError, load_config
from edge_node.mqtt.extension import finite
from tests.support.mqtt_node import REPO


def config_with(tmp_path, text: str, **overrides):
    path = tmp_path / "node.yaml"
    path.write_text(text)
    return load_config(path, overrides)


@pytest.mark.unit
def test_defaults_derive_topics_and_client_id_from_the_node_id(tmp_path):
    mqtt = config_with(tmp_path, "node_id: hall\nmqtt: {host: broker.lan}\n").mqtt
    assert mqtt.enabled and mqtt.port == 1883 and not mqtt.tls.enabled
    assert (mqtt.topic_base("hall"), mqtt.client_id_for("hall")) == ("kws/hall", "kws-hall")
    assert mqtt.discovery_prefix == "homeassistant"
    assert mqtt.queue_path("hall") == mqtt.state_dir / "hall-queue.sqlite3"


@pytest.mark.unit
def test_command_line_overrides_win_over_node_yaml(tmp_path):
    config = config_with(tmp_path, "mqtt: {host: a, port: 1000, username: u}\n",
                         **{"mqtt.host": "b", "mqtt.port": 2000, "mqtt.password": "p",
                            "node_id": "n1", "mqtt.username": None})
    assert (config.node_id, config.mqtt.host, config.mqtt.port, config.mqtt.username,
            config.mqtt.password) == ("n1", "b", 2000, "u", "p")
    assert not load_config(None).mqtt.enabled


@pytest.mark.unit
def test_tls_and_custom_topics(tmp_path):
    mqtt = config_with(tmp_path, "mqtt:\n  host: h\n  base_topic: home/voice/hall\n"
                       "  tls: {ca_file: /etc/ca.crt, certfile: c.crt, keyfile: c.key}\n").mqtt
    assert mqtt.tls.enabled and str(mqtt.tls.keyfile) == "c.key"
    assert mqtt.topic_base("hall") == "home/voice/hall"


@pytest.mark.unit
@pytest.mark.parametrize(("text", "message"), [
    ("mqtt: {hots: x}", "unknown setting mqtt.hots"),
    ("mqtt: {port: 70000}", "not a TCP port"),
    ("mqtt: {port: '1883'}", "mqtt.port: expected an integer"),
    ("mqtt: {keepalive: 1}", "keepalive"),
    ("mqtt: {max_queued: 0}", "max_queued"),
    ("mqtt: {base_topic: kws/#}", "must not hold"),
    ("mqtt: {discovery_prefix: ''}", "must not be empty"),
    ("mqtt: {tls: {certfile: a.crt}}", "both certfile and keyfile"),
    ("mqtt: {tls: {certfile: a.crt, keyfile: a.key}}", "needs mqtt.tls.ca_file"),
    ("mqtt: {tls: {ca: x}}", "unknown setting mqtt.tls.ca"),
])
def test_invalid_mqtt_settings_are_reported_with_their_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        config_with(tmp_path, text + "\n")


@pytest.mark.unit
def test_status_numbers_are_always_valid_json_numbers():
    assert finite(-math.inf) == -120.0
    assert finite(math.nan, 0.0) == 0.0
    assert finite(-33.333) == -33.33
    assert finite(-500.0) == -120.0


@pytest.mark.integration
def test_forget_without_a_broker_is_a_clear_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "edge_node", "forget", "--node-id", "hall"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "forget needs a broker: set mqtt.host or --mqtt-host" in done.stderr
