"""What a training run is asked for: architectures, their features and the hyper-parameters.

Kept free of TensorFlow so the command line and recipes can name architectures cheaply."""

from __future__ import annotations

from dataclasses import dataclass

from edge_node.features import FeatureSpec, embedding_spec, ensemble_spec, logmel_spec
from edge_node.setting import check_limits, setting

ARCHITECTURES = ("tcresnet", "dscnn", "embedding_dnn", "ensemble", "article_cnn")
ENSEMBLE_MEMBERS = ("tcresnet", "embedding_dnn")
"""The members of `ensemble`, one per part of `edge_node.features.ensemble_spec`, in order."""
ENSEMBLE_JOINS = ("geometric", "mean")
"""How `ensemble` joins its members' outputs (`TrainSettings.ensemble_join`)."""
EMBEDDING_POOLINGS = ("mean", "flatten")
"""How the speech-embedding head reads a window's embeddings (`TrainSettings.embedding_pooling`)."""


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of one training run."""

    architecture: str = "tcresnet"
    """`tcresnet` (log-mel), `dscnn`, `embedding_dnn` (speech-embedding features),
    `ensemble` (both of the first and second, joined; concat features) or `article_cnn`
    (the article's CNN, stft129x124 features)."""
    epochs: int = setting(30, low=1)
    """Upper bound; early stopping usually ends sooner."""
    batch_size: int = setting(128, low=1)
    learning_rate: float = setting(3e-3, above=0.0, high=1.0)
    """Adam learning rate; a cosine schedule decays it over `epochs`."""
    patience: int = setting(6, low=1)
    """Epochs without validation improvement before stopping (best weights are restored)."""
    label_smoothing: float = setting(0.05, low=0.0, high=0.5)
    freq_warp: float = setting(0.0, low=0.0, high=0.5)
    """Online augmentation: each example's mel axis is stretched by a random factor within
    1 +/- this every epoch (vocal-tract-length perturbation in the feature domain). Spectrogram
    models only: `embedding_dnn` (and an ensemble's embedding member) ignores it."""
    time_warp: float = setting(0.0, low=0.0, high=0.5)
    """Online augmentation: each example's time axis is stretched about its centre by a
    random factor within 1 +/- this (speaking rate)."""
    mask_frames: int = setting(0, low=0)
    """Online SpecAugment: two time masks of up to this many frames each, drawn afresh for
    every example in every epoch (0 = off). Spectrogram models only, like the warps. Measured:
    better on unseen engines by the prior-scaled clip figure (which rewards a more cautious
    model), no gain in streaming; off in the recipe."""
    mask_bands: int = setting(0, low=0)
    """Online SpecAugment: two frequency masks of up to this many bands each (0 = off)."""
    weight_average: float = setting(0.0, low=0.0, high=0.99999)
    """When > 0, the momentum of an exponential moving average of the weights, updated every
    batch; validation, early stopping and the returned model use the averaged weights (0 = off).
    Averaged weights sit in flatter minima, which transfer better to unseen voices."""
    distill_teachers: int = setting(0, low=0)
    """When > 0, first train this many teachers (same recipe, other seeds), then train the
    model on their averaged probabilities mixed with the labels (0 = off): a seed ensemble's
    knowledge in one model of the same size. Measured like the masks: better on unseen
    engines by the prior-scaled clip figure, no gain in streaming; off in the recipe."""
    distill_weight: float = setting(0.7, low=0.0, high=1.0)
    """Share of the teachers' probabilities in the student's targets (the rest: the labels)."""
    mixup: float = setting(0.0, low=0.0, high=10.0)
    """When > 0, mixup (Zhang et al., 2018): every batch, each example is blended with another
    of the batch, features, targets and weights alike, by a share drawn from Beta(this, this)
    and folded so the example itself keeps the larger part (0 = off). Measured at 0.2 on the
    five speaker folds: fewer other words taken at argmax (2.0% against 2.7%) for 0.1 points
    fewer commands, the same at equal false accepts (96.6% against 96.5% at 2%, -1.4 to +1.3
    fold by fold): a move along the trade-off, so off in the recipe (BENCHMARKS.md)."""
    ensemble_join: str = "geometric"
    """How `ensemble` joins its members: `geometric` (softmax of their averaged logits: a
    command must convince both) or `mean` (their probabilities averaged, kws-default
    2.0.0-2.1.0). The members are trained apart either way, so only the join differs."""
    ensemble_temperature: float = setting(1.2, above=0.0)
    """The geometric join's logits are divided by this. It moves no model along its trade-off
    curve, only where on it each threshold lies: at 1.2 the node's threshold 0.6 gives about
    the false activations it gave with the mean join (a little fewer), so thresholds users
    set keep their meaning across the update (BENCHMARKS.md)."""
    tcresnet_width: float = setting(1.0, above=0.0, high=4.0)
    """Multiplier of the TC-ResNet's channel widths (16, 24, 32, 48): its capacity. The int8
    classifier grows about with its square (the node's budget is 150 KB)."""
    embedding_width: int = setting(64, low=8, high=1024)
    """Units of each of the speech-embedding head's two dense layers."""
    embedding_pooling: str = "mean"
    """How that head reads the window's embeddings: `mean` (their average: one view of the
    word) or `flatten` (all of them in order: it can tell a word alone in the window from one
    with speech before or after it, at the cost of steps x the first layer's weights). On 5
    speaker folds, `flatten` at 80 units (the same size as `mean` at 128) was no better
    (BENCHMARKS.md, "augmentation and the embedding head"): `mean` in the recipe."""
    seed: int = setting(1, low=0)


    def __post_init__(self) -> None:
        check_limits(self, "train")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"train.architecture must be one of {', '.join(ARCHITECTURES)}, "
                             f"got {self.architecture!r}")
        if self.embedding_pooling not in EMBEDDING_POOLINGS:
            raise ValueError(f"train.embedding_pooling must be one of "
                             f"{', '.join(EMBEDDING_POOLINGS)}, got {self.embedding_pooling!r}")
        if self.ensemble_join not in ENSEMBLE_JOINS:
            raise ValueError(f"train.ensemble_join must be one of {', '.join(ENSEMBLE_JOINS)}, "
                             f"got {self.ensemble_join!r}")

def features_for(architecture: str, normalisation: str = "mvn") -> FeatureSpec:
    """The feature profile an architecture is trained on."""
    if architecture == "article_cnn":
        return FeatureSpec("stft129x124")
    if architecture == "embedding_dnn":
        return embedding_spec()
    if architecture == "ensemble":
        return ensemble_spec(normalisation)
    return logmel_spec(normalisation=normalisation)


@dataclass(frozen=True)
class IsolationSettings:
    """How the isolation model is made."""

    version: str = "1.0.0"
    """The isolation model's version (its manifest; `edge-node doctor` shows it)."""
    before_ms: int = setting(1500, low=500, high=4000, unit="ms")
    """Audio the check sees before the moment the classifier fired: enough to hold the
    speech before a word inside a sentence, and the pause before a word said alone."""
    after_ms: int = setting(500, low=0, high=2000, unit="ms")
    """Audio after that moment the detector waits for (added to every detection's latency):
    the pause after a word said alone, or the talk that follows a word inside a sentence."""
    recordings: int = setting(16, low=1)
    """Training recordings, each a fresh draw of the training speakers' clips between
    excerpts of training talk, over training noise."""
    validation_recordings: int = setting(2, low=1)
    """Recordings made with other seeds, on which the threshold is chosen."""
    minutes: float = setting(45.0, above=0.0, unit="min")
    """Length of each recording."""
    width: int = setting(16, low=4, high=128)
    """Channels of each convolution."""
    epochs: int = setting(15, low=1)
    batch_size: int = setting(64, low=1)
    keep_alone: float = setting(0.98, above=0.5, high=0.999)
    """The least share of the validation words said alone the chosen threshold must let
    through; among such thresholds, the one that tells them from other moments best."""
    seed: int = 0

    def __post_init__(self) -> None:
        check_limits(self, "isolation")
