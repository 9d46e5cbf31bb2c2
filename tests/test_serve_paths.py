"""hmmfast serve: which model files an admin call may load, and loads that cannot hang
the server (issue 27, defect 5)."""

import os
import subprocess
import sys
import threading
import time

import pytest

import hmmfast

pytest.importorskip("starlette", reason="the [serve] extra is part of the [test] extra")
pytest.importorskip("httpx")
import httpx
from serve_support import AUTH, TOKEN, Server, TestClient, assert_error, categorical

from hmmfast.serve import create_app
from hmmfast.serve._json import quote


@pytest.fixture
def layout(tmp_path):
    """models/ (the model directory: a.npz, b.npz, a FIFO, a sub-directory, links) and
    elsewhere/ (a valid model outside it)."""
    models, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    models.mkdir()
    elsewhere.mkdir()
    categorical(0).save(models / "a.npz")
    categorical(1).save(models / "b.npz")
    categorical(2).save(elsewhere / "outside.npz")
    os.mkfifo(models / "fifo.npz")
    (models / "sub").mkdir()
    categorical(3).save(models / "sub" / "c.npz")
    os.symlink(elsewhere / "outside.npz", models / "link-out.npz")
    os.symlink(models / "b.npz", models / "link-in.npz")
    return models, elsewhere


REFUSED = [
    "{elsewhere}/outside.npz",        # exists, outside
    "{elsewhere}/missing.npz",        # does not exist, outside
    "missing.npz",                    # does not exist, inside
    "../elsewhere/outside.npz",       # escapes by ..
    "link-out.npz",                   # a link inside to a file outside
    "fifo.npz",                       # not a regular file (would block an open)
    "sub",                            # a directory
    "/etc/hostname",                  # a system file
    ".",
]


def test_refusals_are_one_message(layout):
    models, elsewhere = layout
    messages = set()
    with TestClient(create_app(models / "a.npz", admin_token=TOKEN)) as c:
        for path in REFUSED:
            path = path.format(elsewhere=elsewhere)
            for endpoint, body in (("/v1/models", {"path": path}),
                                   ("/v1/models/ab", {"path": path, "fraction": 0.5})):
                r = c.post(endpoint, json=body, headers=AUTH)
                err = assert_error(r, 403, "model_path_refused", "--model-dir")
                messages.add(err["message"].replace(quote(path), "PATH"))
        assert len(messages) == 1, messages  # nothing tells which files exist
        assert c.get("/v1/models").json()["live"] == hmmfast.load(models / "a.npz").fingerprint
        # allowed: relative to the model directory, a link that stays inside, a sub-directory
        for path, name in (("b.npz", "b.npz"), ("link-in.npz", "b.npz"),
                           (str(models / "sub" / "c.npz"), "sub/c.npz")):
            r = c.post("/v1/models", json={"path": path}, headers=AUTH)
            assert r.status_code == 200, r.text
            assert r.json()["live"] == hmmfast.load(models / name).fingerprint


def test_model_dir_option(layout):
    models, elsewhere = layout
    app = create_app(models / "a.npz", admin_token=TOKEN, model_dir=elsewhere)
    with TestClient(app) as c:
        assert c.post("/v1/models", json={"path": "outside.npz"}, headers=AUTH).status_code == 200
        assert_error(c.post("/v1/models", json={"path": str(models / "b.npz")}, headers=AUTH),
                     403, "model_path_refused")


def test_loads_time_out_and_do_not_pile_up(layout, monkeypatch):
    """A load stuck on slow storage answers 504 after --load-timeout; with both loader
    threads stuck, a third load is refused at once (503); data requests go on."""
    from hmmfast.serve import _paths

    models, _ = layout
    release = threading.Event()
    real = _paths.load_version

    def stuck(path, settings):
        release.wait(30)
        return real(path, settings)

    monkeypatch.setattr(_paths, "load_version", stuck)
    app = create_app(models / "a.npz", admin_token=TOKEN, load_timeout=0.3)
    try:
        with TestClient(app) as c:
            for _ in range(2):
                assert_error(c.post("/v1/models", json={"path": "b.npz"}, headers=AUTH), 504,
                             "load_timeout", "--load-timeout")
            assert_error(c.post("/v1/models", json={"path": "b.npz"}, headers=AUTH), 503,
                         "loader_busy")
            assert c.post("/v1/score", json={"sessions": [[1, 2]]}).status_code == 200
            release.set()
            deadline = time.monotonic() + 30
            while True:  # the loader threads come back
                r = c.post("/v1/models", json={"path": "b.npz"}, headers=AUTH)
                if r.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert r.status_code == 200, r.text
    finally:
        release.set()


@pytest.mark.slow
def test_a_fifo_never_blocks_the_server(layout, tmp_path):
    """Over the wire: 40 admin calls naming a FIFO are refused at once, and large data
    requests and admin calls keep working (the old server tied a thread per call for
    ever)."""
    models, _ = layout
    with Server(models / "a.npz", tmp_path) as server, \
            httpx.Client(base_url=server.url, timeout=10, headers=AUTH) as c:
        for _ in range(40):
            assert_error(c.post("/v1/models", json={"path": "fifo.npz"}), 403,
                         "model_path_refused")
        body = {"sessions": [[1, 2, 3, 4] * 50] * 400}  # > 64 KiB: a worker thread
        assert c.post("/v1/score", json=body).status_code == 200
        assert c.post("/v1/models", json={"path": "b.npz"}).status_code == 200


def test_starting_on_a_fifo_fails_at_once(layout):
    models, _ = layout
    out = subprocess.run([sys.executable, "-m", "hmmfast.serve", str(models / "fifo.npz"),
                          "--no-state", "--port", "0"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    assert out.stderr.startswith("hmmfast: error: model file") and "not a regular file" in \
        out.stderr and "Traceback" not in out.stderr
