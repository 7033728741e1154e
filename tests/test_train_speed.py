"""The training-step benchmark: every arm timed, ratios to the first, bad arms named."""

from __future__ import annotations

import re

import pytest

from experiments.train_speed import main
from lgcnet_deploy.core.errors import EXIT_USER_INPUT

TINY = ["--rounds", "2", "--batch", "1", "--crop", "32", "48", "--threads", "1"]


def test_each_arm_gets_a_step_time_and_a_ratio_to_the_first(capsys):
    assert main(["--arms", "lite0_s16_lean16", "lite0_s16_lean16:bf16", "lite0", *TINY]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["lite0_s16_lean16", "lite0_s16_lean16",
                                                       "lite0"]
    assert lines[1].startswith("lite0_s16_lean16:bf16: ")
    assert " 1.00x lite0_s16_lean16 (rounds 1.00-1.00)" in lines[0]
    for line in lines:
        seconds, ratio = re.search(r": ([0-9.]+) s a step, ([0-9.]+)x ", line).groups()
        assert float(seconds) > 0 and float(ratio) > 0


@pytest.mark.parametrize(("arm", "message"), [
    ("nosuch", "arm 'nosuch': neither a teacher (lite0 lite1 lite2) nor a genotype"),
    ("lite0:fp8", "arm 'lite0:fp8': the precision after ':' can only be bf16"),
])
def test_a_bad_arm_is_named_and_exits_as_user_input(capsys, arm, message):
    assert main(["--arms", arm, *TINY]) == EXIT_USER_INPUT
    assert message in capsys.readouterr().err


def test_a_repeated_arm_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--arms", "lite0", "lite0", *TINY])
    assert "each arm once" in capsys.readouterr().err
