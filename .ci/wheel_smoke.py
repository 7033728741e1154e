"""CI's base-install smoke test: the built wheel, installed WITHOUT extras into a fresh venv
outside the checkout, runs every command's --help and the ONNX path (info, predict, eval,
bench); commands that need an extra fail with one line and exit code 4, never a traceback.

    LGCNET_CAMVID=DIR python .ci/wheel_smoke.py   # from the checkout, with the dev venv's python
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ("bench", "build", "eval", "export", "info", "lut", "predict", "quantize", "ros2",
            "search", "train")
EXIT_MISSING_DEPENDENCY = 4


def run(cmd: list[str], cwd: Path, env: dict[str, str], expect: int = 0) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    shown = " ".join(str(c) for c in cmd[1:])
    if proc.returncode != expect or "Traceback" in proc.stderr:
        sys.exit(f"FAILED: {shown} -> exit {proc.returncode} (expected {expect})\n"
                 f"{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}")
    if expect and (len(proc.stderr.strip().splitlines()) != 1
                   or "pip install 'lgcnet-deploy[" not in proc.stderr):
        sys.exit(f"FAILED: {shown}: expected one line naming the extra, got:\n{proc.stderr}")
    print(f"ok   {shown}" + (f"  [{proc.stderr.strip()}]" if expect else ""))
    return proc.stdout


def build(work: Path) -> tuple[Path, Path]:
    """The wheel, and an ONNX export of the shipped model made with the dev environment."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(work / "dist"), str(ROOT)], check=True)
    onnx = work / "lgcnet.onnx"
    dev_lgcnet = Path(sys.executable).parent / "lgcnet"
    subprocess.run([str(dev_lgcnet), "export", "lgcnet-camvid", "-o", str(onnx)], check=True,
                   cwd=work)
    return next((work / "dist").glob("lgcnet_deploy-*.whl")), onnx


def main() -> int:
    if not os.environ.get("LGCNET_CAMVID"):
        sys.exit("set LGCNET_CAMVID to the CamVid root (`make wheel-smoke` does)")
    camvid = os.environ["LGCNET_CAMVID"]
    with tempfile.TemporaryDirectory(prefix="lgcnet-smoke-") as tmp:
        work = Path(tmp)
        wheel, onnx = build(work)
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
        run([lgcnet, "info", str(onnx)], work, env)
        frame = Path(camvid) / "val" / "images"
        first = sorted(frame.glob("*.jpg"))[0]
        run([lgcnet, "predict", "--model", str(onnx), str(first), "-o", str(work / "pred")],
            work, env)
        run([lgcnet, "eval", str(onnx), "--limit", "3"], work, env)
        run([lgcnet, "bench", str(onnx), "--iters", "3", "--warmup", "1", "--imgsz", "360x480"],
            work, env)  # the input-size check reads the file without the onnx package
        run([str(py), "-c", "import cv2, sys; from lgcnet_deploy import Segmenter; "
             f"r = Segmenter({str(onnx)!r}).predict(cv2.imread({str(first)!r})); "
             "assert r.mask.shape == (360, 480), r.mask.shape"], work, env)
        # what needs an extra says which, in one line
        run([lgcnet, "export", "lgcnet-camvid", "-o", str(work / "x.onnx")], work, env,
            expect=EXIT_MISSING_DEPENDENCY)
        run([lgcnet, "predict", "--model", "lgcnet-camvid", str(first), "-o",
             str(work / "pred_pt")], work, env, expect=EXIT_MISSING_DEPENDENCY)
        run([lgcnet, "train", "--epochs", "1", "--out", str(work / "t")], work, env,
            expect=EXIT_MISSING_DEPENDENCY)
        run([lgcnet, "ros2"], work, env, expect=EXIT_MISSING_DEPENDENCY)  # rclpy: [ros2]
    print("base-install smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
