"""Where results and model files go (issue 26): devices, FIFOs and /dev/fd written in
place, symlinks followed, the umask honoured, outputs opened before the work, an output
that is an input refused, SIGTERM and Ctrl-C (also during start-up) with the temporary
file removed, crash leftovers swept, errors that name the target, a loader that never
blocks on a FIFO, and the extras' one-line errors.

Many of these run ``python -m hmmfast`` as a subprocess: signals, exit statuses, the
umask and resource limits are properties of a process. Nothing here writes to /dev:
the old code replaced the target, and as root that would replace the device.
"""

import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import hmmfast
from hmmfast import _cli

ROOT = str(Path(hmmfast.__file__).parents[1])
ENV = {**os.environ, "PYTHONPATH": ROOT}
POSIX = pytest.mark.skipif(os.name != "posix", reason="POSIX files and signals")


def casino():
    from hmmfast._demo import casino_model

    return casino_model()


@pytest.fixture
def files(tmp_path):
    """A saved casino model, 30 sequences as text and the scores the API gives them."""
    model = casino()
    model.save(tmp_path / "m.npz")
    rng = np.random.default_rng(3)
    seqs = [model.sample(int(rng.integers(5, 40)), random_state=int(s))[0]
            for s in rng.integers(0, 2**31, 30)]
    (tmp_path / "d.txt").write_text("".join(" ".join(map(str, s[:, 0])) + "\n" for s in seqs))
    return tmp_path, model, [model.score(s) for s in seqs]


def command(*args, **kw):
    return [sys.executable, "-m", "hmmfast", *map(str, args)]


def run(*args, timeout=120, **kw):
    return subprocess.run(command(*args), env=kw.pop("env", ENV), capture_output=True,
                          text=True, timeout=timeout, **kw)


def one_error_line(err):
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hmmfast: error: "), err
    return lines[0]


def scores_of(text):
    return [float(line) for line in text.splitlines()]


def temp_files(directory):
    return sorted(p.name for p in Path(directory).iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------ targets that are not files


@POSIX
def test_results_to_a_fifo_are_written_into_it(files):
    d, _, want = files
    fifo = d / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdout.buffer.write("
                               "open(sys.argv[1], 'rb').read())", str(fifo)],
                              stdout=subprocess.PIPE)
    try:
        status = run("score", d / "m.npz", d / "d.txt", "-o", fifo).returncode
        out, _ = reader.communicate(timeout=60)
    finally:
        reader.kill()
    assert status == 0
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # the old code replaced it by a file
    assert scores_of(out.decode()) == want


@POSIX
def test_results_to_dev_fd_of_a_pipe(files):
    """``-o >(gzip > x.gz)``: the shell passes /dev/fd/N, a pipe."""
    d, _, want = files
    r, w = os.pipe()
    proc = subprocess.Popen(command("score", d / "m.npz", d / "d.txt", "-o", f"/dev/fd/{w}"),
                            env=ENV, pass_fds=(w,), stderr=subprocess.PIPE)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        out = pipe.read()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert scores_of(out.decode()) == want


def test_model_saved_to_a_fifo_is_the_model(tmp_path):
    if os.name != "posix":
        pytest.skip("FIFOs")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdout.buffer.write("
                               "open(sys.argv[1], 'rb').read())", str(fifo)],
                              stdout=subprocess.PIPE)
    try:
        casino().save(fifo)
        data, _ = reader.communicate(timeout=60)
    finally:
        reader.kill()
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # written into, not replaced
    (tmp_path / "copy.npz").write_bytes(data)
    casino().save(tmp_path / "direct.npz")
    assert data == (tmp_path / "direct.npz").read_bytes()  # same bytes as a regular file
    assert hmmfast.load(tmp_path / "copy.npz").fingerprint == casino().fingerprint


@POSIX
def test_symlinks_are_followed_not_replaced(files):
    d, model, want = files
    (d / "real.txt").write_text("old\n")
    os.symlink("real.txt", d / "link.txt")
    assert run("score", d / "m.npz", d / "d.txt", "-o", d / "link.txt").returncode == 0
    assert os.path.islink(d / "link.txt")
    assert scores_of((d / "real.txt").read_text()) == want
    os.symlink("real.npz", d / "model-link.npz")  # dangling: save creates its target
    model.save(d / "model-link.npz")
    assert os.path.islink(d / "model-link.npz")
    assert hmmfast.load(d / "real.npz").fingerprint == model.fingerprint


@POSIX
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_results_files_honour_the_umask(files, umask, mode):
    d, _, _ = files
    out = d / "scores.txt"
    result = subprocess.run(command("score", d / "m.npz", d / "d.txt", "-o", out), env=ENV,
                            capture_output=True, preexec_fn=lambda: os.umask(umask),
                            timeout=120)
    assert result.returncode == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == mode  # the old code: always 0600
    os.chmod(out, 0o604)  # an existing file keeps its own mode
    subprocess.run(command("score", d / "m.npz", d / "d.txt", "-o", out), env=ENV,
                   capture_output=True, preexec_fn=lambda: os.umask(umask), timeout=120)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o604


# ------------------------------------------------------------------ before the work


def _lock(directory, locked):
    """Make ``directory`` unwritable (or writable again): its mode for a user; for root,
    who ignores modes, the immutable attribute (chattr), when the file system has it."""
    if os.geteuid() != 0:
        os.chmod(directory, 0o555 if locked else 0o755)
        return True
    result = subprocess.run(["chattr", "+i" if locked else "-i", str(directory)],
                            capture_output=True)
    return result.returncode == 0


@pytest.fixture
def readonly_dir(tmp_path):
    """(a directory holding data, a read-only directory inside it)."""
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    ro = tmp_path / "ro"
    ro.mkdir()
    rng = np.random.default_rng(0)
    (tmp_path / "d.txt").write_text("".join(" ".join(map(str, rng.integers(0, 3, 40))) + "\n"
                                            for _ in range(200)))
    try:
        if not _lock(ro, True):
            pytest.skip("cannot make a directory read-only here (root without chattr)")
        yield tmp_path, ro
    finally:
        _lock(ro, False)


def test_fit_to_a_readonly_place_fails_before_fitting(readonly_dir):
    base, ro = readonly_dir
    target = ro / "model.npz"
    result = run("fit", base / "d.txt", "-o", target, "--states", 3, "--iter", 50,
                 "--progress", cwd=base)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert str(target) in line and ".tmp" not in line
    assert "Permission denied" in line or "Operation not permitted" in line
    assert "iteration" not in result.stderr  # the fit never started (old code: it ran)
    assert not target.exists()


def test_bench_out_to_a_readonly_place_fails_before_benchmarking(readonly_dir):
    """``-X importtime`` lists every finished import on stderr: the benchmark imports
    its peer, hmmlearn, when it starts; refused first, it never does."""
    pytest.importorskip("hmmlearn")
    base, ro = readonly_dir
    result = subprocess.run([sys.executable, "-X", "importtime", *command(
        "bench", "--quick", "--out", ro / "bench.md")[1:]], env=ENV, cwd=base,
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "import time:" not in line]
    assert str(ro / "bench.md") in one_error_line("\n".join(errors))
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()
                if "import time:" in line}
    assert "hmmlearn" not in imported  # the old command ran the benchmark, then failed
    assert result.stdout == ""


def test_an_output_that_is_an_input_is_refused(files, capsys):
    d, model, _ = files
    X = np.concatenate([model.sample(20, random_state=1)[0]] * 2)
    np.savez(d / "data.npz", X=X, lengths=[20, 20])
    before = (d / "data.npz").read_bytes()
    assert _cli.main(["fit", str(d / "data.npz"), "-o", str(d / "data.npz")]) == 2
    assert (d / "data.npz").read_bytes() == before
    assert "is the data file" in capsys.readouterr().err
    os.link(d / "d.txt", d / "alias.txt")  # another name of the same file
    assert _cli.main(["score", str(d / "m.npz"), str(d / "d.txt"), "-o",
                      str(d / "alias.txt")]) == 2
    assert _cli.main(["score", str(d / "m.npz"), str(d / "d.txt"), "-o",
                      str(d / "m.npz")]) == 2
    assert "is the model file" in capsys.readouterr().err
    assert hmmfast.load(d / "m.npz").fingerprint == model.fingerprint


# ------------------------------------------------------------------ signals and leftovers


@POSIX
@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_score_removes_the_temporary_file(files, sig, status):
    """The data comes from a FIFO we hold open, so the command is mid-work (its output's
    temporary file created) when the signal arrives."""
    d, _, _ = files
    fifo = d / "in.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen(command("score", d / "m.npz", fifo, "-o", d / "out.txt"),
                            env=ENV, stderr=subprocess.PIPE, text=True)
    with open(fifo, "wb") as feed:  # blocks until the command opens its input
        feed.write(b"0 1 2\n3 4 5\n")
        feed.flush()
        deadline = time.monotonic() + 60
        while not temp_files(d) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert temp_files(d), "the command never created its output"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err  # old code, SIGTERM: killed (-15)
    assert "Traceback" not in err
    assert temp_files(d) == [] and not (d / "out.txt").exists()


@POSIX
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2, 0.5, 1.0, 2.0])
def test_ctrl_c_while_starting_exits_130_without_a_traceback(tmp_path, delay):
    """Ctrl-C at any moment once hmmfast's import has begun (while NumPy, SciPy and the
    kernels load, or later in the command): status 130 and no traceback. ``-X
    importtime`` reports each finished import on stderr; the signal is sent ``delay``
    seconds after the first hmmfast module finished (before: Python's own start-up,
    which no program can handle). 20,000 training sessions keep the demo busy for ~15 s,
    well past the longest delay on a fast machine."""
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "hmmfast", "demo",
                             "clickstream", "--train", "20000"], env=ENV, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.split("|")[-1].strip() == "hmmfast._cli_startup":
            break
    else:
        pytest.fail("hmmfast._cli_startup was never imported:\n" + "".join(lines[-5:]))
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    err = "".join(line for line in proc.stderr if "import time:" not in line)
    proc.wait(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


@POSIX
def test_ctrl_c_turned_into_another_error_still_exits_130(monkeypatch):
    """A compiled module being imported when Ctrl-C comes (SciPy's pybind11 modules) can
    raise ImportError("initialization failed") in place of the KeyboardInterrupt; the
    command line still exits 130 (before: an import traceback and exit 1). Without a
    signal the same error propagates."""
    def interrupted_import(argv):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler runs here
        except KeyboardInterrupt:
            raise ImportError("initialization failed") from None

    def failed_import(argv):
        raise ImportError("initialization failed")

    monkeypatch.setattr(_cli, "_main", interrupted_import)
    assert _cli.main(["demo"]) == 130
    monkeypatch.setattr(_cli, "_main", failed_import)
    with pytest.raises(ImportError):
        _cli.main(["demo"])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_leftover_temporary_files_older_than_a_day_are_swept(tmp_path):
    old, fresh = time.time() - 2 * 86400, time.time() - 3600
    leftovers = {".hmmfast-m.npz.abc123.tmp": old, ".hmmfast-m.npz.def456.tmp": fresh,
                 ".other.m.npz.abc123.tmp": old, ".hmmfast-notes.txt": old}
    for name, mtime in leftovers.items():
        (tmp_path / name).write_bytes(b"x" * 100)
        os.utime(tmp_path / name, (mtime, mtime))
    casino().save(tmp_path / "m.npz")
    names = {p.name for p in tmp_path.iterdir()}
    assert ".hmmfast-m.npz.abc123.tmp" not in names  # ours, older than a day
    assert {".hmmfast-m.npz.def456.tmp", ".other.m.npz.abc123.tmp",
            ".hmmfast-notes.txt", "m.npz"} <= names  # recent, not ours, not a temp file


# ------------------------------------------------------------------ errors that name the file


def _file_limit(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a core dump
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@POSIX
def test_a_full_file_system_error_names_the_file(files):
    """RLIMIT_FSIZE stands for a full disk: the write fails part-way (EFBIG, as ENOSPC
    would), in a regular target, through its temporary file."""
    d, _, _ = files
    out = d / "scores.txt"
    result = subprocess.run(command("score", d / "m.npz", d / "d.txt", "-o", out), env=ENV,
                            capture_output=True, text=True, preexec_fn=_file_limit(64),
                            timeout=120)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert f"{out}: File too large" in line and ".tmp" not in line
    assert temp_files(d) == [] and not out.exists()
    code = ("import hmmfast, sys\nfrom hmmfast._demo import casino_model\n"
            "try:\n    casino_model().save(sys.argv[1])\n"
            "except OSError as exc:\n    print(exc.filename, exc.strerror)\n")
    result = subprocess.run([sys.executable, "-c", code, str(d / "big.npz")], env=ENV,
                            capture_output=True, text=True, preexec_fn=_file_limit(500),
                            timeout=120)
    assert result.stdout.strip() == f"{d / 'big.npz'} File too large", result.stderr
    assert temp_files(d) == []


@POSIX
@pytest.mark.parametrize("how", [["info"], ["score", "DATA"], ["load"]])
def test_a_fifo_is_refused_as_a_model_file_without_blocking(files, how):
    d, _, _ = files
    fifo = d / "model.fifo"
    os.mkfifo(fifo)
    if how == ["load"]:
        code = ("import hmmfast, sys\ntry:\n    hmmfast.load(sys.argv[1])\n"
                "except hmmfast.ModelFileError as exc:\n    print(exc)\n")
        result = subprocess.run([sys.executable, "-c", code, str(fifo)], env=ENV,
                                capture_output=True, text=True, timeout=60)
        message = result.stdout  # the old loader blocked here: TimeoutExpired
    else:
        args = [a.replace("DATA", str(d / "d.txt")) for a in how]
        result = run(args[0], fifo, *args[1:], timeout=60)
        assert result.returncode == 1
        message = one_error_line(result.stderr)
    assert "FIFO" in message and "not a regular file" in message and str(fifo) in message


def test_a_directory_stays_an_os_error(tmp_path):
    with pytest.raises(IsADirectoryError):
        hmmfast.load(tmp_path)
    with pytest.raises(IsADirectoryError):
        casino().save(tmp_path)


# ------------------------------------------------------------------ the extras


def test_serve_help_without_the_extra_helps(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "hmmfast.serve", None)  # as if [serve] were missing
    assert _cli.main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: hmmfast serve MODEL_FILE" in out and 'pip install "hmmfast[serve]"' in out
    assert _cli.main(["serve", "model.npz"]) == 1
    assert capsys.readouterr().err.startswith("hmmfast: error: ")


def test_demo_plot_without_matplotlib_fails_before_the_demo(tmp_path):
    fake = tmp_path / "fake" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = {**ENV, "PYTHONPATH": f"{tmp_path / 'fake'}{os.pathsep}{ROOT}"}
    result = run("demo", "clickstream", "--train", 300, "--plot", tmp_path / "x.png",
                 env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert 'pip install "hmmfast[plot]"' in one_error_line(result.stderr)
    assert result.stdout == ""  # the demo did not run first (it used to, for 21 s)
    assert not (tmp_path / "x.png").exists() and temp_files(tmp_path) == []


def test_output_module_writes_in_place_and_atomically(tmp_path):
    """hmmfast._outputs.Output directly: a regular target is untouched until commit."""
    from hmmfast import _outputs

    target = tmp_path / "t.txt"
    target.write_text("before")
    out = _outputs.Output(target)
    out.file.write(b"after")
    assert target.read_text() == "before" and len(temp_files(tmp_path)) == 1
    out.abort()
    assert target.read_text() == "before" and temp_files(tmp_path) == []
    with _outputs.Output(target) as f:
        f.write(b"after")
    assert target.read_text() == "after" and temp_files(tmp_path) == []
    with pytest.raises(RuntimeError), _outputs.Output(target) as f:
        f.write(b"partial")
        raise RuntimeError("the work failed")
    assert target.read_text() == "after" and temp_files(tmp_path) == []


def test_info_json_reports_the_version_id(files, capsys):
    d, _, _ = files
    assert _cli.main(["info", str(d / "m.npz"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["version_id"] == hmmfast.read_header(d / "m.npz")["version_id"]


def test_errors_about_inputs_still_name_the_input(files, capsys):
    """The output's error naming applies to the output's own errors only."""
    d, _, _ = files
    assert _cli.main(["score", str(d / "m.npz"), str(d / "missing.txt"), "-o",
                      str(d / "out.txt")]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"{d / 'missing.txt'}: No such file or directory" in line
    assert temp_files(d) == [] and not (d / "out.txt").exists()
