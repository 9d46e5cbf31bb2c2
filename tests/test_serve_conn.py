"""hmmfast serve over real connections: keep-alive and the README's client, slow clients,
concurrency and backlog, the drain before shutdown, and the command line's exit statuses
(issue 27, defects 4 and 6, /readyz in defect 8; the serve items of issue 26)."""

import http.client
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the [serve] extra is part of the [test] extra")
pytest.importorskip("httpx")
import httpx
from serve_support import Server, categorical, free_port

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("conn") / "cat.npz"
    categorical(0).save(path)
    return path


def readme_client():
    """The HMMClient class of the README's "A Python client", as written there."""
    text = README.read_text()
    block = re.search(r"### A Python client\n.*?```python\n(.*?)```", text, re.S).group(1)
    code = block.split("\nclient = HMMClient()")[0]
    namespace = {}
    exec(compile(code, "README client", "exec"), namespace)
    return namespace["HMMClient"]


def still_open(socks, within):
    """The sockets the server has not closed ``within`` seconds from now (what it sends
    meanwhile is read and dropped)."""
    pending = set(socks)
    deadline = time.monotonic() + within
    while pending and time.monotonic() < deadline:
        readable, _, _ = select.select(list(pending), [], [], 0.2)
        for s in readable:
            try:
                if s.recv(65536) == b"":
                    pending.discard(s)
            except OSError:
                pending.discard(s)
    return pending


def test_readme_client_reconnects_across_an_idle_gap(model_file, tmp_path):
    HMMClient = readme_client()
    with Server(model_file, tmp_path, "--timeout-keep-alive", "1") as server:
        # a plain kept-alive connection is closed by the server after 1 s idle
        plain = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        plain.request("GET", "/healthz")
        assert plain.getresponse().read()
        client = HMMClient(port=server.port)
        first = client.score([[1, 2, 3]])
        first_socket = client.conn.sock
        time.sleep(2.5)
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError,
                            http.client.CannotSendRequest)):
            plain.request("GET", "/healthz")
            plain.getresponse().read()
        assert client.score([[1, 2, 3]]) == first  # the README's client reconnected
        assert client.conn.sock is not first_socket
        time.sleep(2.5)
        assert client.decode([[1, 2]])["states"]


def test_slow_request_heads_are_closed(model_file, tmp_path):
    """Connections that never finish their request head are closed after
    --timeout-header, connections that send nothing after --timeout-keep-alive (the old
    server kept 2,000 half-sent requests open for ever)."""
    with Server(model_file, tmp_path, "--timeout-header", "1", "--timeout-keep-alive",
                "2") as server:
        socks = []
        for i in range(100):
            s = socket.create_connection(("127.0.0.1", server.port))
            if i % 2:
                s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\n")  # half a head
            socks.append(s)
        drip = socket.create_connection(("127.0.0.1", server.port))
        for b in b"GET /healthz HTTP/1.1\r\n":  # a byte every 0.1 s: the head's time counts
            try:
                drip.sendall(bytes([b]))
            except OSError:
                break
            time.sleep(0.1)
        assert not still_open([*socks, drip], 15)
        for s in (*socks, drip):
            s.close()
        # a whole request in time is served, and its kept-alive connection may idle
        with httpx.Client(base_url=server.url) as c:
            assert c.get("/healthz").status_code == 200
            time.sleep(1.5)
            assert c.get("/healthz").status_code == 200


def test_slow_request_body_gets_408(model_file, tmp_path):
    with Server(model_file, tmp_path, "--timeout-body", "1") as server, \
            socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
                  b'{"sessions"')
        s.settimeout(10)
        reply = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 408")
        assert b"--timeout-body" in reply and b"connection: close" in reply.lower()


def test_limit_concurrency_and_backlog(model_file, tmp_path):
    with Server(model_file, tmp_path, "--limit-concurrency", "3", "--backlog", "7") as server:
        listen = subprocess.run(["ss", "-ltnH", f"sport = :{server.port}"],
                                capture_output=True, text=True, check=True).stdout.split()
        assert listen[2] == "7"  # Send-Q of a listening socket: its backlog
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
        time.sleep(0.3)
        r = httpx.get(server.url + "/healthz")
        assert r.status_code == 503
        for s in held:
            s.close()
        time.sleep(0.3)
        assert httpx.get(server.url + "/healthz").status_code == 200


def test_drain_answers_readyz_503_while_serving(model_file, tmp_path):
    server = Server(model_file, tmp_path, "--drain-seconds", "3")
    try:
        assert httpx.get(server.url + "/readyz").status_code == 200
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert httpx.get(server.url + "/readyz").status_code == 503
        assert httpx.get(server.url + "/v2/health/ready").status_code == 503
        assert httpx.get(server.url + "/healthz").status_code == 200
        r = httpx.post(server.url + "/v1/score", json={"sessions": [[1, 2]]})
        assert r.status_code == 200  # still served while the load balancer catches up
        server.proc.wait(30)
    finally:
        status, err = server.stop()
    assert status == 0, err
    assert "draining for 3 s" in err


def test_port_in_use_is_one_line_before_going_live(model_file, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "hmmfast.serve", str(model_file),
                              "--no-state", "--port", str(port)], capture_output=True,
                             text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        f"hmmfast: error: cannot listen on 127.0.0.1:{port}: Address already in use")
    assert "is live" not in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("command", [["-m", "hmmfast.serve"], ["-m", "hmmfast", "serve"]])
def test_bad_port_is_one_line(model_file, command):
    out = subprocess.run([sys.executable, *command, str(model_file), "--port", "80000"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "expected a port number 0-65535, got 80000" in \
        out.stderr


SANS_EXTRA = """
import sys
sys.modules["starlette"] = None
from hmmfast._cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_help_without_the_extra(model_file):
    out = subprocess.run([sys.executable, "-c", SANS_EXTRA, "serve", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--timeout-keep-alive" in out.stdout and "--model-dir" in out.stdout
    out = subprocess.run([sys.executable, "-c", SANS_EXTRA, "serve", str(model_file)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and 'pip install "hmmfast[serve]"' in out.stderr
    assert "Traceback" not in out.stderr


INTERRUPTED = """
import sys, time
import hmmfast.serve._app as app
real = app.load_version
def slow(path, settings):
    print("loading", flush=True)
    time.sleep(60)
    return real(path, settings)
app.load_version = slow
from hmmfast.serve import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_during_start_up_exits_130(model_file):
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED, str(model_file), "--no-state",
                             "--port", str(free_port())], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "loading"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err


def test_ctrl_c_after_start_up_exits_130(model_file, tmp_path):
    server = Server(model_file, tmp_path)
    status, err = server.stop(signal.SIGINT)
    assert status == 130 and "Traceback" not in err


def test_accepted_connections_do_not_wait_for_acks():
    """The listening socket hmmfast serve binds itself must give asyncio's accepted
    connections TCP_NODELAY (it sets it only for sockets of protocol IPPROTO_TCP; without
    it Nagle's algorithm and delayed ACKs added ~40 ms to every small reply)."""
    import asyncio

    from hmmfast.serve._run import listen

    async def accept_one():
        seen = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport):
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        sock = listen("127.0.0.1", 0, 8)
        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(*sock.getsockname())
            nodelay = await asyncio.wait_for(seen, 10)
            writer.close()
        return nodelay

    assert asyncio.run(accept_one()) != 0


def test_command_line_defaults_are_the_settings():
    """`hmmfast serve`'s option defaults (parsed without the extra) are the ones the
    service's Settings and run() state."""
    import argparse
    import inspect

    from hmmfast._serve_args import add_arguments
    from hmmfast.serve import Settings
    from hmmfast.serve._run import run

    args = add_arguments(argparse.ArgumentParser()).parse_args(["m.npz"])
    defaults = Settings()
    for name in ("max_body_bytes", "max_sessions", "max_observations", "drift_window",
                 "timeout_body", "load_timeout", "model_name", "threads"):
        assert getattr(args, name) == getattr(defaults, name), name
    signature = inspect.signature(run).parameters
    for name in ("host", "port", "timeout_keep_alive", "timeout_header", "limit_concurrency",
                 "backlog", "drain_seconds"):
        assert getattr(args, name) == signature[name].default, name
