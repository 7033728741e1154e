"""What the ROS 2 node says about itself, kept free of rclpy so it is tested alone: the labels
message (class names and palette, for a consumer of the mask), the figures of its
`/diagnostics` status, and the watchdog for an input topic that has a publisher but sends no
frame."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.core.timing import Stats

LABELS_FORMAT = "lgcnet-labels/1"


def labels_json(meta: ModelMeta, model: str) -> str:
    """The labels topic's JSON: pixel value k of `segmentation/mask` is class k, drawn in
    colour k of the palette (RGB)."""
    return json.dumps({"format": LABELS_FORMAT, "model": model, "dataset": meta.dataset,
                       "classes": list(meta.classes),
                       "palette_rgb": [list(c) for c in meta.palette_rgb[: meta.num_classes]],
                       "mask_encoding": "mono8, pixel value = class index"})


@dataclass
class Health:
    """Counters the worker updates and the diagnostics timer reads (and resets per period)."""

    started: float = field(default_factory=time.monotonic)
    frames: int = 0
    skipped: int = 0  # frames this node could not read
    last_arrival: float | None = None
    _period_start: float = field(default_factory=time.monotonic)
    _period_frames: int = 0
    _latency_ms: list[float] = field(default_factory=list)

    def segmented(self, latency_ms: float) -> None:
        self.frames += 1
        self._period_frames += 1
        self._latency_ms.append(latency_ms)

    def period(self, dropped: int, now: float | None = None) -> tuple[int, list[tuple[str, str]]]:
        """(level 0 OK / 1 WARN, key-value pairs) for the period since the last call."""
        now = time.monotonic() if now is None else now
        seconds = max(now - self._period_start, 1e-9)
        latency = Stats.of(self._latency_ms) if self._latency_ms else None
        since = "never" if self.last_arrival is None else f"{now - self.last_arrival:.1f}"
        values = [("rate_hz", f"{self._period_frames / seconds:.2f}"),
                  ("latency_ms_median", f"{latency.p50:.1f}" if latency else "-"),
                  ("latency_ms_p90", f"{latency.p90:.1f}" if latency else "-"),
                  ("frames_segmented", str(self.frames)),
                  ("frames_dropped_for_newer", str(dropped)),
                  ("frames_skipped_unreadable", str(self.skipped)),
                  ("seconds_since_last_frame", since)]
        self._period_start, self._period_frames, self._latency_ms = now, 0, []
        return (1 if self.skipped else 0), values


@dataclass
class Silence:
    """Warn once per silent spell when the input topic has a publisher but no frame arrived
    for `after_s` seconds (a QoS mismatch, frames too large for the transport, a stalled
    camera); the spell ends with the next frame."""

    after_s: float
    _warned: bool = False

    def check(self, publishers: int, last_arrival: float | None, started: float,
              now: float | None = None) -> bool:
        """True when a warning is due now."""
        now = time.monotonic() if now is None else now
        if last_arrival is not None and now - last_arrival < self.after_s:
            self._warned = False
            return False
        quiet_since = started if last_arrival is None else last_arrival
        due = publishers > 0 and self.after_s > 0 and now - quiet_since >= self.after_s
        if due and not self._warned:
            self._warned = True
            return True
        return False
