"""slicer's audio encoders from Python.

numpy only::

    import slicer
    encoder = slicer.Encoder("results/models/slicer-demo")   # an exported folder, a run folder,
    emb = encoder.embed(audio, 16000)                          # a Hub id, a .pth or .ckpt
    frames, times_ms = encoder.frames(audio, 16000)

The HEAR API (needs torch): ``load_model``, ``get_scene_embeddings``,
``get_timestamp_embeddings``, so that ``hear-validator slicer -m MODEL`` and heareval's runners
score slicer encoders. They live in :mod:`slicer.hear` and are imported from there on first use.
"""

from slicer._native import Encoder, __version__

__all__ = [
    "Encoder",
    "__version__",
    "load_model",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
]


def load_model(model_file_path="", **options):
    """HEAR: the encoder at ``model_file_path`` as a ``torch.nn.Module`` (see slicer.hear)."""
    from slicer import hear

    return hear.load_model(model_file_path, **options)


def get_scene_embeddings(audio, model):
    """HEAR: float32 ``[n, samples]`` torch audio to ``[n, scene_embedding_size]``."""
    from slicer import hear

    return hear.get_scene_embeddings(audio, model)


def get_timestamp_embeddings(audio, model):
    """HEAR: ``(embeddings [n, frames, d], timestamps [n, frames] in ms)``."""
    from slicer import hear

    return hear.get_timestamp_embeddings(audio, model)
