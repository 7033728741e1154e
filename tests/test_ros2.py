"""The ROS 2 node for real: the node and a publisher/subscriber peer (tests/ros2_peer.py) in
separate processes on a DDS domain of their own, kept on this machine; the mask and overlay
that come back equal the Segmenter's for the same frame, under the frame's header. Also the
message conversions, the newest-only mailbox, and the CLI's one-line errors."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from itertools import count
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from lgcnet_deploy import Segmenter
from lgcnet_deploy.apps.ros2_image import compressed_to_bgr, fill_image, image_to_bgr
from lgcnet_deploy.cli import EXIT_MISSING_DEPENDENCY, EXIT_USER_INPUT, main

HERE = Path(__file__).resolve().parent
LGCNET = str(Path(sys.executable).parent / "lgcnet")
MODEL = "lgcnet-camvid"
_domains = count()


def _needs_rclpy() -> None:
    for module in ("rclpy", "diagnostic_msgs"):
        pytest.importorskip(module, reason=f"{module} is not importable: the [ros2] extra "
                            f"(pip install '.[ros2]', Linux x86-64) or a sourced ROS 2 install")


@pytest.fixture
def ros_env(tmp_path) -> dict[str, str]:
    """DDS discovery on this machine only, a domain no other run uses, logs in tmp_path."""
    _needs_rclpy()
    domain = 1 + (os.getpid() + next(_domains)) % 100
    return dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_LOCALHOST_ONLY="1",
                ROS_DOMAIN_ID=str(domain), ROS_LOG_DIR=str(tmp_path / "ros_log"),
                PYTHONUNBUFFERED="1")


def _message(pixels: np.ndarray, encoding: str, pad: int = 0) -> SimpleNamespace:
    rows = pixels.reshape(pixels.shape[0], -1)
    rows = np.concatenate([rows, np.full((rows.shape[0], pad), 255, np.uint8)], axis=1)
    return SimpleNamespace(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                           step=rows.shape[1], data=rows.tobytes())


def test_image_messages_convert_to_bgr(real_frames):
    bgr = real_frames[0]
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert np.array_equal(image_to_bgr(_message(bgr, "bgr8")), bgr)
    assert np.array_equal(image_to_bgr(_message(bgr[..., ::-1], "rgb8", pad=5)), bgr)
    assert np.array_equal(image_to_bgr(_message(gray, "mono8", pad=3)),
                          cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    png = cv2.imencode(".png", bgr)[1].tobytes()
    assert np.array_equal(compressed_to_bgr(SimpleNamespace(format="png", data=png)), bgr)


def test_bad_image_messages_say_what_is_accepted(real_frames):
    with pytest.raises(ValueError, match="bgr8, rgb8, mono8"):
        image_to_bgr(_message(real_frames[0], "bgra8"))
    short = _message(real_frames[0], "bgr8")
    short.data = short.data[:-1]
    with pytest.raises(ValueError, match="do not hold 360 rows"):
        image_to_bgr(short)
    with pytest.raises(ValueError, match="could not be decoded"):
        compressed_to_bgr(SimpleNamespace(format="jpeg", data=b"not a jpeg"))


def test_fill_image_round_trips(real_frames):
    header = object()
    mask = (real_frames[0][..., 0] // 32).astype(np.uint8)
    for pixels, encoding in ((real_frames[0], "bgr8"), (mask, "mono8")):
        msg = fill_image(SimpleNamespace(), pixels, header)
        assert (msg.encoding, msg.header, msg.step) == (encoding, header, pixels[0].size)
        back = image_to_bgr(msg)
        assert np.array_equal(back if pixels.ndim == 3 else back[..., 0], pixels)


def test_newest_only_keeps_the_newest_and_counts_the_rest():
    _needs_rclpy()
    from lgcnet_deploy.apps.ros2_node import NewestOnly

    inbox = NewestOnly()
    assert inbox.take(timeout=0.01) is None
    for msg in ("a", "b", "c"):
        inbox.put(msg)
    assert inbox.take(timeout=0.01)[0] == "c"
    assert inbox.dropped == 2 and inbox.take(timeout=0.01) is None


def test_qos_is_reliable_and_an_override_changes_only_its_topic(ros_env, monkeypatch):
    """REP-2003: reliable outputs (any subscriber gets them) and a reliable input keeping one
    frame; the labels latched; a reliability override for the overlay stays there (rclpy
    writes overrides into the profile object it is given)."""
    import rclpy
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions

    from lgcnet_deploy.apps.ros2_node import SegmentationNode

    for name in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY", "ROS_DOMAIN_ID",
                 "ROS_LOG_DIR"):
        monkeypatch.setenv(name, ros_env[name])
    rclpy.init(args=["test", "--ros-args", "-p",
                     "qos_overrides./segmentation/overlay.publisher.reliability:=best_effort"],
               signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = SegmentationNode({"model": MODEL})
        entities = (node.sub, node.mask_pub, node.overlay_pub, node.labels_pub)
        got = {e.topic_name: (e.qos_profile.reliability, e.qos_profile.depth,
                              e.qos_profile.durability) for e in entities}
        node.close()
    finally:
        rclpy.try_shutdown()
    best_effort, reliable = ReliabilityPolicy.BEST_EFFORT, ReliabilityPolicy.RELIABLE
    volatile, latched = DurabilityPolicy.VOLATILE, DurabilityPolicy.TRANSIENT_LOCAL
    assert got == {"/image": (reliable, 1, volatile),
                   "/segmentation/mask": (reliable, 1, volatile),
                   "/segmentation/overlay": (best_effort, 1, volatile),
                   "/segmentation/labels": (reliable, 1, latched)}


def test_missing_extra_is_one_line_with_the_install_hint(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rclpy", None)  # import rclpy now fails
    monkeypatch.delitem(sys.modules, "lgcnet_deploy.apps.ros2_node", raising=False)
    assert main(["ros2"]) == EXIT_MISSING_DEPENDENCY
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "pip install 'lgcnet-deploy[ros2]'" in lines[0], lines


@pytest.mark.parametrize("args, needle", [
    (["--alpha", "2"], "alpha"),
    (["--ros-args", "-p", "image_transport:=theora"], "image_transport must be one of raw"),
    (["--resize", "crop"], "resize must be one of"),
])
def test_bad_parameters_are_one_line_errors(ros_env, args, needle):
    proc = subprocess.run([LGCNET, "ros2", *args], capture_output=True, text=True,
                          timeout=120, env=ros_env)
    assert proc.returncode == EXIT_USER_INPUT, proc.stderr
    errors = [x for x in proc.stderr.splitlines() if x.startswith("lgcnet ros2: error")]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in proc.stderr


def _node(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _stop(node: subprocess.Popen, log: Path) -> str:
    """SIGINT, as Ctrl-C and `ros2 launch` stop a node; its log."""
    if node.poll() is None:
        node.send_signal(signal.SIGINT)
    try:
        rc = node.wait(timeout=60)
    finally:
        node.kill()
    text = log.read_text()
    assert rc == 0, text
    return text


def _exchange(tmp_path: Path, env: dict[str, str], node_cmd: list[str], peer_args: list[str],
              frames: list[tuple[np.ndarray, str]]) -> tuple[list[dict], str]:
    """Run the node and the peer; the peer's replies (masks, overlays loaded; the first also
    carries what else the peer saw: labels, diagnostics) and the node's log after SIGINT."""
    specs = []
    for i, (frame, kind) in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"in_{i}.png"), frame)
        specs.append(f"{tmp_path / f'in_{i}.png'}:{kind}")
    log = tmp_path / "node.log"
    node = _node(node_cmd, env, log)
    try:
        peer = subprocess.run([sys.executable, str(HERE / "ros2_peer.py"), *peer_args,
                               "--timeout", "240", "--out", str(tmp_path / "out"), *specs],
                              env=env, capture_output=True, text=True, timeout=360)
        assert peer.returncode == 0, f"{peer.stderr}\nnode log:\n{log.read_text()}"
    finally:
        text = _stop(node, log)
    replies = json.loads((tmp_path / "out" / "replies.json").read_text())
    for r in replies:
        for kind in ("mask", "overlay"):
            path = tmp_path / "out" / f"{kind}_{r['frame']}.npy"
            r[f"{kind}_pixels"] = np.load(path) if path.exists() else None
    replies[0]["seen"] = json.loads((tmp_path / "out" / "node.json").read_text())
    return replies, text


def _assert_segmented(replies: list[dict], frames: list[np.ndarray], overlay: bool,
                      seg: Segmenter) -> None:
    for r, frame in zip(replies, frames):
        want = seg.predict(frame)
        assert np.array_equal(r["mask_pixels"], want.mask), r["kind"]
        assert r["mask"]["encoding"] == "mono8"
        assert r["mask"]["frame_id"] == r["frame_id"] and r["mask"]["stamp"] == r["sent_stamp"]
        if overlay:
            assert np.array_equal(r["overlay_pixels"], want.plot(0.5)), r["kind"]
            assert r["overlay"]["encoding"] == "bgr8"
            assert r["overlay"]["stamp"] == r["sent_stamp"]


def test_node_segments_raw_images_under_a_remapped_topic(tmp_path, ros_env, real_frames):
    """`lgcnet ros2`, input remapped and node in a namespace; bgr8, rgb8 with padded rows,
    and a smaller mono8 frame (the mask comes back at the frame's size)."""
    bgr = real_frames[0]
    small = real_frames[1][:300, :400]
    gray_bgr = cv2.cvtColor(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    node_cmd = [LGCNET, "ros2", "--model", MODEL, "--stats", "1", "--ros-args",
                "-r", "image:=/cam/image_raw", "-r", "__ns:=/robot1"]
    peer_args = ["--topic", "/cam/image_raw", "--mask-topic", "/robot1/segmentation/mask",
                 "--overlay-topic", "/robot1/segmentation/overlay",
                 "--labels-topic", "/robot1/segmentation/labels"]  # else waits out its timeout
    replies, log = _exchange(tmp_path, ros_env, node_cmd, peer_args,
                             [(bgr, "bgr8"), (bgr, "rgb8"), (small, "mono8")])
    assert [r["kind"] for r in replies] == ["bgr8", "rgb8", "mono8"]
    assert replies[2]["mask_pixels"].shape == (300, 400)
    _assert_segmented(replies, [bgr, bgr, gray_bgr], overlay=True, seg=Segmenter(MODEL))
    assert "segmenting /cam/image_raw (Image)" in log and "/robot1/segmentation/mask" in log
    assert "of which Segmenter.predict" in log and "stopped:" in log and "Traceback" not in log


def test_node_segments_compressed_images_python_m(tmp_path, ros_env, real_frames):
    """`python -m lgcnet_deploy.apps.ros2_node`, parameters from --ros-args: a 16:9 PNG on
    image/compressed, letterboxed, mask only."""
    wide = real_frames[2][45:315]  # 270x480
    node_cmd = [sys.executable, "-m", "lgcnet_deploy.apps.ros2_node", "--ros-args",
                "-p", f"model:={MODEL}", "-p", "image_transport:=compressed",
                "-p", "overlay:=false", "-p", "resize:=letterbox"]
    replies, log = _exchange(tmp_path, ros_env, node_cmd,
                             ["--topic", "image/compressed", "--no-overlay"], [(wide, "png")])
    _assert_segmented(replies, [wide], overlay=False, seg=Segmenter(MODEL, resize="letterbox"))
    stretched = Segmenter(MODEL, resize="stretch").predict(wide).mask
    assert not np.array_equal(replies[0]["mask_pixels"], stretched)  # the parameter took effect
    assert "segmenting /image/compressed (CompressedImage)" in log and "stopped:" in log


def test_camera_size_frames_reach_a_default_qos_subscriber(tmp_path, ros_env, real_frames):
    """640x480 and 1280x720 bgr8 frames, published and received with default QoS: masks equal
    the Segmenter's; the labels come latched, /diagnostics reports the frames; the 16:9 frame's
    stretch warning names the ROS parameter; SIGINT stops the node cleanly."""
    vga = cv2.resize(real_frames[0], (640, 480))
    hd = cv2.resize(real_frames[1], (1280, 720))
    node_cmd = [LGCNET, "ros2", "--model", MODEL, "--no-overlay"]
    replies, log = _exchange(tmp_path, ros_env, node_cmd, ["--no-overlay"],
                             [(vga, "bgr8"), (hd, "bgr8")])
    seg = Segmenter(MODEL)
    _assert_segmented(replies, [vga, hd], overlay=False, seg=seg)
    assert [r["mask_pixels"].shape for r in replies] == [(480, 640), (720, 1280)]
    seen = replies[0]["seen"]
    assert seen["labels"]["classes"] == list(seg.meta.classes)
    assert len(seen["labels"]["palette_rgb"]) == len(seg.meta.classes)
    values = seen["diagnostics"]["values"]
    assert {"rate_hz", "latency_ms_median", "frames_dropped_for_newer"} <= set(values)
    assert seen["diagnostics"]["level"] == 0 and int(values["input_publishers"]) >= 1
    assert "ROS parameter `resize`" in log and "-p resize:=letterbox" in log
    assert "--resize" not in log and "stopped:" in log and "Traceback" not in log


def test_silence_warns_once_per_spell_only_with_a_publisher():
    from lgcnet_deploy.apps.ros2_health import Silence

    s = Silence(after_s=5.0)
    assert not s.check(publishers=0, last_arrival=None, started=0.0, now=60.0)  # nobody sends
    assert not s.check(publishers=1, last_arrival=None, started=0.0, now=4.0)
    assert s.check(publishers=1, last_arrival=None, started=0.0, now=5.0)
    assert not s.check(publishers=1, last_arrival=None, started=0.0, now=9.0)  # said once
    assert not s.check(publishers=1, last_arrival=10.0, started=0.0, now=11.0)  # frames again
    assert s.check(publishers=1, last_arrival=10.0, started=0.0, now=16.0)  # a new spell


def test_health_reports_rate_latency_and_drops_per_period():
    from lgcnet_deploy.apps.ros2_health import Health, labels_json

    h = Health(started=0.0, _period_start=0.0)
    for ms in (10.0, 20.0, 30.0, 40.0):
        h.segmented(ms)
    h.last_arrival = 1.5
    level, values = h.period(dropped=3, now=2.0)
    got = dict(values)
    assert level == 0 and got["rate_hz"] == "2.00" and got["latency_ms_median"] == "25.0"
    assert got["frames_dropped_for_newer"] == "3" and got["seconds_since_last_frame"] == "0.5"
    assert dict(h.period(dropped=3, now=3.0)[1])["rate_hz"] == "0.00"  # a new period
    labels = json.loads(labels_json(Segmenter(MODEL).meta, MODEL))
    assert labels["classes"][0] == "sky" and len(labels["palette_rgb"]) == 11


ROS_PACKAGE = HERE.parent / "ros2" / "lgcnet_segmentation"


def test_colcon_package_is_well_formed():
    """package.xml (format 3, REP 149): its name, an ament_python build type and an
    exec_depend for every ROS package the node imports; setup.py's executable exists; the
    launch file parses (and, where launch_ros is installed, builds its description)."""
    import ast
    import xml.etree.ElementTree as ET

    root = ET.parse(ROS_PACKAGE / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    for tag in ("name", "version", "description", "maintainer", "license"):
        assert (root.findtext(tag) or "").strip(), tag
    assert root.findtext("name") == ROS_PACKAGE.name
    assert root.find("maintainer").get("email")
    assert root.findtext("export/build_type") == "ament_python"
    node_src = (HERE.parent / "lgcnet_deploy" / "apps" / "ros2_node.py").read_text()
    imported = {n.module.split(".")[0] for n in ast.walk(ast.parse(node_src))
                if isinstance(n, ast.ImportFrom) and n.module and n.module.endswith(".msg")}
    imported.add("rclpy")
    assert imported <= {e.text for e in root.findall("exec_depend")}, imported
    setup = (ROS_PACKAGE / "setup.py").read_text()
    assert "lgcnet_deploy.apps.ros2_node:console" in setup and "def console(" in node_src
    assert (ROS_PACKAGE / "resource" / ROS_PACKAGE.name).is_file()
    launch = ROS_PACKAGE / "launch" / "segmentation.launch.py"
    compile(launch.read_text(), str(launch), "exec")
    if importlib.util.find_spec("launch_ros") is not None:
        spec = importlib.util.spec_from_file_location("segmentation_launch", launch)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.generate_launch_description().entities
