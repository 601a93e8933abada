"""The Keras pieces of training on toy data, each in a fresh interpreter: weight averaging,
distillation targets, online SpecAugment masks, mixup and the ensemble's joins."""

import importlib.util
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.training


def run_script(script: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


TOY_DATA = """
import numpy as np

rng = np.random.default_rng(0)
def toy(n):
    # class k: a bump on mel bands 4k..4k+3 over random frames, in noise
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 1, (n, 49, 40)).astype(np.float32)
    for i, k in enumerate(y):
        x[i, 10:40, 4 * k:4 * k + 4] += 2.0
    return x, y
x, y = toy(600)
xv, yv = toy(200)
"""
"""Three classes of 49x40 "spectrograms" a model learns in a few epochs: x, y (600), xv, yv."""

WEIGHT_AVERAGE_SCRIPT = TOY_DATA + """
import json
from training.models.settings import TrainSettings
from training.models.train import fit

out = {}
for momentum in (0.0, 0.9):
    settings = TrainSettings(epochs=3, batch_size=32, seed=3, weight_average=momentum)
    model, history, _ = fit(x, y, np.ones(len(y)), xv, yv, 3, settings, verbose=0)
    pred = model.predict(xv[..., None], verbose=0).argmax(axis=1)
    out[str(momentum)] = {"accuracy": float(np.mean(pred == yv)),
                          "best_val": max(history["val_accuracy"]),
                          "weights": float(sum(np.abs(w).sum() for w in model.get_weights()))}
print(json.dumps(out))
"""


def tensorflow_script_result(script: str) -> dict:
    """Run a script that prints one JSON line in a fresh interpreter and return what it
    printed last: TensorFlow imported into the test process would break the tflite-runtime
    interpreters later tests create (platform notes: "vector::reserve")."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed")
    done = run_script(script)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_weight_averaging_trains_and_returns_the_best_averaged_weights():
    result = tensorflow_script_result(WEIGHT_AVERAGE_SCRIPT)
    plain, averaged = result["0.0"], result["0.9"]
    assert averaged["weights"] != plain["weights"]
    # the model returned is the one validation picked: its accuracy is the best epoch's
    assert averaged["accuracy"] == pytest.approx(averaged["best_val"], abs=1e-6)
    assert averaged["accuracy"] > 0.9 and plain["accuracy"] > 0.9


DISTILL_SCRIPT = TOY_DATA + """
import json
from training.models.settings import TrainSettings
from training.models.train import fit, teacher_targets

settings = TrainSettings(epochs=3, batch_size=32, seed=3, distill_teachers=2, distill_weight=0.6)
targets = teacher_targets(x, y, np.ones(len(y)), xv, yv, 3, settings, 0, None)
# targets, not labels, are what a model learns: classes 0 and 1 swapped in them come out swapped
swapped = np.eye(3, dtype=np.float32)[np.array([1, 0, 2])[y]]
plain = TrainSettings(epochs=3, batch_size=32, seed=3)
model, _, _ = fit(x, y, np.ones(len(y)), xv, np.array([1, 0, 2])[yv], 3, plain, verbose=0,
                  targets=swapped)
pred = model.predict(xv[..., None], verbose=0).argmax(axis=1)
student, _, _ = fit(x, y, np.ones(len(y)), xv, yv, 3, settings, verbose=0)
print(json.dumps({
    "row_sums": [float(targets.sum(axis=1).min()), float(targets.sum(axis=1).max())],
    "label_share_min": float(targets[np.arange(len(y)), y].min()),
    "soft_rows": float(np.mean(targets.max(axis=1) < 0.999)),
    "argmax_is_label": float(np.mean(targets.argmax(axis=1) == y)),
    "swapped_accuracy": float(np.mean(pred == np.array([1, 0, 2])[yv])),
    "student_accuracy": float(np.mean(
        student.predict(xv[..., None], verbose=0).argmax(axis=1) == yv))}))
"""


def test_distillation_targets_mix_teacher_probabilities_with_labels_and_are_learned():
    result = tensorflow_script_result(DISTILL_SCRIPT)
    assert result["row_sums"] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert result["label_share_min"] >= 0.4 - 1e-6  # 1 - distill_weight of the label, at least
    assert result["soft_rows"] > 0.5  # the teachers' doubt is in the targets
    assert result["argmax_is_label"] > 0.9
    assert result["swapped_accuracy"] > 0.9
    assert result["student_accuracy"] > 0.9


MASK_SCRIPT = """
import json
import numpy as np
import tensorflow as tf
from training.models.train import mask_features

x = tf.ones([64, 49, 40, 1])
draws = [mask_features(x, 10, 8, seed=4).numpy()[..., 0] for _ in range(2)]
out = {"values": sorted({float(v) for v in np.unique(draws[0])}),
       "frames": [int((d.sum(axis=2) == 0).sum(axis=1).max()) for d in draws],
       "bands": [int((d.sum(axis=1) == 0).sum(axis=1).max()) for d in draws],
       "masked_share": float(1 - draws[0].mean()),
       "fresh": bool(not np.array_equal(draws[0], draws[1])),
       "off": bool(np.array_equal(mask_features(x, 0, 0, seed=4).numpy(), x.numpy()))}
print(json.dumps(out))
"""


def test_online_masks_blank_random_stripes_anew_every_draw():
    result = tensorflow_script_result(MASK_SCRIPT)
    assert result["values"] == [0.0, 1.0]
    assert max(result["frames"]) <= 20 and max(result["bands"]) <= 16  # two stripes each
    assert min(result["frames"]) >= 10 and min(result["bands"]) >= 8  # some example got wide ones
    assert 0.1 < result["masked_share"] < 0.6
    assert result["fresh"] and result["off"]


MIXUP_SCRIPT = """
import json
import numpy as np
import tensorflow as tf
from training.models.train import mix_batch

n = 256
x = tf.constant(np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 4, 3, 1),
                np.float32))
y = tf.one_hot(np.arange(n) % 4, 4)
w = tf.constant(np.where(np.arange(n) % 2 == 0, 1.0, 3.0).astype(np.float32))
draws = [mix_batch(x, y, w, 0.4, seed=5) for _ in range(2)]
mx, my, mw = (v.numpy() for v in draws[0])
own = my[np.arange(n), np.arange(n) % 4]
out = {"row_sums": [float(v) for v in np.unique(np.round(my.sum(axis=1), 5))],
       "own_share_min": float(own.min()),
       "mixed_rows": float(np.mean(own < 0.99)),
       "constant_over_features": bool(np.allclose(mx, mx[:, :1, :1, :1])),
       "weights_in_range": bool(mw.min() >= 1.0 - 1e-6 and mw.max() <= 3.0 + 1e-6),
       "fresh": bool(not np.array_equal(mx, draws[1][0].numpy()))}
print(json.dumps(out))
"""


def test_mixup_blends_each_example_mostly_with_itself_anew_every_draw():
    result = tensorflow_script_result(MIXUP_SCRIPT)
    assert result["row_sums"] == [1.0]  # targets stay distributions
    assert result["own_share_min"] >= 0.5 - 1e-6  # each row keeps the larger part of itself
    assert result["mixed_rows"] > 0.3  # and Beta(0.4, 0.4) mixes many of them
    assert result["constant_over_features"]  # features blended as wholes, by one share per row
    assert result["weights_in_range"] and result["fresh"]


JOIN_SCRIPT = """
import json
import numpy as np
from tensorflow import keras
from training.models.architectures import build, embedding_dnn, ensemble, tc_resnet

shapes = [(49, 40), (2, 96)]
members = [tc_resnet(shapes[0], 4), embedding_dnn(shapes[1], 4)]
rng = np.random.default_rng(2)
for member in members:  # random output layers, so that the members disagree
    head = member.get_layer("probabilities")
    head.set_weights([rng.normal(0.0, 1.0, w.shape).astype(np.float32)
                      for w in head.get_weights()])
x = rng.normal(size=(16, 49 * 40 + 2 * 96, 1)).astype(np.float32)
a = members[0].predict(x[:, :1960].reshape(-1, 49, 40, 1), verbose=0)
b = members[1].predict(x[:, 1960:].reshape(-1, 2, 96, 1), verbose=0)
geometric = ensemble(members, shapes, "geometric").predict(x, verbose=0)
tempered = ensemble(members, shapes, "geometric", temperature=1.5).predict(x, verbose=0)
mean = ensemble(members, shapes, "mean").predict(x, verbose=0)
expected = np.sqrt(a * b) / np.sqrt(a * b).sum(axis=1, keepdims=True)
softer = (a * b) ** (1 / 3) / ((a * b) ** (1 / 3)).sum(axis=1, keepdims=True)
try:
    ensemble(members, shapes, "max")
    refused = False
except ValueError:
    refused = True
print(json.dumps({"geometric_error": float(np.abs(geometric - expected).max()),
                  "tempered_error": float(np.abs(tempered - softer).max()),
                  "same_ranking": bool((tempered.argmax(axis=1) == geometric.argmax(axis=1)).all()),
                  "mean_error": float(np.abs(mean - (a + b) / 2).max()),
                  "joins_differ": float(np.abs(geometric - mean).max()),
                  "members_differ": float(np.abs(a - b).max()),
                  "params": [ensemble(members, shapes, j).count_params()
                             for j in ("geometric", "mean")],
                  "refused": refused,
                  "wider": sorted({layer.filters for layer in build(
                      "tcresnet", shapes[0], 4, tcresnet_width=1.5)[0].layers
                      if isinstance(layer, keras.layers.Conv2D)}),
                  "head_units": [layer.units for layer in build(
                      "embedding_dnn", shapes[1], 4, embedding_width=128)[0].layers
                      if isinstance(layer, keras.layers.Dense)]}))
"""


def test_ensemble_joins_members_by_geometric_or_arithmetic_mean_with_the_same_weights():
    """The geometric join works on logits recovered from members trained with a softmax; the
    members' capacity follows the recipe's widths."""
    result = tensorflow_script_result(JOIN_SCRIPT)
    assert result["members_differ"] > 0.1
    assert result["geometric_error"] < 1e-5 and result["mean_error"] < 1e-5
    # a temperature of 1.5: the geometric mean to the power 1/1.5, the same argmax
    assert result["tempered_error"] < 1e-5 and result["same_ranking"]
    assert result["joins_differ"] > 0.01
    # the geometric join reuses each member's output layer: no new parameters to ship
    assert result["params"][0] == result["params"][1]
    assert result["refused"]
    # the recipe's capacity settings: TC-ResNet widths (16, 24, 32, 48) x 1.5, head units
    assert result["wider"] == [24, 36, 48, 72]
    assert result["head_units"] == [128, 128, 4]


POOLING_SCRIPT = """
import json
import numpy as np
from training.models.architectures import build

rng = np.random.default_rng(4)
steps = rng.normal(size=(8, 3, 96, 1)).astype(np.float32)
reordered = steps[:, ::-1]
out = {}
for pooling in ("mean", "flatten"):
    model, _ = build("embedding_dnn", (3, 96), 4, embedding_width=16, embedding_pooling=pooling)
    out[pooling] = {"params": model.count_params(),
                    "order_matters": float(np.abs(model.predict(steps, verbose=0)
                                                  - model.predict(reordered, verbose=0)).max())}
try:
    build("embedding_dnn", (3, 96), 4, embedding_pooling="max")
    out["refused"] = False
except ValueError:
    out["refused"] = True
print(json.dumps(out))
"""


def test_the_embedding_head_averages_the_windows_embeddings_or_reads_them_in_order():
    result = tensorflow_script_result(POOLING_SCRIPT)
    assert result["mean"]["order_matters"] < 1e-6
    assert result["flatten"]["order_matters"] > 1e-3
    # flattening widens only the first dense layer: 3 steps x 96 inputs instead of 96
    assert result["flatten"]["params"] - result["mean"]["params"] == 2 * 96 * 16
    assert result["refused"]
