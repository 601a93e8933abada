"""Offline training: recordings and synthetic speech -> features -> `.tflite` + manifest.

Subpackages, each depending only on the ones above it:

- `tts`: text-to-speech engines and their voices (espeak-ng, flite, festival, piper), accents,
  the LPC vocoder.
- `data`: vocabulary, datasets (synthetic, recorded people, real talk), noise, augmentation,
  featurisation, and the streaming recordings that test and mine.
- `evaluation`: scores in the node's own runtime, streaming detection, calibration, reports,
  plots and BENCHMARKS.md sections.
- `models`: architectures, fitting, export to int8 `.tflite`, fine-tuning to a user's voice.
- `experiments`: one training run (leave-one-engine-out + final), speaker folds, seeds.
- `recipe`: the default model's recipe as validated data (YAML in, YAML out), and its runner.
- `cli`: the `kws-train` command line.
"""
