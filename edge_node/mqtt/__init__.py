"""Home Assistant integration over MQTT.

Importing this package is cheap (no paho import) so `edge_node.config` can use its settings.
"""
