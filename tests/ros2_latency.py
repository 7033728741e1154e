"""Round-trip latency of the ROS 2 node per frame size (docs/ros2.md), on loopback: for each
size, `lgcnet ros2` in its own process and the test peer (tests/ros2_peer.py, default QoS)
sending a CamVid frame resized to it, one at a time; prints a Markdown table of medians and
p90s after warm-up. A measurement, not a test.

    LGCNET_CAMVID=DIR python tests/ros2_latency.py --repeat 40 --sizes 480x640 720x1280
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
FRAME = "val/images/0016E5_07959.jpg"


def measure(size: tuple[int, int], repeat: int, model: str, work: Path,
            env: dict[str, str]) -> dict[str, float]:
    """Median and p90 round trip (ms) for `repeat` frames of `size`, after a tenth of warm-up."""
    frame = cv2.imread(str(Path(os.environ["LGCNET_CAMVID"]) / FRAME))
    path = work / f"{size[0]}x{size[1]}.png"
    cv2.imwrite(str(path), cv2.resize(frame, (size[1], size[0])))
    lgcnet = Path(sys.executable).parent / "lgcnet"
    log = (work / "node.log").open("w")
    node = subprocess.Popen([str(lgcnet), "ros2", "--model", model, "--no-overlay",
                             "--resize", "stretch"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        subprocess.run([sys.executable, str(HERE / "ros2_peer.py"), "--no-overlay",
                        "--repeat", str(repeat), "--period", "2", "--timeout", "900",
                        "--out", str(work / "out"), f"{path}:bgr8"], env=env, check=True,
                       capture_output=True)
    finally:
        node.send_signal(signal.SIGINT)
        node.wait(timeout=60)
    replies = json.loads((work / "out" / "replies.json").read_text())
    ms = np.array([r["round_trip_ms"] for r in replies][repeat // 10:])
    return {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)),
            "n": len(ms), "bytes": size[0] * size[1] * 3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["360x480", "480x640", "720x1280",
                                                    "1080x1920"])
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--model", default="lgcnet-camvid")
    ap.add_argument("--domain", type=int, default=77)
    args = ap.parse_args()
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_LOCALHOST_ONLY="1",
               ROS_DOMAIN_ID=str(args.domain))
    print("| frame (bgr8) | message | round trip median | p90 | frames |")
    print("| --- | --- | --- | --- | --- |")
    for text in args.sizes:
        h, w = (int(x) for x in text.split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            r = measure((h, w), args.repeat, args.model, Path(tmp), env)
        print(f"| {w}x{h} | {r['bytes'] / 1e6:.2f} MB | {r['median']:.1f} ms | "
              f"{r['p90']:.1f} ms | {r['n']} |", flush=True)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
