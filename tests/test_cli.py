"""The command line: every command, data format and error path, against the Python API.

A few tests run ``python -m hmmfast`` as a subprocess (the real entry point, real exit
statuses and stderr); the rest call ``hmmfast._cli.main(argv)`` in-process, which is the
same code without the interpreter start-up. The compiled reader and writer
(hmmfast._textio) are checked against pure-Python parsers and Python's repr.
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from factories import categorical, needs, sessions
from hypothesis import given, settings
from hypothesis import strategies as st

import hmmfast
from hmmfast import _cli, _cli_data, _textio

ENV = {**os.environ, "PYTHONPATH": str(Path(hmmfast.__file__).parents[1])}


def run_subprocess(*args, cwd, stdin=None):
    return subprocess.run([sys.executable, "-m", "hmmfast", *map(str, args)], cwd=cwd,
                          env=ENV, input=stdin, capture_output=True, text=True, timeout=120)


def cli(capsysbinary, *args):
    """(exit status, stdout text, stderr text) of main(args) run in-process."""
    try:
        status = _cli.main([str(a) for a in args])
    except SystemExit as exc:  # argparse: --help, usage errors
        status = exc.code
    out, err = capsysbinary.readouterr()
    return status, out.decode(), err.decode()


def one_error_line(err):
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hmmfast: error: "), err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------------------ fixtures


def casino():
    from hmmfast._demo import casino_model

    return casino_model()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A saved casino model and its sequences in every data format."""
    d = tmp_path_factory.mktemp("cli")
    model = casino()
    model.save(d / "casino.npz")
    seqs = sessions(model, 40, 1, 1, 30)
    text = "".join(" ".join(map(str, s[:, 0])) + "\n" for s in seqs)
    (d / "rolls.txt").write_text(text)
    (d / "rolls_ids.txt").write_text("".join(f"u{k}\t" + " ".join(map(str, s[:, 0])) + "\n"
                                             for k, s in enumerate(seqs)))
    (d / "rolls.jsonl").write_text("".join(json.dumps(s[:, 0].tolist()) + "\n" for s in seqs))
    (d / "rolls_ids.jsonl").write_text("".join(
        json.dumps({"id": k if k % 2 else f"s{k}", "obs": s[:, 0].tolist()}) + "\n"
        for k, s in enumerate(seqs)))
    np.savez(d / "rolls.npz", X=np.concatenate(seqs), lengths=[len(s) for s in seqs])
    np.save(d / "one.npy", seqs[0])
    return d, model, seqs


def expected_scores(model, seqs):
    return [model.score(s) for s in seqs]


def parse_text_scores(out):
    return [float(line.split("\t")[-1]) for line in out.splitlines()]


def parse_text_decode(out, ids=False):
    rows = []
    for line in out.splitlines():
        fields = line.split("\t")
        if ids:
            fields = fields[1:]
        assert len(fields) == 2, line
        rows.append((float(fields[0]), [int(v) for v in fields[1].split()]))
    return rows


def check_decode_rows(model, seqs, rows):
    assert len(rows) == len(seqs)
    for seq, (logprob, states) in zip(seqs, rows, strict=True):
        want_logprob, want_states = model.decode(seq)
        assert logprob == pytest.approx(want_logprob, rel=1e-12)
        assert states == want_states.tolist()


# ------------------------------------------------------------------------------ subprocesses


def test_module_entry_point_fit_score_decode_round_trip(tmp_path, files):
    d, _, seqs = files
    fit = run_subprocess("fit", d / "rolls.txt", "-o", tmp_path / "m.npz", "--states", 2,
                         "--seed", 0, "--iter", 20, cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr
    assert fit.stdout == ""
    assert "wrote" in fit.stderr and "Traceback" not in fit.stderr
    model = hmmfast.load(tmp_path / "m.npz")
    header = hmmfast.read_header(tmp_path / "m.npz")
    assert header["metadata"]["command"].startswith("hmmfast fit ")
    assert header["metadata"]["data"]["n_sequences"] == len(seqs)
    assert header["fit"]["n_sequences"] == len(seqs)

    score = run_subprocess("score", tmp_path / "m.npz", d / "rolls.txt", cwd=tmp_path)
    assert score.returncode == 0 and score.stderr == ""
    assert parse_text_scores(score.stdout) == pytest.approx(expected_scores(model, seqs),
                                                            rel=1e-12)
    decode = run_subprocess("decode", tmp_path / "m.npz", d / "rolls.txt", "--threads", 2,
                            cwd=tmp_path)
    assert decode.returncode == 0 and decode.stderr == ""
    check_decode_rows(model, seqs, parse_text_decode(decode.stdout))


def test_subprocess_errors_are_one_line_with_exit_status(tmp_path, files):
    d, _, _ = files
    (tmp_path / "bad.txt").write_text("1 2 3\n4 five 6\n")
    bad = run_subprocess("score", d / "casino.npz", "bad.txt", cwd=tmp_path)
    assert bad.returncode == 1 and bad.stdout == ""
    line = one_error_line(bad.stderr)
    assert "bad.txt: line 2, column 3" in line and "'five'" in line

    usage = run_subprocess("fit", "data.txt", "--states", "zero", cwd=tmp_path)
    assert usage.returncode == 2
    assert "--states" in one_error_line(usage.stderr)

    (tmp_path / "corrupt.npz").write_bytes(b"not a model at all")
    corrupt = run_subprocess("decode", "corrupt.npz", d / "rolls.txt", cwd=tmp_path)
    assert corrupt.returncode == 1
    assert "corrupt.npz" in one_error_line(corrupt.stderr)


def test_standard_input_and_help_of_every_command(tmp_path, files):
    d, model, seqs = files
    text = (d / "rolls.txt").read_text()
    result = run_subprocess("score", d / "casino.npz", "-", cwd=tmp_path, stdin=text)
    assert result.returncode == 0, result.stderr
    assert parse_text_scores(result.stdout) == pytest.approx(expected_scores(model, seqs),
                                                             rel=1e-12)
    helped = run_subprocess("decode", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "LOGPROB<TAB>S0 S1" in helped.stdout


def test_progress_on_a_terminal_redraws_one_line(tmp_path, files):
    pty = pytest.importorskip("pty")
    d, _, _ = files
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "hmmfast", "fit", str(d / "rolls.txt"), "-o", "m.npz",
             "--seed", "0", "--iter", "3"], env=ENV, cwd=tmp_path, stdout=subprocess.PIPE,
            stderr=follower, timeout=120)
        os.close(follower)
        follower = None
        err = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer closed
                break
            if not chunk:
                break
            err += chunk
    finally:
        os.close(leader)
        if follower is not None:
            os.close(follower)
    assert proc.returncode == 0
    text = err.decode()
    assert re.search(r"\r(?!\n)hmmfast fit: \[#+-*\] iteration 3/3", text)  # redrawn
    assert text.count("\n") in (2, 3)  # the progress line, a warning, the summary


def test_closed_output_pipe_exits_quietly(tmp_path, files):
    d, _, _ = files
    big = tmp_path / "big.txt"
    big.write_text((d / "rolls.txt").read_text() * 2000)  # 80,000 lines, one write
    proc = subprocess.Popen([sys.executable, "-m", "hmmfast", "decode", str(d / "casino.npz"),
                             str(big)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (141, -signal.SIGPIPE)
    assert err == ""


# ------------------------------------------------------------------------------ in-process


@pytest.mark.parametrize("command", ["demo", "fit", "score", "decode", "info", "bench"])
def test_help(capsysbinary, command):
    status, out, err = cli(capsysbinary, command, "--help")
    assert status == 0 and err == ""
    assert out.startswith(f"usage: hmmfast {command}")


@needs("starlette")
def test_serve_is_handed_to_the_serve_extra(capsysbinary, monkeypatch):
    status, out, _ = cli(capsysbinary, "serve", "--help")
    assert status == 0 and out.startswith("usage: hmmfast serve") and "--port" in out
    monkeypatch.setitem(sys.modules, "hmmfast.serve", None)  # as if the extra were missing
    status, _, err = cli(capsysbinary, "serve", "model.npz")
    assert status == 1 and "hmmfast.serve" in one_error_line(err)


def test_demo_unchanged(capsysbinary):
    status, out, _ = cli(capsysbinary, "demo", "--rolls", 50)
    assert status == 0 and "dishonest casino (50 rolls, seed 7)" in out


@pytest.mark.parametrize("data, ids", [("rolls.txt", None), ("rolls_ids.txt", "text"),
                                       ("rolls.jsonl", None), ("rolls_ids.jsonl", "json"),
                                       ("rolls.npz", None)])
def test_every_format_scores_and_decodes_like_the_api(capsysbinary, files, data, ids):
    d, model, seqs = files
    extra = ["--ids"] if ids == "text" else []
    status, out, err = cli(capsysbinary, "score", d / "casino.npz", d / data, *extra)
    assert status == 0, err
    lines = out.splitlines()
    assert parse_text_scores(out) == pytest.approx(expected_scores(model, seqs), rel=1e-12)
    if ids == "text":
        assert [line.split("\t")[0] for line in lines] == [f"u{k}" for k in range(len(seqs))]
    elif ids == "json":
        assert [line.split("\t")[0] for line in lines[:3]] == ["s0", "1", "s2"]
    else:
        assert "\t" not in out
    status, out, err = cli(capsysbinary, "decode", d / "casino.npz", d / data, *extra)
    assert status == 0, err
    check_decode_rows(model, seqs, parse_text_decode(out, ids=ids is not None))


def test_json_output(capsysbinary, files):
    d, model, seqs = files
    status, out, _ = cli(capsysbinary, "decode", d / "casino.npz", d / "rolls_ids.jsonl",
                         "--json")
    assert status == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in records[:3]] == ["s0", 1, "s2"]
    for seq, r in zip(seqs, records, strict=True):
        logprob, states = model.decode(seq)
        assert r["logprob"] == pytest.approx(logprob, rel=1e-12)
        assert r["states"] == states.tolist()
        assert set(r) == {"id", "logprob", "states"}
    status, out, _ = cli(capsysbinary, "score", d / "casino.npz", d / "rolls_ids.txt", "--ids",
                         "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert records[0] == {"id": "u0", "score": pytest.approx(model.score(seqs[0]), rel=1e-12)}
    status, out, _ = cli(capsysbinary, "score", d / "casino.npz", d / "one.npy", "--json")
    assert json.loads(out) == {"score": pytest.approx(model.score(seqs[0]), rel=1e-12)}


def test_map_decoding_and_empty_input(capsysbinary, files, tmp_path):
    d, model, seqs = files
    status, out, _ = cli(capsysbinary, "decode", d / "casino.npz", d / "rolls.txt",
                         "--algorithm", "map")
    assert status == 0
    for seq, (logprob, states) in zip(seqs, parse_text_decode(out), strict=True):
        want_logprob, want_states = model.decode(seq, algorithm="map")
        assert logprob == pytest.approx(want_logprob, rel=1e-12)
        assert states == want_states.tolist()
    (tmp_path / "empty.txt").write_bytes(b"")
    status, out, err = cli(capsysbinary, "score", d / "casino.npz", tmp_path / "empty.txt")
    assert (status, out, err) == (0, "", "")
    status, _, err = cli(capsysbinary, "fit", tmp_path / "empty.txt", "-o", tmp_path / "m.npz")
    assert status == 1 and "holds no sequences" in one_error_line(err)


def test_output_file_and_chunks(capsysbinary, files, tmp_path):
    d, _, _ = files
    status, whole, _ = cli(capsysbinary, "decode", d / "casino.npz", d / "rolls.txt")
    status, out, err = cli(capsysbinary, "decode", d / "casino.npz", d / "rolls.txt",
                           "--chunk", 7, "-o", tmp_path / "out.txt")
    assert status == 0 and out == "" and err == ""
    assert (tmp_path / "out.txt").read_text() == whole


def test_text_blocks_split_lines_anywhere(capsysbinary, files, monkeypatch, tmp_path):
    """Tiny read blocks: lines cross block boundaries, some lines are longer than a block."""
    d, model, seqs = files
    long_seq = model.sample(500, random_state=3)[0]
    path = tmp_path / "mixed.txt"
    all_seqs = [*seqs, long_seq, *seqs[:5]]
    path.write_text("".join(" ".join(map(str, s[:, 0])) + "\n" for s in all_seqs)
                    .rstrip("\n"))  # no newline at the end
    monkeypatch.setattr(_cli_data, "BLOCK", 61)
    status, out, err = cli(capsysbinary, "score", d / "casino.npz", path, "--chunk", 3)
    assert status == 0, err
    assert parse_text_scores(out) == pytest.approx(expected_scores(model, all_seqs), rel=1e-12)


def test_impossible_sequences(capsysbinary, tmp_path):
    model = categorical([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5, 0.0], [0.2, 0.2, 0.6]])
    model.save(tmp_path / "m.npz")
    (tmp_path / "x.txt").write_text("0 1\n0 2 1\n1\n")
    status, out, _ = cli(capsysbinary, "score", tmp_path / "m.npz", tmp_path / "x.txt")
    assert status == 0
    assert out.splitlines() == [repr(model.score([[0], [1]])), "-inf", repr(float(np.log(0.5)))]
    status, out, _ = cli(capsysbinary, "decode", tmp_path / "m.npz", tmp_path / "x.txt")
    assert out.splitlines()[1] == "-inf\t"
    status, out, _ = cli(capsysbinary, "decode", tmp_path / "m.npz", tmp_path / "x.txt",
                         "--json")
    assert json.loads(out.splitlines()[1]) == {"logprob": None, "states": []}


def test_continuous_families(capsysbinary, tmp_path):
    g = hmmfast.GaussianHMM(2)
    g.startprob_ = [0.5, 0.5]
    g.transmat_ = [[0.9, 0.1], [0.2, 0.8]]
    g.means_ = [[0.0, 0.0], [3.0, -1.0]]
    g.covars_ = [[1.0, 0.5], [0.7, 1.2]]
    seqs = sessions(g, 12, 4, 2, 15)
    (tmp_path / "g.txt").write_text("".join(
        ", ".join(repr(v) for v in s.ravel().tolist()) + "\n" for s in seqs))
    (tmp_path / "g.jsonl").write_text("".join(json.dumps(s.tolist()) + "\n" for s in seqs))
    status, _, err = cli(capsysbinary, "fit", tmp_path / "g.txt", "--family", "gaussian",
                         "--dim", 2, "--states", 2, "--seed", 1, "--covariance-type", "full",
                         "-o", tmp_path / "g.npz", "--quiet")
    assert status == 0 and err == ""
    model = hmmfast.load(tmp_path / "g.npz")
    assert model.covariance_type == "full" and model.n_features == 2
    for data in ("g.txt", "g.jsonl"):
        status, out, err = cli(capsysbinary, "score", tmp_path / "g.npz", tmp_path / data)
        assert status == 0, err
        assert parse_text_scores(out) == pytest.approx(expected_scores(model, seqs),
                                                       rel=1e-10)
    status, _, err = cli(capsysbinary, "score", tmp_path / "g.npz", tmp_path / "g.txt",
                         "--dim", 3)
    assert status == 2 and "--dim 3" in one_error_line(err)

    counts = np.random.default_rng(0).poisson(3.0, size=(60, 1))
    np.savez(tmp_path / "c.npz", X=counts, lengths=[20, 25, 15])
    status, _, err = cli(capsysbinary, "fit", tmp_path / "c.npz", "--family", "poisson",
                         "--states", 2, "--seed", 0, "-o", tmp_path / "p.npz", "--quiet")
    assert status == 0, err
    status, _, err = cli(capsysbinary, "fit", tmp_path / "c.npz", "--family", "gmm",
                         "--n-mix", 2, "--states", 2, "--seed", 0, "--iter", 3,
                         "-o", tmp_path / "gmm.npz", "--quiet")
    assert status == 0, err
    assert hmmfast.load(tmp_path / "gmm.npz").n_mix == 2


def test_fit_progress_and_quiet(capsysbinary, files, tmp_path):
    d, _, _ = files
    args = ("fit", d / "rolls.txt", "-o", tmp_path / "m.npz", "--seed", 0, "--iter", 5,
            "--n-init", 2)
    status, out, err = cli(capsysbinary, *args, "--progress")
    assert status == 0 and out == ""
    iterations = [line for line in err.splitlines() if line.startswith("hmmfast fit: ")]
    assert len(iterations) >= 4 and "run 2/2" in iterations[-1]
    assert re.search(r"log-likelihood -\d", iterations[1]) and "gain" in iterations[1]
    status, _, err = cli(capsysbinary, *args)  # stderr is not a terminal: no progress
    assert "iteration " not in err and "wrote" in err
    status, _, err = cli(capsysbinary, *args, "--quiet")
    assert status == 0 and err == ""


def test_score_progress_lines(capsysbinary, files):
    d, _, _ = files
    status, _, err = cli(capsysbinary, "score", d / "casino.npz", d / "rolls.txt",
                         "--progress")
    assert status == 0 and "40 sequences" in err and "per second" in err


def test_info(capsysbinary, files):
    d, model, _ = files
    status, out, err = cli(capsysbinary, "info", d / "casino.npz")
    assert status == 0 and err == ""
    assert "CategoricalHMM" in out and "emissionprob_" in out and "(2, 6)" in out
    assert model.fingerprint in out
    status, out, _ = cli(capsysbinary, "info", d / "casino.npz", "--json", "--verify")
    record = json.loads(out)
    assert record["verified"] is True
    assert record["header"]["arrays"]["transmat_"]["shape"] == [2, 2]


@pytest.mark.parametrize("content, message", [
    ("1 2\n\n3\n", "line 2 is blank"),
    ("1 2\n3 -1\n", "line 2, column 3: expected a symbol (an integer >= 0), got '-1'"),
    ("1 2\n3 6\n", "symbol '6' is out of range: expected 0 <= symbol < 6"),
    ("1 2.5\n", "got '2.5'"),
])
def test_bad_text_lines(capsysbinary, files, tmp_path, content, message):
    d, _, _ = files
    (tmp_path / "bad.txt").write_text(content)
    status, out, err = cli(capsysbinary, "decode", d / "casino.npz", tmp_path / "bad.txt",
                           "-o", tmp_path / "out.txt")
    assert status == 1 and out == ""
    assert message in one_error_line(err)
    assert not (tmp_path / "out.txt").exists()  # no partial results file
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hmmfast-")]


@pytest.mark.parametrize("name, content, message", [
    ("x.jsonl", '[0, 1]\n{"obs": [1, "a"]}\n',
     'line 2, position 1: expected a symbol (an integer >= 0), got "a"'),
    ("x.jsonl", "[0, 1]\n[0, 1\n", "line 2: not valid JSON"),
    ("x.jsonl", '{"id": 1, "obs": [0]}\n[1]\n', "line 2: every line must carry an id"),
    ("x.jsonl", '{"obs": []}\n', "line 1: \"obs\" must be a non-empty list"),
    ("x.jsonl", '[0, 7]\n', "line 1, position 1: symbol 7 is out of range"),
    ("x.npz", None, "an .npz data file needs an array X"),
    ("x.npy", b"junk", "not a readable .npy file"),
])
def test_bad_data_files(capsysbinary, files, tmp_path, name, content, message):
    d, _, _ = files
    path = tmp_path / name
    if content is None:
        np.savez(path, Y=np.zeros(3))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    status, _, err = cli(capsysbinary, "score", d / "casino.npz", path)
    assert status == 1
    assert message in one_error_line(err)


@pytest.mark.parametrize("args, status, message", [
    (["score", "{model}", "missing.txt"], 1, "No such file or directory"),
    (["score", "missing.npz", "{data}"], 1, "No such file or directory"),
    (["info", "{data}"], 1, "not a zip archive"),
    (["fit", "{data}", "-o", "/nonexistent-dir/m.npz"], 1, "does not exist"),
    (["fit", "{data}", "-o", "m.npz", "--n-mix", "2"], 2, "--n-mix applies to --family gmm"),
    (["fit", "{data}", "-o", "m.npz", "--covariance-type", "full"], 2, "--covariance-type"),
    (["fit", "{data}", "-o", "m.npz", "--family", "beta"], 2, "invalid choice: 'beta'"),
    (["score", "{model}", "{data}", "--threads", "0"], 2, "expected an integer >= 1"),
    (["score", "{model}", "{data}", "--dim", "2"], 2, "--dim applies to continuous"),
    (["decode", "{model}"], 2, "required: DATA"),
    (["frobnicate"], 2, "invalid choice"),
])
def test_bad_options_and_files(capsysbinary, files, args, status, message):
    d, _, _ = files
    args = [a.format(model=d / "casino.npz", data=d / "rolls.txt") for a in args]
    got, _, err = cli(capsysbinary, *args)
    assert got == status
    assert message in one_error_line(err)


def test_interrupt_exits_130_quietly(capsysbinary, files, monkeypatch):
    d, _, _ = files

    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(_cli, "run", interrupted)
    status, out, err = cli(capsysbinary, "score", d / "casino.npz", d / "rolls.txt")
    assert status == 130 and out == "" and err == ""


@needs("matplotlib")
def test_bench_quick(capsysbinary, tmp_path):
    status, out, err = cli(capsysbinary, "bench", "--quick", "--out", tmp_path / "b.md",
                           "--png", tmp_path / "b.png")
    assert status == 0 and out == "", err
    table = (tmp_path / "b.md").read_text()
    assert table.startswith("| operation |") and "decode, one sequence" in table
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------ the compiled reader


SEPARATORS = [" ", ",", "\t", ", ", " \t ", "  ,", " , "]  # one comma at most
_SPLIT = re.compile(r"[ ,\t\r\v\f]+")


def python_parse(text, with_ids=False):
    """The reference reader: lines of symbols (and ids)."""
    symbols, offsets, ids = [], [0], []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        fields = [f for f in _SPLIT.split(line) if f]
        if with_ids:
            ids.append(fields.pop(0))
        symbols.extend(int(f) for f in fields)
        offsets.append(len(symbols))
    return symbols, offsets, ids


line_strategy = st.tuples(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=12),
    st.lists(st.sampled_from(SEPARATORS), min_size=12, max_size=12),
    st.sampled_from(["", " ", "\t"]),            # leading
    st.sampled_from(["", " ", "\r", " \t\r"]),   # trailing (CRLF files)
    st.text("abcXYZ_-:.0123456789", min_size=1, max_size=8),  # id
)


def render(lines, with_ids, final_newline):
    out = []
    for values, seps, lead, trail, ident in lines:
        body = "".join(str(v) + (seps[k] if k < len(values) - 1 else "")
                       for k, v in enumerate(values))
        out.append(lead + (ident + "\t" if with_ids else "") + body + trail)
    return "\n".join(out) + ("\n" if final_newline else "")


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(line_strategy, min_size=1, max_size=15), st.booleans(), st.booleans(),
       st.integers(1, 6))
def test_reader_matches_python_parser(lines, with_ids, final_newline, max_lines):
    text = render(lines, with_ids, final_newline)
    data = text.encode()
    want_symbols, want_offsets, want_ids = python_parse(text, with_ids)
    # whole input at once
    symbols, offsets, spans, consumed = _textio.parse_symbols(data, with_ids=with_ids)
    assert symbols.tolist() == want_symbols and offsets.tolist() == want_offsets
    assert consumed == len(data)
    if with_ids:
        assert [data[a:b].decode() for a, b in spans] == want_ids
    # in pieces of max_lines, as the CLI reads (not final: stops before an unfinished line)
    pos, got, n_lines = 0, [], 0
    while True:
        sym, off, _, pos_after = _textio.parse_symbols(data, pos, final=False,
                                                       max_lines=max_lines,
                                                       with_ids=with_ids)
        if len(off) == 1:
            break
        assert len(off) - 1 <= max_lines
        got.extend(sym.tolist())
        n_lines += len(off) - 1
        pos = pos_after
    rest = _textio.parse_symbols(data, pos, final=True, with_ids=with_ids)
    got.extend(rest[0].tolist())
    n_lines += len(rest[1]) - 1
    assert got == want_symbols and n_lines == len(lines)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.lists(st.lists(st.integers(0, 99), min_size=1, max_size=6), min_size=1,
                max_size=8),
       st.integers(0, 7), st.integers(0, 5),
       st.sampled_from(["x", "-3", "1.5", "+2", "1e3", "0x1", "\u00e9"]))
def test_reader_names_line_and_column_of_a_bad_token(lines, line_index, position, token):
    line_index %= len(lines)
    fields = [str(v) for v in lines[line_index]]
    position %= len(fields) + 1
    fields.insert(position, token)
    texts = [" ".join(map(str, values)) for values in lines]
    texts[line_index] = " ".join(fields)
    data = ("\n".join(texts) + "\n").encode()
    with pytest.raises(_textio.TextFormatError) as info:
        _textio.parse_symbols(data, first_line=10)
    exc = info.value
    assert exc.line == 10 + line_index
    assert exc.token == token
    column = len((" ".join(fields[:position]) + " ").encode()) + 1 if position else 1
    assert exc.column == column
    assert f"line {exc.line}, column {column}" in str(exc)


def test_reader_limits_and_numbers():
    with pytest.raises(_textio.TextFormatError, match="out of range: expected 0 <= symbol < 5"):
        _textio.parse_symbols(b"0 4 5\n", n_symbols=5)
    with pytest.raises(_textio.TextFormatError, match="too large"):
        _textio.parse_symbols(b"99999999999999999999999999\n")
    with pytest.raises(_textio.TextFormatError, match="id 'abc' has no symbols"):
        _textio.parse_symbols(b"abc\n", with_ids=True)
    values, offsets, _, _ = _textio.parse_numbers(b"1.5 -2e3, 3\t4\nnan inf\n", dim=2)
    assert values.shape == (3, 2) and offsets.tolist() == [0, 2, 3]
    assert values[0].tolist() == [1.5, -2000.0] and np.isnan(values[2, 0])
    with pytest.raises(_textio.TextFormatError, match="line 1 holds 3 numbers, not a multiple"):
        _textio.parse_numbers(b"1 2 3\n", dim=2)
    with pytest.raises(_textio.TextFormatError, match="expected a number, got '1.2.3'"):
        _textio.parse_numbers(b"1.2.3\n")
    floats = np.random.default_rng(0).normal(size=50) * 10.0 ** np.arange(-25, 25)
    data = " ".join(repr(v) for v in floats.tolist()).encode()
    assert _textio.parse_numbers(data)[0][:, 0].tolist() == floats.tolist()


# ------------------------------------------------------------------------------ the compiled writer


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.floats(allow_nan=False, width=64), min_size=1, max_size=50))
def test_writer_values_are_python_repr(values):
    out = _textio.format_results(values, n_threads=2).decode()
    assert out == "".join(repr(float(v)) + "\n" for v in values)


def test_repr_fast_path_on_many_values():
    rng = np.random.default_rng(11)
    bits = (rng.integers(0, 1 << 52, 20000, dtype=np.uint64)
            | (rng.integers(1023 - 12, 1023 + 56, 20000, dtype=np.uint64) << np.uint64(52)))
    values = np.concatenate([bits.view(np.float64), -rng.exponential(50.0, 20000),
                             np.round(rng.normal(0, 1e3, 5000), 2),
                             2.0 ** np.arange(-12, 60), 10.0 ** np.arange(-6, 18)])
    out = _textio.format_results(values).decode().splitlines()
    assert out == [repr(v) for v in values.tolist()]


def test_writer_lines_ids_and_json_escaping():
    values = np.array([-1.5, -np.inf, -2.25])
    paths = [np.array([0, 1, 12], dtype=np.intp), np.array([], dtype=np.intp),
             np.array([3], dtype=np.intp)]
    ids = (b'a"b\\c\td', np.array([[0, 1], [1, 4], [4, 7]]), True)
    text = _textio.format_results(values, paths, (*ids[:2], False)).decode()
    assert text == 'a\t-1.5\t0 1 12\n"b\\\t-inf\t\nc\td\t-2.25\t3\n'
    lines = _textio.format_results(values, paths, ids, json=True, key="logprob",
                                   n_threads=3).decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert records == [{"id": "a", "logprob": -1.5, "states": [0, 1, 12]},
                       {"id": '"b\\', "logprob": None, "states": []},
                       {"id": "c\td", "logprob": -2.25, "states": [3]}]
    assert lines[0] == json.dumps(records[0])
    many = _textio.format_results(np.full(5000, -3.0), [np.arange(3)] * 5000, n_threads=2)
    assert many == b"-3.0\t0 1 2\n" * 5000


def test_demo_clickstream_and_serve_errors(tmp_path):
    from hmmfast._cli import main

    assert main(["serve", str(tmp_path / "missing.npz")]) == 1  # one-line error, exit 1
    out = subprocess.run([sys.executable, "-m", "hmmfast", "demo", "clickstream", "--train",
                          "300", "--seed", "1"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "bag of pages" in out.stdout and "early termination" in out.stdout
