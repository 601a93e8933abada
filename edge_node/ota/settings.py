"""OTA settings: the `ota:` section of node.yaml, validated by `edge_node.config.build`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_node.setting import check_limits, setting


@dataclass(frozen=True)
class OtaSettings:
    """Model updates over MQTT; without `public_key` every pushed model is refused."""

    public_key: Path | None = None
    """The fleet owner's Ed25519 public key (PEM, from `kws-fleet keygen`); only models signed
    by its private key are installed."""
    models_dir: Path | None = None
    """Installed models, staging files and OTA state; defaults to
    `<mqtt.state_dir>/<node_id>-models`."""
    max_model_bytes: int = setting(64 * 1024 * 1024, low=1024, unit="B")
    """Largest model accepted; bigger offers are refused before anything is downloaded."""
    max_chunk_bytes: int = setting(1024 * 1024, low=256, high=16 * 1024 * 1024, unit="B")
    """Largest chunk size an offer may announce."""
    chunk_timeout_s: float = setting(3.0, above=0.0, unit="s")
    """With chunks missing and none arriving for this long, ask for them again."""
    max_requests: int = setting(20, low=1)
    """Give up on a transfer after this many unanswered requests for missing chunks."""
    self_test_min_recall: float = setting(0.25, low=0.0, high=1.0)
    """Share of the commands in the bundled reference recording a new model must detect (with
    the right label, and no more wrong detections than right ones) to be installed."""

    def __post_init__(self) -> None:
        check_limits(self, "ota")
