"""The HEAR module (slicer.hear) with torch: the model as HEAR's validator wants it, results on
the audio's device, equality with the numpy API, and bad input raising a clear exception.
Skipped (and reported so) where torch is not installed."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="skipped: torch is not installed (pip install torch)")

import slicer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "results" / "models" / "slicer-demo")


@pytest.fixture(scope="module")
def model():
    return slicer.load_model(DEMO, threads=2)


def test_the_model_is_what_hear_asks_for(model):
    assert isinstance(model, torch.nn.Module)
    assert model.sample_rate == 16000
    assert isinstance(model.scene_embedding_size, int) and model.scene_embedding_size == 512
    assert model.timestamp_embedding_size == 512


def test_scene_and_timestamp_embeddings(model):
    audio = torch.rand(3, 32000) * 2 - 1
    scene = slicer.get_scene_embeddings(audio, model)
    assert scene.dtype == torch.float32 and scene.shape == (3, 512)
    emb, times = slicer.get_timestamp_embeddings(audio, model)
    assert emb.shape == (3, 25, 512) and times.shape == (3, 25)
    assert emb.dtype == torch.float32
    assert torch.allclose(times[:, 1:] - times[:, :-1], torch.tensor(80.0))
    assert float(times.max()) <= 2000.0
    numpy = slicer.Encoder(DEMO).embed(audio.numpy(), 16000)
    assert np.allclose(scene.numpy(), numpy, atol=1e-6)
    # Gradients are not tracked, with or without no_grad.
    with torch.no_grad():
        assert torch.equal(slicer.get_scene_embeddings(audio, model), scene)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="skipped: no CUDA device")
def test_cuda_audio_comes_back_on_its_device(model):
    audio = (torch.rand(2, 16000) * 2 - 1).cuda()
    assert slicer.get_scene_embeddings(audio, model).device == audio.device


@pytest.mark.parametrize(
    "audio, error, says",
    [
        (torch.zeros(2, 16000, dtype=torch.float64), TypeError, "float32"),
        (torch.zeros(1, 2, 16000), ValueError, "shape"),
        (np.zeros((2, 16000), np.float32), TypeError, "torch tensor"),
        (torch.full((1, 16000), float("nan")), ValueError, "finite"),
        (torch.zeros(1, 0), ValueError, "empty"),
    ],
)
def test_bad_audio_raises(model, audio, error, says):
    with pytest.raises(error, match=says):
        slicer.get_scene_embeddings(audio, model)


def test_a_missing_model_raises():
    with pytest.raises(FileNotFoundError):
        slicer.load_model("/nonexistent/model")
    with pytest.raises(ValueError, match="no model given"):
        slicer.load_model("")
