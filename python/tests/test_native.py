"""The numpy API of the wheel (slicer.Encoder), with numpy and pyarrow only: shapes and dtypes,
equality with `experiment embed --frames` on the same files and with BYOL-A's own pipeline on
its fixture, and bad input raising an exception that names the problem.

    SLICER_EXPERIMENT=target/release/experiment python -m pytest python/tests
"""

import json
import os
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import slicer

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "results" / "models" / "slicer-demo"
FIXTURES = ROOT / "tests" / "fixtures"


def experiment_binary():
    path = Path(os.environ.get("SLICER_EXPERIMENT", ROOT / "target" / "release" / "experiment"))
    if not path.is_file():
        pytest.skip(f"skipped: no experiment binary at {path} (build it, or set SLICER_EXPERIMENT)")
    return path


def tone(n, rate=16000, freq=440.0, seed=0):
    t = np.arange(n) / rate
    noise = np.random.default_rng(seed).normal(0, 0.05, n)
    return (0.4 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def write_wav(path, samples, rate=16000):
    """16-bit PCM, and the float32 samples a decoder reads back from it (x / 32768)."""
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return (pcm.astype(np.float32) / 32768.0).astype(np.float32)


def read_safetensors(path):
    """A safetensors file as {name: float32 array}, with numpy alone."""
    data = Path(path).read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__" or meta["dtype"] != "F32":
            continue
        start, end = meta["data_offsets"]
        out[name] = np.frombuffer(data[8 + size + start : 8 + size + end], "<f4").reshape(meta["shape"])
    return out


@pytest.fixture(scope="module")
def demo():
    return slicer.Encoder(str(DEMO), threads=2)


def test_shapes_dtypes_and_times(demo):
    audio = np.stack([tone(17120, seed=1), tone(17120, seed=2)])
    emb = demo.embed(audio, 16000)
    assert emb.shape == (2, demo.dim) and emb.dtype == np.float32
    frames, times = demo.frames(audio, 16000)
    assert frames.shape == (2, 13, demo.dim) and frames.dtype == np.float32
    assert times.shape == (2, 13) and times.dtype == np.float64
    assert demo.hop_ms == 80.0
    assert np.allclose(np.diff(times, axis=1), 80.0) and times[0, 0] == 35.0
    assert times.max() <= 1000 * 17120 / 16000
    # The pooled embedding is max + mean over the frames (the model's pooling).
    assert np.allclose(emb, frames.max(axis=1) + frames.mean(axis=1), atol=1e-5)
    # One clip as a 1-D array is the same as a batch of one.
    assert np.array_equal(demo.embed(audio[0], 16000), emb[:1])


def test_thread_count_does_not_change_results(demo):
    audio = np.stack([tone(24000, seed=3)])
    one = slicer.Encoder(str(DEMO), threads=1).embed(audio, 16000)
    assert np.allclose(one, demo.embed(audio, 16000), atol=1e-6)


def test_equal_to_experiment_embed_on_the_same_files(demo, tmp_path):
    binary = experiment_binary()
    decoded = {}
    for i, n in enumerate([16000, 17120, 30000]):
        path = tmp_path / f"clip{i}.wav"
        decoded[path.name] = write_wav(path, tone(n, freq=220.0 * (i + 1), seed=i))
    out = tmp_path / "emb.parquet"
    subprocess.run(
        [str(binary), "embed", "--model", str(DEMO), str(tmp_path), "--out", str(out), "--frames"],
        check=True,
        capture_output=True,
    )
    table = pq.read_table(out).to_pylist()
    assert len(table) == 3
    for row in table:
        samples = decoded[Path(row["path"]).name]
        emb = demo.embed(samples, 16000)[0]
        frames, times = demo.frames(samples, 16000)
        assert np.allclose(emb, np.array(row["embedding"], np.float32), rtol=1e-5, atol=1e-6)
        assert row["n_frames"] == frames.shape[1]
        assert np.allclose(frames[0].ravel(), np.array(row["frames"], np.float32), rtol=1e-5, atol=1e-6)
        assert np.array_equal(times[0], np.array(row["timestamps_ms"]))


def test_byol_a_checkpoint_gives_byol_as_own_embedding():
    fixture = read_safetensors(FIXTURES / "byola_pipeline.safetensors")
    mean, std = (float(x) for x in fixture["norm_stats"])
    encoder = slicer.Encoder(str(FIXTURES / "byola_format_d64.pth"), norm_mean=mean, norm_std=std)
    with wave.open(str(FIXTURES / "chirp_1s.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    audio = (pcm.astype(np.float32) / 32768.0).astype(np.float32)
    got = encoder.embed(audio, 16000)
    want = fixture["embedding"]
    assert got.shape == want.shape
    assert np.all(np.abs(got - want) <= 1e-4 + 1e-3 * np.abs(want)), np.abs(got - want).max()


@pytest.mark.parametrize(
    "audio, error, says",
    [
        (np.zeros((2, 16000), np.float64), TypeError, "float32"),
        ([[0.0] * 16000], TypeError, "float32"),
        (np.zeros((1, 2, 16000), np.float32), ValueError, "dimensions"),
        (np.zeros((0, 16000), np.float32), ValueError, "empty"),
        (np.zeros((1, 0), np.float32), ValueError, "empty"),
        (np.full((1, 16000), np.nan, np.float32), ValueError, "finite"),
        (np.zeros((1, 500), np.float32), ValueError, "at least"),
    ],
)
def test_bad_audio_raises_an_exception_that_names_the_problem(demo, audio, error, says):
    with pytest.raises(error, match=says):
        demo.embed(audio, 16000)
    with pytest.raises(error, match=says):
        demo.frames(audio, 16000)


def test_another_sample_rate_is_refused(demo):
    with pytest.raises(ValueError, match="44100 Hz, but this model takes 16000"):
        demo.embed(np.zeros((1, 44100), np.float32), 44100)


def test_bad_models_and_options_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        slicer.Encoder(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="norm_mean and norm_std"):
        slicer.Encoder(str(DEMO), norm_mean=1.0)
    with pytest.raises(ValueError, match="student"):
        slicer.Encoder(str(DEMO), weights="both")
    with pytest.raises(ValueError, match="at least 1"):
        slicer.Encoder(str(DEMO), threads=0)
    with pytest.raises(ValueError, match="normalisation"):
        slicer.Encoder(str(FIXTURES / "byola_format_d64.pth"))
