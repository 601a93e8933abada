"""Experiments over the training pipeline: one run (leave-one-engine-out + final model),
speaker-held-out folds over recorded people, and one recipe over several seeds."""
