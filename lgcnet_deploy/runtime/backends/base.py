"""One small interface for every inference backend.

Lifecycle as in Polygraphy's runners: construct (load), `infer` many times, `close` once
(also via `with`). Subclasses implement `_load`, `_infer` and, if they hold resources,
`_close`. Pre/post-processing is the Segmenter's job: a backend takes a batch already in
`meta.input_format` at `meta.input_size` and returns the raw output (`meta.output_kind`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from lgcnet_deploy.core.errors import BadInputError, MissingFileError, WorkFailedError
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, ModelMeta


class BackendError(WorkFailedError):
    """A backend cannot load or run a model; the message says what to do."""


class Backend(ABC):
    """A loaded model on one device."""

    name: ClassVar[str]
    meta: ModelMeta
    dynamic_batch: bool = True
    max_batch: int | None = None  # most frames one infer() takes; None: any number

    def __init__(self, path: str | Path, device: str = "cpu", verify: bool = True) -> None:
        self.path = Path(path)
        self.verify = verify  # check the file against the digests it carries (where it does)
        if not self.path.is_file():
            raise MissingFileError(f"model file not found: {self.path}")
        self.device = device
        self._closed = False
        self.meta = self._load()

    @abstractmethod
    def _load(self) -> ModelMeta:
        """Load the model; return its metadata."""

    @abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch in `meta.input_format`; return logits or class map."""

    def _close(self) -> None:
        """Release resources (override when the backend holds any)."""

    def input_shape(self, batch: int) -> tuple[int, ...]:
        h, w = self.meta.input_size
        if self.meta.input_format == INPUT_UINT8_NHWC_BGR:
            return (batch, h, w, 3)
        return (batch, 3, h, w)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self._closed:
            raise BackendError(f"{self.name} backend for {self.path.name} is closed")
        expected = self.input_shape(batch.shape[0])
        if batch.shape != expected:
            raise BadInputError(f"{self.name}: batch shape {batch.shape} != model input {expected}")
        return self._infer(batch)

    def warmup(self, n: int = 2) -> None:
        dtype = np.uint8 if self.meta.input_format == INPUT_UINT8_NHWC_BGR else np.float32
        x = np.zeros(self.input_shape(1), dtype=dtype)
        for _ in range(n):
            self._infer(x)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, device={self.device!r})"
