"""kws-edge-node: on-device voice-command recognition for Raspberry Pi and Home Assistant."""

__version__ = "0.1.0"
