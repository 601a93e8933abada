"""The one feature module: the article's profile against scipy; log-mel and speech-embedding
streaming vs batch."""

import numpy as np
import pytest
from scipy import signal

from edge_node.features import (
    FeatureConfigError,
    FeatureSpec,
    article_normalise,
    embedding_spec,
    ensemble_spec,
    logmel_spec,
    make_extractor,
)

pytestmark = pytest.mark.unit


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    tone = np.sin(2 * np.pi * (200 + 150 * np.sin(2 * np.pi * 3 * t)) * t)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)
    return (0.3 * tone * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_stft_profile_is_the_article_pipeline_computed_by_scipy():
    x = speechlike(1.0) * 0.01 + 0.002  # low level with DC, like the SPH0645
    ours = make_extractor({"profile": "stft129x124"}).compute(x)
    scaled = x / np.max(np.abs(x))
    scaled = 2.0 * (scaled - scaled.min()) / np.ptp(scaled) - 1.0
    _, _, reference = signal.stft(scaled, fs=16000, nperseg=255, noverlap=124, nfft=256)
    assert ours.shape == (129, 124)
    np.testing.assert_allclose(ours, np.abs(reference), rtol=1e-4, atol=1e-6)


def test_stft_profile_pads_short_clips_and_survives_silence():
    extractor = make_extractor({"profile": "stft129x124"})
    short = extractor.compute(speechlike(0.4))
    assert short.shape == (129, 124)
    assert np.all(extractor.compute(np.zeros(16000, np.float32)) == 0)
    assert np.all(extractor.compute(np.full(16000, 0.01, np.float32)) == 0)
    assert article_normalise(np.zeros(10)).shape == (16000,)


def test_logmel_shape_and_gain_invariance():
    extractor = make_extractor(logmel_spec())
    x = speechlike(1.0)
    loud, quiet = extractor.compute(x), extractor.compute(x * 0.01)
    assert loud.shape == (49, 40)
    np.testing.assert_allclose(loud, quiet, atol=2e-2)
    assert abs(float(loud.mean())) < 1e-4 and abs(float(loud.std()) - 1.0) < 1e-2


def test_pcen_follows_level_changes_within_the_window_and_ignores_overall_gain():
    extractor = make_extractor(logmel_spec(normalisation="pcen"))
    x = speechlike(1.0)
    loud, quiet = extractor.compute(x), extractor.compute(x * 0.1)
    assert loud.shape == (49, 40) and loud.min() >= 0.0
    # Automatic gain control: a 20 dB quieter window gives nearly the same numbers.
    assert float(np.abs(loud - quiet).mean()) < 0.1 * float(np.abs(loud).mean())
    # A sudden 20 dB step within the window stands out, then fades as the smoother follows it.
    step = np.concatenate([x[:8000] * 0.1, x[8000:]])
    out = extractor.compute(step).mean(axis=1)
    assert out[26] > 2 * out[20] and out[-1] < out[26]


@pytest.mark.parametrize("profile", [logmel_spec(), logmel_spec(normalisation="pcen"),
                                     FeatureSpec("stft129x124"), embedding_spec(),
                                     ensemble_spec()])
def test_streaming_features_equal_batch_features_on_every_window(profile):
    extractor = make_extractor(profile)
    stream = extractor.stream()
    audio = speechlike(3.0, seed=3)
    hop = 1600
    compared = 0
    for end in range(hop, audio.size + 1, hop):
        stream.push(audio[end - hop : end])
        if end >= 16000:
            expected = extractor.compute(audio[end - 16000 : end])
            np.testing.assert_allclose(stream.features(), expected, atol=1e-4)
            compared += 1
    assert compared == 21


def test_streaming_handles_odd_block_sizes():
    extractor = make_extractor(logmel_spec())
    stream = extractor.stream()
    audio = speechlike(2.0, seed=4)
    for start in range(0, 32000, 777):
        stream.push(audio[start : start + 777])
    stream.push(np.zeros(0, np.float32))
    # 32000 samples is on the 320-sample frame grid, so the window matches batch features.
    np.testing.assert_allclose(stream.features(), extractor.compute(audio[-16000:]), atol=1e-4)


@pytest.mark.parametrize("spec, message", [
    ({"profile": "mfcc"}, "unknown feature profile"),
    ({"profile": "logmel", "params": {"normalisation": "pcen9"}}, "normalisation"),
    ({"profile": "logmel", "params": {"bands": 40}}, "bad log-mel parameters"),
    ({"profile": "stft129x124", "params": {"n_fft": 512}}, "takes no parameters"),
    ({"params": {}}, "profile"),
    ({"profile": "speech-embedding", "params": {"step_ms": 45}}, "step_ms"),
    ({"profile": "speech-embedding", "params": {"clip_ms": 500}}, "too short"),
    ({"profile": "speech-embedding", "params": {"hop": 1}}, "bad speech-embedding"),
    ({"profile": "concat", "params": {"parts": []}}, "list of 'parts'"),
    ({"profile": "concat", "params": {"parts": [{"profile": "concat"}]}}, "cannot be concat"),
    ({"profile": "concat", "params": {"parts": [
        {"profile": "logmel", "params": {"clip_ms": 1000}},
        {"profile": "logmel", "params": {"clip_ms": 1500}}]}}, "one window length"),
    ({"profile": "concat", "params": {"parts": [
        {"profile": "logmel", "scale": "big"}]}}, "scale must be a number"),
])
def test_bad_feature_specs_are_refused_clearly(spec, message):
    with pytest.raises(FeatureConfigError, match=message):
        make_extractor(spec)


def test_speech_embedding_window_shape_and_exact_streaming_through_silence():
    """The mel graph floors at 80 dB below its input's peak, so digital silence next to speech
    is where a different block grid would show; streaming and batch must still agree."""
    extractor = make_extractor(embedding_spec())
    assert extractor.shape == (4, 96) and extractor.frame_step == 800
    assert not extractor.is_spectrogram
    audio = np.concatenate([np.zeros(8000, np.float32), speechlike(1.5, seed=5),
                            np.zeros(12000, np.float32), 1e-6 * speechlike(1.0, seed=6)])
    for hop in (800, 4000):
        stream = extractor.stream()
        for end in range(hop, audio.size + 1, hop):
            stream.push(audio[end - hop : end])
            window = np.concatenate([np.zeros(16000, np.float32), audio[:end]])[-16000:]
            np.testing.assert_array_equal(stream.features(), extractor.compute(window))


def test_speech_embedding_tells_sounds_apart():
    extractor = make_extractor(embedding_spec())
    tone, other = (extractor.compute(speechlike(1.0, seed=s)) for s in (1, 2))
    hiss = extractor.compute(0.1 * np.random.default_rng(0).standard_normal(16000))
    assert np.abs(tone - other).max() < np.abs(tone - hiss).max()


def test_speech_embedding_without_its_package_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyopen_wakeword", None)
    with pytest.raises(FeatureConfigError, match="pyopen-wakeword"):
        make_extractor(embedding_spec())


def test_concat_features_are_the_scaled_parts_side_by_side():
    ensemble = make_extractor(ensemble_spec())
    # The ensemble takes one embedding per 100 ms hop (2.1.0), not the profile's default two.
    logmel = make_extractor(logmel_spec())
    embedding = make_extractor(embedding_spec(step_ms=100))
    x = speechlike(1.0, seed=7)
    joined = ensemble.compute(x)
    assert ensemble.shape == (49 * 40 + 2 * 96,) and ensemble.frame_step == 1600
    assert ensemble.part_shapes == [(49, 40), (2, 96)]
    np.testing.assert_array_equal(joined[: 49 * 40], logmel.compute(x).reshape(-1))
    np.testing.assert_allclose(joined[49 * 40 :], 0.1 * embedding.compute(x).reshape(-1),
                               rtol=1e-6)
