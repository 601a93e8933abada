"""The topic layout of a node and its fleet, in one place: the node (MQTT, OTA, discovery),
the broker ACL, `kws-fleet status`, `set` and `push-model` all derive their topics from here.

    kws/<node_id>/...                   one node's topics (availability, status, controls, ...)
    kws/<node_id>/model/...             one node's model updates (offer, chunk/..., request,
                                        status, install)
    kws/_fleet/model/...                model updates for every node (fleet owner writes)
    kws/_group/<group>/model/...        model updates for one group (fleet owner writes)

A node's `mqtt.base_topic` may move its own topics elsewhere; the keys below it stay the same.
"""

from __future__ import annotations

ROOT = "kws"
FLEET = "_fleet"
GROUP = "_group"
RESERVED_IDS = frozenset({FLEET, GROUP})
"""Node ids that would collide with the fleet-wide topics."""
OWNER_USER = "kws-fleet"
"""The fleet owner's broker account: pushes models, collects status, changes settings."""
HA_USER = "homeassistant"
"""Home Assistant's broker account."""

AVAILABILITY = "availability"
"""`online` / `offline` (retained; `offline` is also the last will)."""
STATUS = "status"
"""Diagnostics JSON (retained): level, latency, uptime, detections, model."""
LAST_COMMAND = "last_command"
"""The last detection (retained, live only)."""
DETECTION = "detection"
"""Every detection with its sequence number, QoS 1, queued on disk while offline."""
EVENT = "event"
"""Home Assistant's event entity (live only)."""
TRIGGER = "trigger"
"""`trigger/<command>`: device triggers (live only)."""
ERROR = "error"
"""Answers to rejected control payloads."""
MODEL = "model"
"""Below a node's base, its group's and the fleet's: OTA model updates."""
OFFER, CHUNK, REQUEST, INSTALL = "offer", "chunk", "request", "install"
MODEL_STATUS = f"{MODEL}/{STATUS}"
NODE_MODEL_WRITES = (REQUEST, STATUS)
"""The only model topics a node may publish: asking for chunks and reporting progress. Offers,
chunks and install commands come from the fleet owner (and install also from HA)."""


def node_base(node_id: str) -> str:
    return f"{ROOT}/{node_id}"


def set_topic(base: str, key: str) -> str:
    """Where a control's new value is sent (its state is on `<base>/<key>`)."""
    return f"{base}/{key}/set"


def fleet_model() -> str:
    return f"{ROOT}/{FLEET}/{MODEL}"


def group_model(group: str) -> str:
    return f"{ROOT}/{GROUP}/{group}/{MODEL}"


def model_scopes(base: str, group: str) -> list[str]:
    """Prefixes whose model offers a node follows: its own, its group's, the fleet's."""
    return [f"{base}/{MODEL}", *([group_model(group)] if group else []), fleet_model()]


def offer_topic(scope: str) -> str:
    return f"{scope}/{OFFER}"


def chunk_topic(scope: str, transfer: str, index: int | str) -> str:
    """One chunk of a transfer; `index` "+" gives the filter for all of them."""
    return f"{scope}/{CHUNK}/{transfer}/{index}"


def node_id_of(topic: str) -> str | None:
    """`kws/<id>/...` -> id (None for the fleet-wide topics and foreign ones)."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != ROOT or parts[1] in RESERVED_IDS:
        return None
    return parts[1]
