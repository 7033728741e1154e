"""The paper's speed setting (769x1537, batch 1, FP16, TensorRT) with whatever this machine
has, beside the paper's 205.6 FPS; the CLI equivalent is `lgcnet bench --preset paper`.

    python samples/benchmark_paper.py [genotype or model]
"""

import sys

from lgcnet_deploy.measure.bench import PAPER, benchmark, paper_preset

source = sys.argv[1] if len(sys.argv) > 1 else "default"
preset = paper_preset(source)
if preset["warning"]:
    print("!!!", preset["warning"])
r = benchmark(source, device=preset["device"], input_size=preset["input_size"],
              batch=preset["batch"], dataset=preset["dataset"], frame_size=preset["frame_size"])
print(f"network: {r.network.mean:.1f} ms mean, p99 {r.network.p99:.1f} ms -> {r.network.fps:.1f} "
      f"FPS ({r.backend} {r.precision} on {r.machine['cpu']})")
print(f"end to end from a {r.frame_size[0]}x{r.frame_size[1]} frame: {r.end_to_end.fps:.1f} FPS")
print(f"paper: {PAPER['fps_tensorrt']} FPS TensorRT, {PAPER['fps_pytorch']} FPS PyTorch "
      f"({PAPER['device']})")
