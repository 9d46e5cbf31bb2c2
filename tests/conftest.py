import json
import os
import subprocess
import sys

# Waiting OpenMP threads sleep instead of spinning (libgomp: 300,000 spins by default).
# Results are the same either way; on a busy machine spinning threads tripled the CPU
# time and the wall time of the threaded tests (measured: test_fit's recovery test, 12 s
# of CPU and 41 s wall against 3.6 s and 14 s, load 10 on 2 cores). Set before hmmfast
# loads the OpenMP runtime; subprocesses (CLI, server, Dask workers) inherit it. A value
# the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest
from factories import categorical

import hmmfast


@pytest.fixture
def make_model():
    """Factory: CategoricalHMM with the given parameters (``factories.categorical``)."""
    return categorical


@pytest.fixture(params=["scaling", "log"])
def implementation(request):
    return request.param


@pytest.fixture
def umbrella():
    """The umbrella example: A, B, pi and O = [0, 2, 1]."""
    return (np.array([0.6, 0.4]), np.array([[0.7, 0.3], [0.4, 0.6]]),
            np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]]), np.array([[0], [2], [1]]))


def pytest_report_header(config):
    return f"hmmfast {hmmfast.__version__} imported from {hmmfast.__file__}"


@pytest.fixture(autouse=True, scope="session")
def _neutral_working_directory(tmp_path_factory):
    """Run the suite from an empty directory: subprocesses (``python -c``/``-m``) put
    their working directory first on sys.path, and the repository root would shadow the
    installed, compiled package with the source tree."""
    previous = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(previous)


IMPORT_REPORT = """
import importlib, json, sys

WATCHED = ("hmmfast.monitor", "dask", "distributed", "pandas", "starlette", "uvicorn",
           "prometheus_client", "matplotlib")


def loaded():
    return [m for m in WATCHED if m in sys.modules]


def refused(extra, module):
    sys.modules[extra] = None  # as if the extra were not installed
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return str(exc)
    finally:
        del sys.modules[extra]
    return None


import hmmfast
report = {"hmmfast": loaded()}
import hmmfast.monitor
report["hmmfast.monitor"] = loaded()
report["hmmfast.serve without starlette"] = refused("starlette", "hmmfast.serve")
report["hmmfast.distributed without dask"] = refused("dask", "hmmfast.distributed")
print(json.dumps(report))
"""


@pytest.fixture(scope="session")
def import_report():
    """What a fresh interpreter loads with ``import hmmfast`` and ``import hmmfast.monitor``
    (the optional packages among WATCHED), and the ImportError text of each optional
    subpackage when its extra is missing: one subprocess for every import test."""
    out = subprocess.run([sys.executable, "-c", IMPORT_REPORT], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
