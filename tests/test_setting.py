"""Setting metadata is declared once on the fields and read by node.yaml validation, the MQTT
controls and Home Assistant discovery alike."""

from __future__ import annotations

import dataclasses

import pytest

from edge_node.config import ConfigError, NodeConfig, build
from edge_node.detector import DetectorSettings
from edge_node.mqtt import discovery
from edge_node.mqtt.controls import NUMBER_CONTROLS
from edge_node.setting import Meta, is_live, meta

pytestmark = pytest.mark.unit


def limited_fields() -> list[tuple[str, str, Meta]]:
    out = []
    for section in ("detector", "mqtt", "display", "ota", "audio"):
        cls = type(getattr(NodeConfig(node_id="n"), section))
        for f in dataclasses.fields(cls):
            m = meta(cls, f.name)
            if m.low is not None or m.high is not None or m.above is not None:
                out.append((section, f.name, m))
    return out


@pytest.mark.parametrize(("section", "name", "limits"), limited_fields())
def test_node_yaml_refuses_each_declared_limit(section, name, limits):
    outside = [v for v in (limits.low, limits.above) if v is not None][:1]
    bad = [outside[0] - 1] if outside else []
    if limits.high is not None:
        bad.append(limits.high + 1)
    for value in bad + [float("nan")]:
        with pytest.raises(ConfigError, match=f"{section}.*{name}"):
            build(NodeConfig, {"node_id": "n", section: {name: value}})


def test_edges_of_a_range_are_allowed():
    m = meta(DetectorSettings, "threshold")
    assert DetectorSettings(threshold=m.low).threshold == m.low
    assert DetectorSettings(threshold=m.high, thresholds={"stop": m.high}).threshold == m.high


def test_discovery_number_controls_show_the_fields_limits():
    info = discovery.NodeInfo("n", "n", "kws/n", "homeassistant", "m", "1", ("stop",))
    entities = discovery.entities(info)
    for key, name in NUMBER_CONTROLS.items():
        m = meta(DetectorSettings, name)
        payload = entities[("number", key)]
        assert (payload["min"], payload["max"], payload["step"]) == (m.low, m.high, m.step)
        assert payload.get("unit_of_measurement", "") == m.unit


@pytest.mark.parametrize("name", sorted(set(NUMBER_CONTROLS.values())))
def test_controls_parse_with_the_fields_limits(name):
    m = meta(DetectorSettings, name)
    assert m.parse(f"{m.high}") == m.high
    for text in (f"{m.high + 0.01}", f"{m.low - 0.01}", "nan", "inf"):
        with pytest.raises(ValueError):
            m.parse(text)


def test_live_settings_are_those_declared_live():
    config = NodeConfig(node_id="n")
    assert is_live(config, "detector.threshold") and is_live(config, "log_level")
    assert not is_live(config, "mqtt.host") and not is_live(config, "audio.gain_db")
