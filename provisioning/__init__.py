"""`kws-fleet`: provision and monitor a fleet of kws-edge-node nodes over standard MQTT."""
