"""Shared pieces of the hmmfast serve tests: models, the in-process client, a real server
in a subprocess, and the JSON error check."""

import os
import socket
import subprocess
import sys
import time
import warnings

import numpy as np

import hmmfast

with warnings.catch_warnings():  # starlette 1.x prefers httpx2; httpx works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: F401  (re-exported)

import httpx

TOKEN = "test-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def categorical(seed, n=5, m=10):
    rng = np.random.default_rng(seed)
    model = hmmfast.CategoricalHMM(n)
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n), size=n)
    model.emissionprob_ = rng.dirichlet(np.ones(m), size=n)
    return model


def gaussian(seed=0, n_features=2, n=3):
    rng = np.random.default_rng(seed)
    model = hmmfast.GaussianHMM(n, covariance_type="diag")
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n), size=n)
    model.means_ = rng.normal(scale=3, size=(n, n_features))
    model.covars_ = rng.uniform(0.5, 2, size=(n, n_features))
    return model


def poisson(seed=0, n_features=2):
    rng = np.random.default_rng(seed)
    model = hmmfast.PoissonHMM(2)
    model.startprob_ = [0.5, 0.5]
    model.transmat_ = [[0.9, 0.1], [0.2, 0.8]]
    model.lambdas_ = rng.uniform(0.5, 5, size=(2, n_features))
    return model


def draw(model, n, seed, low=3, high=30):
    rng = np.random.default_rng(seed)
    return [model.sample(int(rng.integers(low, high)), random_state=rng)[0]
            for _ in range(n)]


def assert_error(r, status, code, *words):
    """The JSON error of ``r``: its status, code and words in its message."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["status"] == status and err["code"] == code, err
    for w in words:
        assert w in err["message"], (w, err["message"])
    return err


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m hmmfast.serve`` in a subprocess on a free port, ready when built."""

    def __init__(self, model_path, tmp_path, *options, token=True, ready=True):
        args = [sys.executable, "-m", "hmmfast.serve", str(model_path)]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if token:
            token_file = tmp_path / "token"
            token_file.write_text(TOKEN + "\n")
            token_file.chmod(0o600)
            args += ["--admin-token-file", str(token_file)]
        if "--state-dir" not in options and "--no-state" not in options:
            args += ["--state-dir", str(tmp_path)]  # never the shared models' directory
        if "--drain-seconds" not in options:
            args += ["--drain-seconds", "0"]
        env = {k: v for k, v in os.environ.items() if k != "HMMFAST_ADMIN_TOKEN"}
        self.proc = subprocess.Popen(
            [*args, "--port", str(self.port), "--log-level", "info", *options],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
        if ready:
            self.wait_ready()

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read().decode())
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not become ready within {timeout} s")
            time.sleep(0.05)

    def stop(self, sig=None):
        """Stop it (SIGTERM unless ``sig``); returns (exit status, stderr text)."""
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        err = self.proc.stderr.read().decode()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode, err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.proc.stdout.closed:
            self.stop()
