"""Models: Keras architectures, fitting (seeds, early stopping, online augmentation), export to
int8 `.tflite` with its manifest, and fine-tuning a model to a user's recordings."""
