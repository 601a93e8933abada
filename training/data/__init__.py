"""Training data: the vocabulary, clips from synthetic voices, recorded people and real talk
(split by speaker), noise, augmentation, featurisation through `edge_node.features`, and the
streaming recordings that evaluation listens to and mining cuts windows from."""
