"""Offline training pipeline: synthetic speech -> features (edge_node.features) -> .tflite + manifest."""
