"""The installed package: compiled kernels, the console script, the demo."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import hmmfast
from hmmfast import _emissions, _sampling, _trellis, _viterbi

REPO = Path(__file__).resolve().parents[1]


def test_kernels_are_compiled_extensions():
    for module in (_trellis, _viterbi, _emissions, _sampling):
        assert Path(module.__file__).suffix in (".so", ".pyd"), module.__file__


@pytest.mark.skipif(os.environ.get("HMMFAST_TEST_INSTALLED") != "1",
                    reason="set HMMFAST_TEST_INSTALLED=1 to require the installed package")
def test_imported_from_installation_not_source_tree():
    assert REPO not in Path(hmmfast.__file__).resolve().parents, hmmfast.__file__


def run(*args):
    """Run a command from a neutral directory, importing the same hmmfast as the tests."""
    env = {**os.environ, "PYTHONPATH": str(Path(hmmfast.__file__).parents[1])}
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env,
                          cwd=Path(hmmfast.__file__).parents[1])


def test_demo_runs_from_console_script_and_module():
    script = Path(sys.executable).with_name("hmmfast")
    commands = [(sys.executable, "-m", "hmmfast", "demo")]
    if script.exists():
        commands.append((str(script), "demo"))
    for cmd in commands:
        result = run(*cmd)
        assert result.returncode == 0, result.stderr
        assert "dishonest casino" in result.stdout
        accuracy = float(result.stdout.split("Viterbi accuracy")[1].split("%")[0])
        assert 50 < accuracy <= 100
        assert "viterbi " in result.stdout and "true    " in result.stdout


def test_cli_usage_errors_exit_2():
    result = run(sys.executable, "-m", "hmmfast", "demo", "--rolls", "0")
    assert result.returncode == 2 and "--rolls" in result.stderr
    result = run(sys.executable, "-m", "hmmfast")
    assert result.returncode == 2


@pytest.mark.skipif(os.environ.get("HMMFAST_TEST_WHEEL") != "1",
                    reason="set HMMFAST_TEST_WHEEL=1 when testing an installed wheel")
def test_installed_from_a_wheel_outside_the_source_tree():
    import json
    from importlib import metadata

    dist = metadata.distribution("hmmfast")
    assert dist.read_text("WHEEL") is not None  # installed from a wheel
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    assert direct.get("url", "").endswith(".whl"), direct
    assert not direct.get("dir_info", {}).get("editable", False)
    here = Path(__file__).resolve()
    assert not (here.parents[1] / "setup.py").exists()  # the tests are a copy, not the repo
    assert Path(hmmfast.__file__).resolve().parents[1].name == "site-packages"
