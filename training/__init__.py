"""Offline training pipeline: synthetic speech -> edge_node.features -> .tflite + manifest."""
