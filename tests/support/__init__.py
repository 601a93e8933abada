"""What the tests and the benches share, so neither imports the other's modules: the benches
(bench/) import from here, never from test modules, and the tests never import bench/.

A private Mosquitto (`mqtt_broker`); node processes: the real node with a fake systemd notify
socket (`node_process`), the real node streaming a spoken recording (`real_node`) or taking
audio on stdin for OTA (`ota_node`), and the node's MQTT side around a scripted agent
(`mqtt_node`); broker outages while the real node streams (`broker_outages`); fleet
rendering and its broker (`fleet_helpers`); loop-mounted small filesystems (`small_fs`); a
fake I2C bus under the real OLED driver (`fake_i2c`); signed OTA packages (`ota_packages`);
excerpts of the recorded-people data in ../shared (`shared_data`); test audio, synthesised
or from the TTS engines (`audio_signals`); the virtual-microphone child process
(`vmic_capture`); and the tier check every collected test must pass (`tiers`).
"""
