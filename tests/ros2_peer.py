"""The other end of the ROS 2 node in test_ros2.py, in its own process: publishes frames on the
node's input topic and saves the masks and overlays that come back.

It is what a ROS user writes, with default QoS everywhere (`create_publisher(..., 10)`,
`create_subscription(..., 10)`: reliable), and the labels topic read as a late subscriber
would (transient local). Each frame is published again every --period seconds until its mask
arrives (discovery may miss the first ones), the next frame only then; a reply is matched to
its frame by header.frame_id. It builds and reads the messages itself, not with the node's
conversion code. Writes OUT/mask_<i>.npy, OUT/overlay_<i>.npy, OUT/replies.json (headers,
encodings, the round trip in ms) and OUT/node.json (the labels and the first /diagnostics
status seen). Latency beside the Segmenter's (docs/ros2.md): `--repeat N`
sends every frame N times, and `--predict MODEL` times `Segmenter(MODEL).predict` on the same
frame in this process before each send, while the node waits.

    python tests/ros2_peer.py --topic /cam/image_raw --out out/peer a.png:bgr8 b.png:rgb8
"""

from __future__ import annotations

import argparse
import json
import time
from array import array
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from lgcnet_deploy import Segmenter

ROW_PADDING = 8  # bytes after every row of the rgb8 frames: the node must honour `step`


def make_message(frame: np.ndarray, kind: str):
    """An Image (bgr8, rgb8, mono8) or a CompressedImage (png) of a BGR frame."""
    if kind == "png":
        return CompressedImage(format="png", data=array("B", cv2.imencode(".png", frame)[1]
                                                        .tobytes()))
    pixels = {"bgr8": frame, "rgb8": frame[..., ::-1],
              "mono8": cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)}[kind]
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    pad = ROW_PADDING if kind == "rgb8" else 0
    rows = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1) if pad else rows
    return Image(height=h, width=w, encoding=kind, is_bigendian=0, step=rows.shape[1],
                 data=array("B", np.ascontiguousarray(rows).tobytes()))


def read_image(msg: Image) -> np.ndarray:
    channels = {"mono8": 1, "bgr8": 3}[msg.encoding]
    data = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
    pixels = data[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
    return pixels[..., 0] if channels == 1 else pixels


class Peer:
    def __init__(self, node, topic: str, replies_on: dict[str, str],
                 labels_topic: str = "segmentation/labels") -> None:
        self.node = node
        compressed = topic.endswith("/compressed")
        self.pub = node.create_publisher(CompressedImage if compressed else Image, topic, 10)
        self.replies: dict[str, dict[str, Image]] = {}
        for kind, name in replies_on.items():  # the node draws overlays only when asked
            node.create_subscription(Image, name, lambda m, k=kind: self._reply(k, m), 10)
        self.seen: dict[str, object] = {}
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(String, labels_topic,
                                 lambda m: self.seen.setdefault("labels", json.loads(m.data)),
                                 latched)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._diagnostics, 10)

    def _diagnostics(self, msg: DiagnosticArray) -> None:
        for s in msg.status:
            values = {kv.key: kv.value for kv in s.values}
            if values.get("frames_segmented", "0") != "0":  # one from after a frame
                self.seen.setdefault("diagnostics", {"name": s.name, "level": s.level[0],
                                                     "values": values})

    def _reply(self, kind: str, msg: Image) -> None:
        self.replies.setdefault(msg.header.frame_id, {}).setdefault(kind, msg)

    def exchange(self, msg, frame_id: str, want: tuple[str, ...], period: float,
                 deadline: float) -> float:
        """Publish `msg` until every reply in `want` came back; the round trip in ms from the
        last publish."""
        msg.header.frame_id = frame_id
        msg.header.stamp = self.node.get_clock().now().to_msg()
        sent = 0.0
        while not all(k in self.replies.get(frame_id, {}) for k in want):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {want} for frame {frame_id} (got "
                                   f"{sorted(self.replies.get(frame_id, {}))})")
            if time.perf_counter() - sent > period:
                sent = time.perf_counter()
                self.pub.publish(msg)
            rclpy.spin_once(self.node, timeout_sec=0.01)
        return (time.perf_counter() - sent) * 1e3


def _time_predict(seg: Segmenter, frame: np.ndarray) -> float:
    t0 = time.perf_counter()
    seg.predict(frame)
    return (time.perf_counter() - t0) * 1e3


def _summary(log: list[dict]) -> None:
    """Medians after the first tenth of the sends (warm-up)."""
    rest = log[len(log) // 10:]
    for key in ("round_trip_ms", "predict_ms"):
        values = [r[key] for r in rest if r[key] is not None]
        if values:
            print(f"{key}: median {np.median(values):.1f}, p90 "
                  f"{np.percentile(values, 90):.1f} over {len(values)} frames")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("frames", nargs="+", help="IMAGE:KIND, KIND one of bgr8 rgb8 mono8 png")
    ap.add_argument("--topic", default="image")
    ap.add_argument("--mask-topic", default="segmentation/mask")
    ap.add_argument("--overlay-topic", default="segmentation/overlay")
    ap.add_argument("--labels-topic", default="segmentation/labels")
    ap.add_argument("--no-overlay", action="store_true", help="wait for masks only")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--period", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--predict", metavar="MODEL", help="also time Segmenter(MODEL).predict")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rclpy.init()
    node = rclpy.create_node("lgcnet_test_peer")
    want = ("mask",) if args.no_overlay else ("mask", "overlay")
    topics = {"mask": args.mask_topic, "overlay": args.overlay_topic}
    peer = Peer(node, args.topic, {k: topics[k] for k in want}, args.labels_topic)
    seg = Segmenter(args.predict) if args.predict else None
    deadline = time.monotonic() + args.timeout
    log = []
    for i, spec in enumerate(args.frames):
        path, kind = spec.rsplit(":", 1)
        frame = cv2.imread(path, cv2.IMREAD_COLOR)
        msg = make_message(frame, kind)
        for r in range(args.repeat):
            frame_id = f"{i}.{r}"
            predict_ms = _time_predict(seg, frame) if seg else None
            ms = peer.exchange(msg, frame_id, want, args.period, deadline)
            got = peer.replies[frame_id]
            log.append({"frame": i, "kind": kind, "frame_id": frame_id, "round_trip_ms": ms,
                        "predict_ms": predict_ms,
                        "sent_stamp": [msg.header.stamp.sec, msg.header.stamp.nanosec],
                        **{k: {"encoding": m.encoding, "frame_id": m.header.frame_id,
                               "stamp": [m.header.stamp.sec, m.header.stamp.nanosec]}
                           for k, m in got.items()}})
        for k, m in peer.replies[frame_id].items():
            np.save(args.out / f"{k}_{i}.npy", read_image(m))
    (args.out / "replies.json").write_text(json.dumps(log, indent=1))
    while len(peer.seen) < 2 and time.monotonic() < deadline:  # labels, diagnostics
        rclpy.spin_once(node, timeout_sec=0.1)
    (args.out / "node.json").write_text(json.dumps(peer.seen, indent=1))
    _summary(log)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
