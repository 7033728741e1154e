"""CI's base-install smoke test: the built wheel, installed WITHOUT extras into a fresh venv
outside the checkout, runs every command's --help, the shipped default model by its short
name (info, predict on an image and a video, eval, the Python API: sources, stream, save,
plot, to_json), `bench` without a model, and an ONNX file's path (predict, bench); commands
that need an extra fail with one line and exit code 4, never a traceback, and a model-name
typo with one line and exit code 3. Then the `[onnx]` extra, still without torch:
check-trt and quantize on the shipped ONNX.

    LGCNET_CAMVID=DIR python .ci/wheel_smoke.py   # from the checkout, with the dev venv's python
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path

import cv2  # the dev environment's (which has the package), to write the test video

from lgcnet_deploy.model.shipped import SHIPPED_MODELS

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ("bench", "build", "eval", "export", "info", "lut", "predict", "quantize", "ros2",
            "search", "train")
EXIT_USER_INPUT, EXIT_MISSING_DEPENDENCY = 3, 4


def run(cmd: list[str], cwd: Path, env: dict[str, str], expect: int = 0,
        needle: str = "pip install 'lgcnet-deploy[") -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    shown = " ".join(str(c) for c in cmd[1:]).splitlines()[0]  # a script: its first line
    if proc.returncode != expect or "Traceback" in proc.stderr:
        sys.exit(f"FAILED: {shown} -> exit {proc.returncode} (expected {expect})\n"
                 f"{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}")
    if expect and (len(proc.stderr.strip().splitlines()) != 1 or needle not in proc.stderr):
        sys.exit(f"FAILED: {shown}: expected one line with {needle!r}, got:\n{proc.stderr}")
    print(f"ok   {shown}" + (f"  [{proc.stderr.strip()}]" if expect else ""))
    return proc.stdout


# The Python API of the README's first hour, with the default model and no torch: a frame, an
# image file, a video, a stream of it, and what a Result gives (run in the work folder).
API_CHECK = """# the Python API, default model: frame, image, video, stream, save, plot, JSON
import json
import cv2
from lgcnet_deploy import Segmenter
frame = cv2.imread("x.jpg")
seg = Segmenter("lgcnet-camvid")
assert type(seg.backend).__name__ == "OnnxRuntimeBackend", seg
r = seg.predict(frame)
assert r.mask.shape == frame.shape[:2], r.mask.shape
assert (seg.predict("x.jpg").mask == r.mask).all()
clip = seg.predict("clip.mp4")
streamed = [s for s in seg.stream("clip.mp4")]
assert len(clip) == len(streamed) == CLIP_FRAMES, (len(clip), len(streamed))
assert all((a.mask == b.mask).all() for a, b in zip(clip, streamed))
r.save("m.png")  # an indexed PNG: colours in a viewer, the ids as its pixel values
from lgcnet_deploy.core.data import read_label
assert (read_label("m.png") == r.mask).all()
assert r.plot().shape == frame.shape
assert abs(sum(json.loads(r.to_json())["classes"].values()) - 1) < 1e-4
print(repr(r))
"""
CLIP_FRAMES = 8


def build(work: Path) -> Path:
    """The wheel, which must hold each shipped model's ONNX."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(work / "dist"), str(ROOT)], check=True)
    wheel = next((work / "dist").glob("lgcnet_deploy-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        onnx = sorted(n for n in z.namelist() if n.endswith(".onnx"))
    if len(onnx) != len(SHIPPED_MODELS):
        sys.exit(f"FAILED: the wheel holds {onnx}, not one ONNX per shipped model")
    print(f"ok   wheel {wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB, {len(onnx)} ONNX models")
    return wheel


def make_inputs(work: Path, camvid: str) -> Path:
    """x.jpg (a CamVid val frame) and clip.mp4 (CLIP_FRAMES of them) in `work`."""
    frames = sorted((Path(camvid) / "val" / "images").glob("*.jpg"))[:CLIP_FRAMES]
    shutil.copy(frames[0], work / "x.jpg")
    first = cv2.imread(str(frames[0]))
    out = cv2.VideoWriter(str(work / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 15,
                          first.shape[1::-1])
    for f in frames:
        out.write(cv2.imread(str(f)))
    out.release()
    return work / "x.jpg"


def installed(py: Path, name: str, suffix: str, work: Path, env: dict[str, str]) -> str:
    """The path of a shipped model's file inside the fresh venv."""
    return run([str(py), "-c", "from lgcnet_deploy.model.shipped import shipped_file; "
                f"print(shipped_file({name!r}, {suffix!r}))"], work, env).strip()


def main() -> int:
    if not os.environ.get("LGCNET_CAMVID"):
        sys.exit("set LGCNET_CAMVID to the CamVid root (`make wheel-smoke` does)")
    camvid = os.environ["LGCNET_CAMVID"]
    with tempfile.TemporaryDirectory(prefix="lgcnet-smoke-") as tmp:
        work = Path(tmp)
        wheel = build(work)
        venv.create(work / "venv", with_pip=True)
        py = work / "venv" / "bin" / "python"
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        str(wheel)], check=True)
        lgcnet = str(work / "venv" / "bin" / "lgcnet")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["LGCNET_CAMVID"] = camvid
        for probe in ("torch", "onnx"):  # the point: a base install has neither
            run([str(py), "-c", f"import importlib.util as u; assert u.find_spec('{probe}') "
                 f"is None, '{probe} is installed'"], work, env)
        run([lgcnet, "--help"], work, env)
        for command in COMMANDS:
            run([lgcnet, command, "--help"], work, env)
        first = make_inputs(work, camvid)
        check_shipped_model(lgcnet, py, work, env)
        onnx = installed(py, "lgcnet-camvid", ".onnx", work, env)
        run([lgcnet, "predict", "--model", onnx, str(first), "-o", str(work / "pred")],
            work, env)
        run([lgcnet, "bench", onnx, "--iters", "3", "--warmup", "1", "--imgsz", "360x480"],
            work, env)  # the input-size check reads the file without the onnx package
        if "lgcnet-camvid" not in run([lgcnet, "bench", "--iters", "5", "--warmup", "1"],
                                      work, env):
            sys.exit("FAILED: bench without a model did not time the shipped model")
        # what needs an extra says which, in one line
        run([lgcnet, "export", "lgcnet-camvid", "-o", str(work / "x.onnx")], work, env,
            expect=EXIT_MISSING_DEPENDENCY)
        run([lgcnet, "predict", "--model", installed(py, "lgcnet-camvid", ".pt", work, env),
             str(first), "-o", str(work / "pred_pt")], work, env,
            expect=EXIT_MISSING_DEPENDENCY)
        run([lgcnet, "train", "--epochs", "1", "--out", str(work / "t")], work, env,
            expect=EXIT_MISSING_DEPENDENCY)
        run([lgcnet, "ros2"], work, env, expect=EXIT_MISSING_DEPENDENCY)  # rclpy: [ros2]
        for command in (["check-trt", onnx], ["quantize", onnx, "-o", "q.onnx"]):
            run([lgcnet, *command], work, env, expect=EXIT_MISSING_DEPENDENCY,
                needle="pip install 'lgcnet-deploy[onnx]'")
        run([lgcnet, "predict", "--model", "lgcnet-camvd", str(first)], work, env,
            expect=EXIT_USER_INPUT, needle="did you mean 'lgcnet-camvid'?")
        # what a user runs first: the base install's report names each missing extra
        if "[tensorrt] no (missing" not in run([lgcnet, "checks", "-o",
                                                 str(work / "checks.json")], work, env):
            sys.exit("FAILED: lgcnet checks did not name the missing [tensorrt] extra")
        run([lgcnet, "checks", "--gpu-smoke", "-o", str(work / "checks.json")], work, env,
            expect=EXIT_MISSING_DEPENDENCY, needle="--gpu-smoke needs TensorRT")
        check_onnx_extra(py, lgcnet, wheel, onnx, work, env)
    print("base-install smoke test passed")
    return 0


def check_onnx_extra(py: Path, lgcnet: str, wheel: Path, onnx: str, work: Path,
                     env: dict[str, str]) -> None:
    """The [onnx] extra brings what check-trt and quantize need, and no torch."""
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    f"{wheel}[onnx]"], check=True)
    run([str(py), "-c", "import importlib.util as u; assert u.find_spec('torch') is None, "
         "'[onnx] installed torch'"], work, env)
    run([lgcnet, "check-trt", onnx], work, env)
    out = run([lgcnet, "quantize", onnx, "-o", str(work / "q.int8.onnx"), "--target", "cpu",
               "--calib-frames", "16"], work, env)
    if "speed on this CPU" not in out:
        sys.exit(f"FAILED: quantize did not compare fp32 and int8:\n{out}")


def check_shipped_model(lgcnet: str, py: Path, work: Path, env: dict[str, str]) -> None:
    """The default model by short name, without torch: info, predict on a video and an image
    (no --model), eval, and the Python API."""
    info = run([lgcnet, "info", "lgcnet-camvid"], work, env)
    if "ONNX model" not in info or "verified" not in info:
        sys.exit(f"FAILED: info lgcnet-camvid does not describe the verified ONNX:\n{info}")
    run([lgcnet, "predict", "clip.mp4", "-o", str(work / "pred_video")], work, env)
    video = work / "pred_video" / "clip_overlay.mp4"
    frames = int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT))
    if frames != CLIP_FRAMES:
        sys.exit(f"FAILED: predict clip.mp4 wrote {frames} frames, not {CLIP_FRAMES}")
    run([lgcnet, "predict", "x.jpg", "-o", str(work / "pred_image")], work, env)
    run([lgcnet, "eval", "lgcnet-camvid", "--limit", "3"], work, env)
    print("     " + run([str(py), "-c", API_CHECK.replace("CLIP_FRAMES", str(CLIP_FRAMES))],
                        work, env).strip())


if __name__ == "__main__":
    sys.exit(main())
