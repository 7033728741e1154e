"""`lgcnet ros2`: run the ROS 2 segmentation node (the `[ros2]` extra; docs/ros2.md)."""

from __future__ import annotations

import argparse

from lgcnet_deploy.cli.args import add_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ros2", help="run a ROS 2 node: sensor_msgs/Image in, class map and overlay out",
        description="Subscribe `image` (sensor_msgs/Image: bgr8, rgb8, mono8) or, with "
        "--compressed, `image/compressed`; publish the class map on `segmentation/mask` "
        "(mono8) and the overlay on `segmentation/overlay` (bgr8) under the input's header, "
        "the class names and palette on `segmentation/labels` (latched) and its health on "
        "/diagnostics. Reliable QoS (REP-2003; qos_overrides.* parameters change it), the "
        "input keeping one frame, and a worker that always takes the newest frame: a slow "
        "model drops frames, it never lags behind the camera. Runs until Ctrl-C. Options set "
        "the node's ROS parameters and win over --ros-args -p.",
        epilog="examples:\n  lgcnet ros2 --model lgcnet.onnx\n"
        "  lgcnet ros2 --model lgcnet.onnx --ros-args -r image:=/camera/image_raw\n"
        "  lgcnet ros2 --compressed --stats 100 --ros-args -r __ns:=/front -p alpha:=0.3",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None,
                   help="model file (.onnx, .pt, .engine) or shipped name; default: the "
                   "shipped CamVid model (parameter `model`)")
    p.add_argument("--alpha", type=float, default=None,
                   help="overlay colour weight, 0..1 (parameter `alpha`, default 0.5)")
    p.add_argument("--no-overlay", action="store_true",
                   help="publish only the mask (parameter `overlay`)")
    p.add_argument("--resize", default=None, metavar="{stretch,letterbox}",
                   help="frames of another aspect than the model's: stretch them (default; "
                   "warns once when nobody chose) or letterbox them (parameter `resize`)")
    p.add_argument("--compressed", action="store_true",
                   help="subscribe sensor_msgs/CompressedImage on image/compressed "
                   "(parameter `image_transport`)")
    p.add_argument("--stats", type=int, nargs="?", const=100, default=None, metavar="N",
                   help="log per-frame latency every N frames, default 100 (parameter "
                   "`stats_every`)")
    add_device(p)
    p.add_argument("--ros-args", nargs=argparse.REMAINDER, default=[], dest="ros_args",
                   metavar="ARG", help="last: ROS arguments (-r FROM:=TO, -p NAME:=VALUE, "
                   "--log-level ...)")
    p.set_defaults(func=run, device=None)  # a parameter only when given


def run(args: argparse.Namespace) -> int:
    from lgcnet_deploy.apps.ros2_node import spin

    flags = {"model": args.model, "device": args.device, "resize": args.resize,
             "alpha": args.alpha,
             "overlay": False if args.no_overlay else None,
             "image_transport": "compressed" if args.compressed else None,
             "stats_every": args.stats}
    argv = ["lgcnet", "--ros-args", *args.ros_args] if args.ros_args else ["lgcnet"]
    return spin(argv, {k: v for k, v in flags.items() if v is not None})
