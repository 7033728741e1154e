"""Shared fixtures: real CamVid frames, a small genotype net, markers.

CamVid: $LGCNET_CAMVID, else the checkout's sibling shared/data/camvid (as the Makefile's
CAMVID), set here for the tests and the processes they start; the
package itself reads only --data or $LGCNET_CAMVID.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.data import CamVid
from lgcnet_deploy.model.genotype import load_genotype
from lgcnet_deploy.model.network import LGCNet

# `make test` runs the suite on two pytest-xdist workers (one per core of the machines it
# must fit): each then computes on one thread, in-process and in the processes it starts, so
# the two never spin against each other. Run alone (no worker), a test may use both cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(2)
os.environ.setdefault("LGCNET_CAMVID", str(Path(__file__).resolve().parents[2] / "shared" / "data"
                                           / "camvid"))


def _has_cuda() -> bool:
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_gpu = pytest.mark.skip(reason="no CUDA GPU on this machine")
    no_trt = pytest.mark.skip(reason="TensorRT (python package `tensorrt`) or CUDA GPU missing")
    has_trt = importlib.util.find_spec("tensorrt") is not None and _has_cuda()
    no_torchvision = pytest.mark.skip(reason="torchvision missing (the [compare] extra): "
                                             "the LR-ASPP peer")
    has_torchvision = importlib.util.find_spec("torchvision") is not None
    for item in items:
        if "torchvision" in item.keywords and not has_torchvision:
            item.add_marker(no_torchvision)
        if "gpu" in item.keywords and not _has_cuda():
            item.add_marker(no_gpu)
        if "trt" in item.keywords and not has_trt:
            item.add_marker(no_trt)


class TickingClock:
    """A stand-in for a module's `time`: every reading advances `tick` seconds (0: the clock
    stands still until the test moves `now`), so code that reads the clock runs the same way
    however loaded the machine is."""

    def __init__(self, tick: float = 0.0, now: float = 1000.0) -> None:
        self.now, self.tick = now, tick

    def time(self) -> float:
        self.now += self.tick
        return self.now


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch):
    """`fake_clock(module, tick)`: a TickingClock in place of `module.time` for this test."""

    def install(module: object, tick: float = 0.0) -> TickingClock:
        clock = TickingClock(tick)
        monkeypatch.setattr(module, "time", clock)
        return clock

    return install


@pytest.fixture(scope="session")
def camvid_val() -> CamVid:
    if not CamVid.available():
        pytest.skip(f"CamVid not found at {os.environ['LGCNET_CAMVID']} (set LGCNET_CAMVID)")
    return CamVid("val")


@pytest.fixture(scope="session")
def real_frames(camvid_val: CamVid) -> list[np.ndarray]:
    """Three real CamVid val frames (BGR uint8 360x480x3)."""
    return [camvid_val[i][0] for i in (0, 40, 90)]


@pytest.fixture(scope="session")
def genotype():
    return load_genotype()


@pytest.fixture(scope="session")
def trained_like_net(genotype, real_frames) -> LGCNet:
    """The default-genotype net with BN statistics from real frames and random BN affines.

    Its predictions vary across the frame (a plain random init predicts one class everywhere,
    which would make argmax-agreement checks trivially true).
    """
    from lgcnet_research.train.data import normalize

    torch.manual_seed(0)
    net = LGCNet(genotype, CAMVID.num_classes)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration pass
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    net.train()
    with torch.no_grad():
        net(torch.stack([normalize(f) for f in real_frames]))
    net.eval()
    with torch.no_grad():
        classes = net(normalize(real_frames[0])[None]).argmax(1).unique()
    assert len(classes) > 1, "calibrated test net should not predict a single class"
    return net


def ctrl_c_reaches_python() -> None:
    """`preexec_fn` for a CLI child that a test interrupts: a job started in the background
    inherits SIGINT ignored, and Python then never raises KeyboardInterrupt; restore it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
