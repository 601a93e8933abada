"""The feature cache returns exactly the rows a fresh run computes, and only computes what it
lacks (no TensorFlow)."""

import logging

import numpy as np
import pytest

from edge_node.audio.wav import write_wav
from edge_node.features import logmel_spec
from training.data.augment import Augmenter, AugmentSettings
from training.data.dataset import Clip
from training.data.featurize import featurize, load_audio

pytestmark = pytest.mark.unit


@pytest.fixture
def clips(tmp_path):
    rng = np.random.default_rng(4)
    made = []
    for i, label in enumerate(["go", "up", "no", "_silence_"]):
        path = tmp_path / f"clip{i}.wav"
        write_wav(path, (rng.standard_normal(12000) * 0.1).astype(np.float32))
        made.append(Clip(path, label, "human", f"p{i}"))
    return made


def augmenter(p_resynth: float = 0.0) -> Augmenter:
    noise = np.random.default_rng(9).standard_normal(32000).astype(np.float32) * 0.01
    return Augmenter([noise], AugmentSettings(p_resynth=p_resynth))


def run(clips, cache, copies, aug=None):
    audio = load_audio(clips, workers=1)
    return featurize(audio, clips, range(len(clips)), logmel_spec(), aug or augmenter(), copies,
                     seed=3, workers=1, cache=cache)


def computed(caplog) -> str:
    return next(r.getMessage() for r in reversed(caplog.records)
                if "feature cache" in r.getMessage())


def test_cached_rows_are_the_rows_a_fresh_run_computes(clips, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="training.data.featurize")
    fresh = run(clips, None, 2)
    first = run(clips, tmp_path / "cache", 2)
    assert computed(caplog).startswith("features: 0 of 8 rows")
    again = run(clips, tmp_path / "cache", 2)
    assert computed(caplog).startswith("features: 8 of 8 rows")
    for got in (first, again):
        np.testing.assert_array_equal(got.x, fresh.x)
        np.testing.assert_array_equal(got.clip_index, fresh.clip_index)


def test_more_copies_reuse_the_rows_there_and_compute_only_the_new_ones(clips, tmp_path,
                                                                          caplog):
    caplog.set_level(logging.INFO, logger="training.data.featurize")
    run(clips, tmp_path / "cache", 1)
    more = run(clips, tmp_path / "cache", [3, 1, 1, 2])
    assert computed(caplog).startswith("features: 4 of 7 rows")
    np.testing.assert_array_equal(more.x, run(clips, None, [3, 1, 1, 2]).x)


def test_other_augmentation_or_an_edited_clip_is_not_served_from_the_cache(clips, tmp_path,
                                                                          caplog):
    caplog.set_level(logging.INFO, logger="training.data.featurize")
    run(clips, tmp_path / "cache", 1)
    run(clips, tmp_path / "cache", 1, aug=augmenter(p_resynth=0.5))
    assert computed(caplog).startswith("features: 0 of 4 rows")
    write_wav(clips[0].path, np.zeros(12000, np.float32))
    edited = run(clips, tmp_path / "cache", 1)
    assert computed(caplog).startswith("features: 3 of 4 rows")
    np.testing.assert_array_equal(edited.x, run(clips, None, 1).x)


def test_data_copied_again_moved_or_linked_keeps_its_rows(clips, tmp_path, caplog):
    """../shared is unpacked anew for each session (new file times), and `kws-train default
    --work B` reaches A's data through a link: the rows stay valid, and are served."""
    caplog.set_level(logging.INFO, logger="training.data.featurize")
    run(clips, tmp_path / "cache", 1)
    moved = tmp_path / "moved"
    moved.mkdir()
    for clip in clips:
        (moved / clip.path.name).write_bytes(clip.path.read_bytes())
    linked = tmp_path / "linked"
    linked.symlink_to(moved, target_is_directory=True)
    again = [Clip(linked / c.path.name, c.label, c.engine, c.voice) for c in clips]
    served = run(again, tmp_path / "cache", 1)
    assert computed(caplog).startswith("features: 4 of 4 rows")
    np.testing.assert_array_equal(served.x, run(clips, None, 1).x)
