"""What the tests and the benches share, so neither imports the other's modules.

Real components only: a private Mosquitto (`mqtt_broker`), real node processes (`node_process`,
`mqtt_node`, `ota_node`, `real_node`), loop-mounted small filesystems (`small_fs`), a fake I2C
bus under the real OLED driver (`fake_i2c`), signed OTA packages (`ota_packages`), excerpts of
the recorded-people data in ../shared (`shared_data`), synthesised test audio (`audio_signals`),
the virtual-microphone child process (`vmic_capture`) and broker outages while the real node
streams (`broker_outages`). The benches (bench/) import from here, never from test modules; the
tests never import bench/.
"""
