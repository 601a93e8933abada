"""Child process for the microphone tests: PortAudio reads the ALSA config only at start-up.

Usage: python vmic_capture.py MODE PARAMS_JSON RESULT_JSON, with ALSA_CONFIG_PATH and
VMIC_FILE set by the parent so that ALSA's "file" plugin plays a raw file as the microphone.
Parents (this module's caller, and the node processes the fault and doctor tests start) write
`ALSA_CONF` to the file ALSA_CONFIG_PATH names.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.audio import (
    AudioSettings,
    AudioSourceError,
    MicSource,
    list_input_devices,
    open_source,
    record,
)

ALSA_CONF = """pcm.vmic { type file  slave.pcm { type null }  file "/dev/null"
           infile { @func getenv vars [ VMIC_FILE ] default "/nonexistent.raw" }  format "raw" }
pcm.!default "vmic"
"""
"""An ALSA default device that plays the raw file VMIC_FILE names as a microphone."""


def run(mode: str, params: dict[str, Any], out: Path) -> dict[str, Any]:
    """Do one microphone action and describe what happened."""
    if mode == "devices":
        return {"devices": list_input_devices()}
    settings = AudioSettings(**params.get("settings", {}))
    if mode == "capture":
        with open_source("mic", settings) as source:
            assert isinstance(source, MicSource)
            blocks = [source.read() for _ in range(params["blocks"])]
            info = {
                "rate": source.rate,
                "channels": source.channels,
                "selected_channel": source.selected_channel,
                "device": source.device["name"],
                "frames_per_buffer": source.frames_per_buffer,
            }
        np.save(out.with_suffix(".npy"), np.concatenate(blocks))
        return info
    if mode == "record":
        with MicSource(settings) as source:
            record(source, params["seconds"], params["path"])
        return {}
    raise SystemExit(f"unknown mode {mode}")


def main() -> None:
    mode, params, out = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
    try:
        result = run(mode, params, out)
    except AudioSourceError as e:
        result = {"error": str(e)}
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
