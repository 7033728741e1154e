"""A ROS 2 node that segments camera frames: `lgcnet ros2`, or
`python -m lgcnet_deploy.apps.ros2_node --ros-args -p model:=...`.

It subscribes `image` (`sensor_msgs/Image`: bgr8, rgb8, mono8) or, with
`image_transport:=compressed`, `image/compressed` (`sensor_msgs/CompressedImage`), and publishes
the class map on `segmentation/mask` (mono8 class ids) and the overlay on
`segmentation/overlay` (bgr8), each under the input's header; the class names and palette once
on `segmentation/labels` (latched), and its rate, latency and drops on `/diagnostics`.

QoS by REP-2003: outputs reliable (the system default profile), so every subscriber, default
or sensor-data, receives them. The input is reliable too, keeping one frame: best-effort
delivery loses camera-size frames (640x480 and up, sent in many fragments), see docs/ros2.md.
Each topic's reliability, durability, history and depth are ROS parameters
(`qos_overrides.<topic>.<publisher|subscription>.*`). A camera faster than the model never
builds a queue: a worker thread always takes the newest frame; frames it had no time for are
counted as dropped.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import warnings

from lgcnet_deploy.core.errors import (
    EXIT_USER_INPUT,
    BadInputError,
    LgcnetError,
    MissingDependencyError,
)

try:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.exceptions import ParameterException
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.qos_overriding_options import QoSOverridingOptions
    from rclpy.signals import SignalHandlerOptions
    from rclpy.utilities import remove_ros_args
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import String
except ModuleNotFoundError as e:
    raise MissingDependencyError(
        f"the ROS 2 node needs rclpy, sensor_msgs and diagnostic_msgs (no module {e.name!r}): "
        f"pip install 'lgcnet-deploy[ros2]' (Linux x86-64), or source a ROS 2 install first "
        f"(source /opt/ros/<distro>/setup.bash)") from e

from lgcnet_deploy.apps.ros2_health import Health, Silence, labels_json
from lgcnet_deploy.apps.ros2_image import compressed_to_bgr, fill_image, image_to_bgr
from lgcnet_deploy.core.timing import Stats
from lgcnet_deploy.model.shipped import DEFAULT_MODEL
from lgcnet_deploy.runtime.segmenter import GeometryWarning, Segmenter

NODE_NAME = "lgcnet_segmentation"
TRANSPORTS = {"raw": ("image", Image, image_to_bgr),
              "compressed": ("image/compressed", CompressedImage, compressed_to_bgr)}
DIAGNOSTICS_PERIOD_S = 1.0  # how often /diagnostics is published (diagnostic_updater's rate)


def qos(depth: int = 1, latched: bool = False) -> QoSProfile:
    """Reliable, keep last `depth`: volatile, or transient local (`latched`) for a message a
    late subscriber must still get. A new profile each call: rclpy writes the
    `qos_overrides.*` parameters into the profile it is given."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched
                      else DurabilityPolicy.VOLATILE)


def _descriptor(text: str, read_only: bool = False, **ranges) -> ParameterDescriptor:
    return ParameterDescriptor(description=text, read_only=read_only, **ranges)


# name -> (default, descriptor); read-only ones are fixed at start.
PARAMETERS = {
    "model": (DEFAULT_MODEL, _descriptor(
        "model file (.onnx, .pt, .engine) or shipped model name", read_only=True)),
    "device": ("cpu", _descriptor("cpu, cuda[:N] or tensorrt", read_only=True)),
    "resize": ("", _descriptor(
        "frames of another aspect than the model's: stretch or letterbox (empty: stretch, "
        "warning once)", read_only=True)),
    "image_transport": ("raw", _descriptor(
        "raw: sensor_msgs/Image on `image`; compressed: CompressedImage on `image/compressed`",
        read_only=True)),
    "overlay": (True, _descriptor("publish segmentation/overlay")),
    "legend": (True, _descriptor("draw the class legend on the overlay")),
    "alpha": (0.5, _descriptor("overlay colour weight", floating_point_range=[
        FloatingPointRange(from_value=0.0, to_value=1.0, step=0.0)])),
    "stats_every": (0, _descriptor("log latency every N frames (0: never)", integer_range=[
        IntegerRange(from_value=0, to_value=1_000_000, step=1)])),
    "no_frame_warn_s": (5.0, _descriptor(
        "warn when the input has a publisher but no frame arrived for this long (0: never)",
        floating_point_range=[FloatingPointRange(from_value=0.0, to_value=3600.0, step=0.0)])),
}


class NewestOnly:
    """A one-slot mailbox: `put` replaces a message not yet taken (counted in `dropped`),
    `take` waits for the newest one."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._item: tuple[object, float] | None = None
        self.dropped = 0

    def put(self, msg: object) -> None:
        with self._ready:
            self.dropped += self._item is not None
            self._item = (msg, time.perf_counter())
            self._ready.notify()

    def take(self, timeout: float) -> tuple[object, float] | None:
        """(message, arrival time), or None after `timeout` seconds without one."""
        with self._ready:
            self._ready.wait_for(lambda: self._item is not None, timeout)
            item, self._item = self._item, None
            return item


class SegmentationNode(Node):
    """Segments the newest frame of `image` and publishes its mask and overlay."""

    POLL_S = 0.1  # how often the idle worker checks for shutdown

    def __init__(self, overrides: dict[str, object] | None = None) -> None:
        super().__init__(NODE_NAME, parameter_overrides=[
            Parameter(k, value=v) for k, v in (overrides or {}).items()])
        try:
            for name, (default, descriptor) in PARAMETERS.items():
                self.declare_parameter(name, default, descriptor)
        except ParameterException as e:  # a wrong type or range, from -p or a flag
            raise BadInputError(f"ROS parameter: {e}") from e
        transport = self._param("image_transport")
        if transport not in TRANSPORTS:
            raise BadInputError(f"image_transport must be one of {', '.join(TRANSPORTS)}, got "
                                f"{transport!r}")
        topic, msg_type, self._to_bgr = TRANSPORTS[transport]
        self.segmenter = Segmenter(self._param("model"), device=self._param("device"),
                                   resize=self._param("resize") or None)
        self._open_topics(topic, msg_type)
        self.frames, self._warned = 0, set()
        self.health, self.silence = Health(), Silence(self._param("no_frame_warn_s"))
        self._times_ms: tuple[list[float], list[float]] = ([], [])  # node, Segmenter.predict
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="lgcnet-ros2", daemon=True)
        self._worker.start()
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._tick)
        h, w = self.segmenter.input_size
        self.get_logger().info(
            f"segmenting {self.sub.topic_name} ({msg_type.__name__}) with "
            f"{self._param('model')} ({self._param('device')}, {h}x{w}) -> "
            f"{self.mask_pub.topic_name}, {self.overlay_pub.topic_name}; labels on "
            f"{self.labels_pub.topic_name}")

    def _open_topics(self, topic: str, msg_type: type) -> None:
        overridable = QoSOverridingOptions.with_default_policies
        self.mask_pub = self.create_publisher(Image, "segmentation/mask", qos(),
                                              qos_overriding_options=overridable())
        self.overlay_pub = self.create_publisher(Image, "segmentation/overlay", qos(),
                                                 qos_overriding_options=overridable())
        self.labels_pub = self.create_publisher(String, "segmentation/labels",
                                                qos(latched=True),
                                                qos_overriding_options=overridable())
        self.labels_pub.publish(String(data=labels_json(self.segmenter.meta,
                                                        str(self._param("model")))))
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos(10))
        self.inbox = NewestOnly()
        self.sub = self.create_subscription(msg_type, self._input_topic(topic), self._arrived,
                                            qos(), qos_overriding_options=overridable())

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _arrived(self, msg: object) -> None:
        self.health.last_arrival = time.monotonic()
        self.inbox.put(msg)

    def _input_topic(self, topic: str) -> str:
        # like image_transport: `image/compressed` follows a remapped `image`
        base, _, suffix = topic.partition("/")
        return self.resolve_topic_name(base) + (f"/{suffix}" if suffix else "")

    def _work(self) -> None:
        while not self._stop.is_set():
            item = self.inbox.take(self.POLL_S)
            if item is None:
                continue
            msg, arrived = item
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    self._segment(msg, arrived)
                for w in caught:
                    self._warn_once(self._ros_warning(w.message))
            except ValueError as e:  # a frame this node cannot read: say so once per kind
                self.health.skipped += 1
                self._warn_once(f"skipped a frame: {e}")
            except Exception as e:  # the worker must not die silently
                if not self._stop.is_set() and self.context.ok():
                    self.get_logger().error(f"{type(e).__name__}: {e}")

    def _warn_once(self, text: str) -> None:
        if text not in self._warned:
            self._warned.add(text)
            self.get_logger().warning(text)

    def _ros_warning(self, warning: Warning) -> str:
        """A warning of the SDK in the node's terms: the ROS parameter, not the CLI flag."""
        if isinstance(warning, GeometryWarning):
            h, w = self.segmenter.input_size
            return (f"frames of another aspect than the model's {h}x{w} input are stretched, "
                    f"which squashes what they show: set the ROS parameter `resize` "
                    f"(-p resize:=letterbox keeps their geometry, -p resize:=stretch silences "
                    f"this)")
        return str(warning)

    def _segment(self, msg, arrived: float) -> None:
        result = self.segmenter.predict(self._to_bgr(msg))
        self.mask_pub.publish(fill_image(Image(), result.mask, msg.header))
        if self._param("overlay") and self.overlay_pub.get_subscription_count():
            overlay = result.plot(self._param("alpha"), legend=self._param("legend"))
            self.overlay_pub.publish(fill_image(Image(), overlay, msg.header))
        self.frames += 1
        latency_ms = (time.perf_counter() - arrived) * 1e3
        self.health.segmented(latency_ms)
        self._times_ms[0].append(latency_ms)
        self._times_ms[1].append(sum(result.speed.values()))
        every = self._param("stats_every")
        if every and len(self._times_ms[0]) >= every:
            self._log_stats(*map(Stats.of, self._times_ms))
            self._times_ms = ([], [])

    def _tick(self) -> None:
        """Each DIAGNOSTICS_PERIOD_S: /diagnostics, and the watchdog on a silent input."""
        publishers = self.count_publishers(self.sub.topic_name)
        self.silence.after_s = self._param("no_frame_warn_s")
        if self.silence.check(publishers, self.health.last_arrival, self.health.started):
            self.get_logger().warning(self._silence_text(publishers))
        level, values = self.health.period(self.inbox.dropped)
        values.append(("input_publishers", str(publishers)))
        status = DiagnosticStatus(
            level=bytes([level]), name=f"{self.get_name()}: segmentation",
            hardware_id=str(self._param("model")),
            message="frames skipped (unreadable), see the log" if level else "ok",
            values=[KeyValue(key=k, value=v) for k, v in values])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)

    def _silence_text(self, publishers: int) -> str:
        topic = self.sub.topic_name
        offered = {p.qos_profile.reliability for p in
                   self.get_publishers_info_by_topic(topic)}
        hint = (f"a publisher offers best effort, which this reliable subscription does not "
                f"accept: set -p qos_overrides.{topic}.subscription.reliability:=best_effort "
                f"(large frames may then be lost), or make the camera publish reliable"
                if ReliabilityPolicy.BEST_EFFORT in offered else
                "check the publisher's QoS (ros2 topic info -v) and its frame rate")
        return (f"{publishers} publisher(s) on {topic} but no frame arrived for "
                f"{self.silence.after_s:g} s: {hint} (ROS parameter no_frame_warn_s sets "
                f"this delay)")

    def _log_stats(self, node: Stats, predict: Stats) -> None:
        self.get_logger().info(
            f"{len(node.samples)} frames, ms median/p90: {node.p50:.1f}/{node.p90:.1f} from a "
            f"frame's arrival to its outputs published, of which Segmenter.predict "
            f"{predict.p50:.1f}/{predict.p90:.1f}; {self.inbox.dropped} dropped so far")

    def close(self) -> None:
        """Stop the worker (after the frame in progress), then the node and the model."""
        self._stop.set()
        self._worker.join()
        self.get_logger().info(f"stopped: {self.frames} frames segmented, {self.inbox.dropped} "
                               f"dropped for a newer one")
        self.destroy_node()
        self.segmenter.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def spin(argv: list[str], overrides: dict[str, object] | None = None) -> int:
    """Run the node until SIGINT/SIGTERM; `argv` may carry `--ros-args ...` (remapping,
    parameters), `overrides` set parameters over them."""
    # Our own handlers, not rclpy's (which shut the context down first): the context stays
    # valid until the node has stopped its worker and logged. Set even where SIGINT was
    # ignored (a background job of a shell), as `ros2 launch` stops nodes with it.
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    node = None
    try:
        node = SegmentationNode(overrides)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok():
            executor.spin_once(timeout_sec=SegmentationNode.POLL_S)  # Python sees signals
    except KeyboardInterrupt:
        pass  # Ctrl-C / SIGTERM: the normal way to stop a node
    finally:
        if node is not None:
            node.close()
        rclpy.try_shutdown()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m lgcnet_deploy.apps.ros2_node --ros-args -p model:=M ...`: ROS arguments only."""
    argv = sys.argv if argv is None else argv
    extra = remove_ros_args(argv)[1:]
    if extra:
        raise BadInputError(f"unexpected arguments {extra}: configure the node with --ros-args -p "
                            f"NAME:=VALUE (parameters {', '.join(PARAMETERS)}) and -r FROM:=TO")
    return spin(argv)


def console() -> None:
    """The node as an executable (`python -m`, or `ros2 run lgcnet_segmentation
    segmentation_node` from the colcon package in ros2/): one line and the exit code of the
    fault for an error a user can fix."""
    try:
        sys.exit(main())
    except (LgcnetError, OSError) as e:
        print(f"{NODE_NAME}: error: {e}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", EXIT_USER_INPUT))


if __name__ == "__main__":
    console()
