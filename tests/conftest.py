import os

import numpy as np
import pytest

import hmmfast


@pytest.fixture
def make_model():
    """Factory: CategoricalHMM with the given parameters."""
    return make_categorical


def make_categorical(startprob, transmat, emissionprob, implementation="scaling", **kw):
    model = hmmfast.CategoricalHMM(
        n_components=len(startprob), implementation=implementation, **kw
    )
    model.startprob_ = startprob
    model.transmat_ = transmat
    model.emissionprob_ = emissionprob
    return model


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
