"""The fleet's topic design, in one place: the ACL generator, the status collector and `set`
derive their topics from here (and the OTA code uses the same layout).

    kws/<node_id>/...                   one node's topics (availability, status, controls, ...)
    kws/<node_id>/model/...             one node's model updates (offer, chunk/..., request,
                                        status, install)
    kws/_fleet/model/...                model updates for every node (fleet owner writes)
    kws/_group/<group>/model/...        model updates for one group (fleet owner writes)
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
NODE_MODEL_WRITES = ("request", "status")
"""The only model topics a node may publish: asking for chunks and reporting progress. Offers,
chunks and install commands come from the fleet owner (and install also from HA)."""


def node_base(node_id: str) -> str:
    return f"{ROOT}/{node_id}"


def node_topic(node_id: str, key: str) -> str:
    return f"{ROOT}/{node_id}/{key}"


def fleet_model() -> str:
    return f"{ROOT}/{FLEET}/model"


def group_model(group: str) -> str:
    return f"{ROOT}/{GROUP}/{group}/model"


def node_id_of(topic: str) -> str | None:
    """`kws/<id>/...` -> id (None for the fleet-wide topics and foreign ones)."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != ROOT or parts[1] in RESERVED_IDS:
        return None
    return parts[1]
