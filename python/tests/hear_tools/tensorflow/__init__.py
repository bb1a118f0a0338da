"""A stand-in for TensorFlow, on PYTHONPATH only while hear-validator and heareval run here.

Both tools import TensorFlow at module level but use it only for TensorFlow models; slicer's
HEAR module returns torch modules. So this stand-in gives them the two names they touch on
that path (`Module`, for an isinstance check, and `test.is_gpu_available`) instead of a
1.3 GB install. A TensorFlow model would fail loudly here, which is what we want.
"""


class Module:
    """Nothing is a TensorFlow module here."""


class test:  # noqa: N801 (TensorFlow's own name)
    @staticmethod
    def is_gpu_available(*args, **kwargs):
        return False
