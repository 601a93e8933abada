"""OTA settings: the `ota:` section of node.yaml, validated by `edge_node.config.build`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OtaSettings:
    """Model updates over MQTT; without `public_key` every pushed model is refused."""

    public_key: Path | None = None
    """The fleet owner's Ed25519 public key (PEM, from `kws-fleet keygen`); only models signed
    by its private key are installed."""
    models_dir: Path | None = None
    """Installed models, staging files and OTA state; defaults to
    `<mqtt.state_dir>/<node_id>-models`."""
    max_model_bytes: int = 64 * 1024 * 1024
    """Largest model accepted; bigger offers are refused before anything is downloaded."""
    max_chunk_bytes: int = 1024 * 1024
    """Largest chunk size an offer may announce."""
    chunk_timeout_s: float = 3.0
    """With chunks missing and none arriving for this long, ask for them again."""
    max_requests: int = 20
    """Give up on a transfer after this many unanswered requests for missing chunks."""
    self_test_min_recall: float = 0.25
    """Share of the commands in the bundled reference recording a new model must detect (with
    the right label, and no more wrong detections than right ones) to be installed."""

    def __post_init__(self) -> None:
        if self.max_model_bytes < 1024:
            raise ValueError("ota.max_model_bytes must be at least 1024")
        if not 256 <= self.max_chunk_bytes <= 16 * 1024 * 1024:
            raise ValueError("ota.max_chunk_bytes must be between 256 and 16777216")
        if self.chunk_timeout_s <= 0:
            raise ValueError("ota.chunk_timeout_s must be > 0")
        if self.max_requests < 1:
            raise ValueError("ota.max_requests must be >= 1")
        if not 0.0 <= self.self_test_min_recall <= 1.0:
            raise ValueError("ota.self_test_min_recall must be within 0..1")
