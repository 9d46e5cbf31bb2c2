"""The README's quick start runs as written and its commented results are true."""

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs():
    code = re.search(r"## Quick start\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace = {}
    exec(compile(code, "README quick start", "exec"), namespace)
    model, X = namespace["model"], namespace["X"]
    assert "-4.250122" in code and "log 0.0142625" in code
    assert model.score(X) == pytest.approx(-4.250122, abs=5e-7)
    assert model.score(X) == pytest.approx(np.log(0.0142625), rel=1e-12)
    logprob, states = model.decode(X)
    assert "(-4.990245, array([0, 1, 1]))" in code
    assert logprob == pytest.approx(-4.990245, abs=5e-7) and states.tolist() == [0, 1, 1]
