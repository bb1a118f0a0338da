"""The HEAR API over slicer's encoders (https://hearbenchmark.com/hear-api.html).

``load_model(model_file_path, **options)`` takes whatever ``experiment embed --model`` takes
(an exported folder, a run folder, a Hub id in the offline cache, a BYOL-A ``.pth`` or a LAPE
``.ckpt``) and the options of :class:`slicer.Encoder` (``frontend``, ``weights``,
``norm_mean``, ``norm_std``, ``threads``, ``batch_size``). Without a path it reads the
environment variable ``SLICER_MODEL``.

Audio may live on any device: it is moved to the host for the Rust encoder, and the results
come back on its device. The scene embedding is the pooled embedding slicer's own evaluation
computes for a whole clip; the timestamp embeddings are the encoder's frames over the whole
clip in one pass (80 ms apart at 16 kHz), stamped in milliseconds at the centre of the audio
each pools.
"""

import os

import torch

from slicer._native import Encoder


class SlicerModel(torch.nn.Module):
    """A slicer encoder as the HEAR API wants it: a ``torch.nn.Module`` with
    ``sample_rate``, ``scene_embedding_size`` and ``timestamp_embedding_size``. It holds no
    torch parameters; the weights live in Rust."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.sample_rate = int(encoder.sample_rate)
        self.scene_embedding_size = int(encoder.dim)
        self.timestamp_embedding_size = int(encoder.dim)

    def forward(self, audio):
        return get_scene_embeddings(audio, self)

    def extra_repr(self):
        return repr(self.encoder)


def load_model(model_file_path="", **options):
    path = model_file_path or os.environ.get("SLICER_MODEL", "")
    if not path:
        raise ValueError(
            "no model given: pass a model path or Hub id (hear-validator slicer -m MODEL), "
            "or set SLICER_MODEL"
        )
    return SlicerModel(Encoder(str(path), **options))


def _host_audio(audio, model):
    if not isinstance(model, SlicerModel):
        raise TypeError(f"model must come from slicer.load_model, got {type(model).__name__}")
    if not isinstance(audio, torch.Tensor):
        raise TypeError(f"audio must be a torch tensor [n, samples], got {type(audio).__name__}")
    if audio.dtype != torch.float32:
        raise TypeError(f"audio must be float32, got {audio.dtype}")
    if audio.dim() != 2:
        raise ValueError(f"audio must have shape [n, samples], got {tuple(audio.shape)}")
    return audio.detach().to("cpu").contiguous().numpy()


def get_scene_embeddings(audio, model):
    host = _host_audio(audio, model)
    embeddings = model.encoder.embed(host, model.sample_rate)
    return torch.from_numpy(embeddings).to(audio.device)


def get_timestamp_embeddings(audio, model):
    host = _host_audio(audio, model)
    frames, times = model.encoder.frames(host, model.sample_rate)
    return (
        torch.from_numpy(frames).to(audio.device),
        torch.from_numpy(times.astype("float32")).to(audio.device),
    )
