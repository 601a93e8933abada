"""Over-the-air model updates: signed packages, chunked MQTT transfer, safe install."""
