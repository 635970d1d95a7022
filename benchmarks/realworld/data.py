"""Data for the real-world programs: the real MNIST test split from ../shared, or
generated arrays of the published shape and scale (seeded: every run the same)."""

from __future__ import annotations

import gzip
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get(
    "GRADTRACE_SHARED", os.path.join(os.path.dirname(ROOT), "shared")
)
MNIST_DIR = os.path.join(SHARED, "data", "mnist")


def _idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def mnist(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test split: uint8 images (N, 28, 28) in 0..255 and int labels (N,).

    Raises FileNotFoundError naming the folder when ../shared/data/mnist is absent.
    """
    images = os.path.join(MNIST_DIR, "t10k-images-idx3-ubyte.gz")
    labels = os.path.join(MNIST_DIR, "t10k-labels-idx1-ubyte.gz")
    if not os.path.exists(images):
        raise FileNotFoundError(
            f"MNIST test split not found in {MNIST_DIR}; set GRADTRACE_SHARED to the "
            "folder that holds data/mnist/t10k-images-idx3-ubyte.gz"
        )
    x, y = _idx(images), _idx(labels).astype(np.int64)
    if n is not None:
        x, y = x[:n], y[:n]
    return x, y


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)
