"""The command line's options added by issue 26, each against the Python API, and the
reader's defects (empty fields, long numbers, gzip, overflowing and deeply nested JSON).

In-process ``hmmfast._cli.main(argv)``; results are parsed back and compared with the
API call the option stands for (numbers are written as repr writes them, so they read
back exactly).
"""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hmmfast
from hmmfast import _cli, _textio

ENV = {**os.environ, "PYTHONPATH": str(Path(hmmfast.__file__).parents[1])}
pytestmark = pytest.mark.filterwarnings("ignore::hmmfast.ConvergenceWarning")  # short fits


def casino(impossible_six=False):
    from hmmfast._demo import casino_model

    model = casino_model()
    if impossible_six:  # no state shows a six: a sequence with a six is impossible
        e = model.emissionprob_.copy()
        e[:, 5] = 0.0
        model.emissionprob_ = e / e.sum(axis=1, keepdims=True)
    return model


def cli(capsysbinary, *args):
    try:
        status = _cli.main([str(a) for a in args])
    except SystemExit as exc:
        status = exc.code
    out, err = capsysbinary.readouterr()
    return status, out.decode(), err.decode()


def one_error_line(err):
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hmmfast: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def rolls(tmp_path):
    model = casino()
    rng = np.random.default_rng(5)
    seqs = [model.sample(int(rng.integers(3, 25)), random_state=int(s))[0][:, 0]
            for s in rng.integers(0, 2**31, 25)]
    (tmp_path / "d.txt").write_text("".join(" ".join(map(str, s)) + "\n" for s in seqs))
    model.save(tmp_path / "m.npz")
    return tmp_path, model, seqs


def text_fields(out):
    return [line.split("\t") for line in out.splitlines()]


# ---------------------------------------------------------------------- score, decode


def test_score_per_step_matches_score_batch(capsysbinary, rolls):
    d, model, seqs = rolls
    scores, steps = model.score_batch(seqs, per_step=True)
    status, out, _ = cli(capsysbinary, "score", d / "m.npz", d / "d.txt", "--per-step")
    assert status == 0
    for fields, score, step in zip(text_fields(out), scores, steps, strict=True):
        assert float(fields[0]) == score
        got = np.array([float(v) for v in fields[1].split()])
        assert np.array_equal(got, step)
        assert got.sum() == pytest.approx(score, rel=1e-12)  # log P = sum of conditionals
    status, out, _ = cli(capsysbinary, "score", d / "m.npz", d / "d.txt", "--per-step",
                         "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["score"] for r in records] == scores.tolist()
    assert [r["per_step"] for r in records] == [s.tolist() for s in steps]


@pytest.mark.parametrize("options, kw", [
    (["--beam", "2.5"], {"beam": 2.5}),
    (["--max-active", "1"], {"max_active": 1}),
    (["--beam", "1.0", "--min-active", "2"], {"beam": 1.0, "min_active": 2}),
    (["--memory", "checkpoint"], {"memory": "checkpoint"}),
])
def test_decode_pruning_and_memory_match_decode_batch(capsysbinary, rolls, options, kw):
    d, model, seqs = rolls
    logprobs, paths = model.decode_batch(seqs, **kw)
    status, out, _ = cli(capsysbinary, "decode", d / "m.npz", d / "d.txt", *options)
    assert status == 0
    rows = text_fields(out)
    assert [float(r[0]) for r in rows] == logprobs.tolist()
    assert [[int(v) for v in r[1].split()] for r in rows] == [p.tolist() for p in paths]
    if kw.get("memory") == "checkpoint":  # exact: the same paths as full memory
        assert all(np.array_equal(p, q) for p, q in
                   zip(paths, model.decode_batch(seqs)[1], strict=True))


def test_decode_posteriors_are_those_of_the_decoded_states(capsysbinary, rolls, tmp_path):
    d, _, seqs = rolls
    model = casino(impossible_six=True)
    model.save(d / "no6.npz")
    status, out, _ = cli(capsysbinary, "decode", d / "no6.npz", d / "d.txt", "--posteriors")
    assert status == 0
    for fields, seq in zip(text_fields(out), seqs, strict=True):
        if 5 in seq:  # impossible: -inf, no states, no posteriors
            assert fields == ["-inf", "", ""]
            continue
        logprob, states = model.decode(seq[:, None])
        assert float(fields[0]) == logprob and fields[1].split() == list(map(str, states))
        want = model.predict_proba(seq[:, None])[np.arange(len(seq)), states]
        np.testing.assert_allclose([float(v) for v in fields[2].split()], want, rtol=1e-12)
    status, out, _ = cli(capsysbinary, "decode", d / "no6.npz", d / "d.txt", "--posteriors",
                         "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert all(len(r["posteriors"]) == len(r["states"]) for r in records)


def test_decode_nbest_matches_the_api(capsysbinary, rolls):
    d, _, seqs = rolls
    model = casino(impossible_six=True)
    model.save(d / "no6.npz")
    status, out, _ = cli(capsysbinary, "decode", d / "no6.npz", d / "d.txt", "--nbest", 3)
    assert status == 0
    status, jout, _ = cli(capsysbinary, "decode", d / "no6.npz", d / "d.txt", "--nbest", 3,
                          "--json")
    for fields, record, seq in zip(text_fields(out), jout.splitlines(), seqs, strict=True):
        record = json.loads(record)
        if 5 in seq:
            assert fields == ["-inf", ""] and record["paths"] == [] \
                and record["logprob"] is None
            continue
        want = model.nbest(seq[:, None], 3)
        got = [(float(fields[k]), [int(v) for v in fields[k + 1].split()])
               for k in range(0, len(fields), 2)]
        assert got == [(lp, s.tolist()) for lp, s in want]
        assert [(p["logprob"], p["states"]) for p in record["paths"]] == got
        assert (record["logprob"], record["states"]) == got[0]


@pytest.mark.parametrize("options, words", [
    (["--algorithm", "map", "--beam", "2"], "apply to --algorithm viterbi"),
    (["--nbest", "2", "--posteriors"], "does not combine with --posteriors"),
    (["--nbest", "2", "--max-active", "1"], "does not combine with --max-active"),
    (["--memory", "checkpoint", "--beam", "2"], "memory='checkpoint' is exact Viterbi"),
    (["--beam", "-1"], "beam must be >= 0"),
])
def test_decode_conflicting_options_are_usage_errors(capsysbinary, rolls, options, words):
    d, _, _ = rolls
    status, _, err = cli(capsysbinary, "decode", d / "m.npz", d / "d.txt", *options)
    assert status == 2 and words in one_error_line(err)


# ---------------------------------------------------------------------- fit


def test_fit_options_match_the_constructor(capsysbinary, rolls):
    d, _, seqs = rolls
    X, lengths = np.concatenate(seqs), [len(s) for s in seqs]
    prior = [[1.5, 1.0, 1.0, 1.0, 1.0, 2.0], [1.0] * 6]
    status, _, err = cli(capsysbinary, "fit", d / "d.txt", "-o", d / "f.npz", "--states", 2,
                         "--iter", 15, "--seed", 4, "--params", "te", "--init-params", "ste",
                         "--implementation", "log", "--prior", "transmat_prior=2",
                         "--prior", f"emissionprob_prior={json.dumps(prior)}", "--quiet")
    assert status == 0, err
    want = hmmfast.CategoricalHMM(2, n_iter=15, tol=1e-2, random_state=4, params="te",
                                  init_params="ste", implementation="log",
                                  transmat_prior=2.0, emissionprob_prior=np.array(prior))
    want.fit(X[:, None], lengths)
    got = hmmfast.load(d / "f.npz")
    assert got.fingerprint == want.fingerprint
    params = hmmfast.read_header(d / "f.npz")["params"]
    assert params["params"] == "te" and params["implementation"] == "log"
    assert params["transmat_prior"] == 2
    np.testing.assert_array_equal(got.emissionprob_prior, prior)


def test_fit_continuous_options_match_the_constructor(capsysbinary, tmp_path):
    rng = np.random.default_rng(2)
    frames = [rng.normal(size=(int(rng.integers(10, 30)), 2)) for _ in range(12)]
    (tmp_path / "g.txt").write_text("".join(" ".join(map(repr, f.ravel().tolist())) + "\n"
                                            for f in frames))
    status, _, err = cli(capsysbinary, "fit", tmp_path / "g.txt", "-o", tmp_path / "g.npz",
                         "--family", "gaussian", "--dim", 2, "--covariance-type", "full",
                         "--min-covar", "0.05", "--prior", "means_weight=0.5", "--seed", 1,
                         "--iter", 10, "--quiet")
    assert status == 0, err
    want = hmmfast.GaussianHMM(2, covariance_type="full", min_covar=0.05, means_weight=0.5,
                               random_state=1, n_iter=10, tol=1e-2)
    want.fit(np.concatenate(frames), [len(f) for f in frames])
    assert hmmfast.load(tmp_path / "g.npz").fingerprint == want.fingerprint


@pytest.mark.parametrize("options, words", [
    (["--params", "stx"], "takes letters from 'ste'"),
    (["--prior", "means_prior=1"], "priors are"),
    (["--prior", "transmat_prior=abc"], "a number or a JSON array"),
    (["--min-covar", "0.1"], "--min-covar applies to"),
    (["--metadata", "command=x"], "fit writes that key itself"),
    (["--metadata", "novalue"], "expected KEY=VALUE"),
])
def test_fit_bad_options_are_usage_errors(capsysbinary, rolls, options, words):
    d, _, _ = rolls
    status, _, err = cli(capsysbinary, "fit", d / "d.txt", "-o", d / "x.npz", *options)
    assert status == 2 and words in one_error_line(err)
    assert not (d / "x.npz").exists()


# ---------------------------------------------------------------------- sample, detect


def test_sample_matches_model_sample(capsysbinary, rolls):
    d, model, _ = rolls
    status, out, err = cli(capsysbinary, "sample", d / "m.npz", "-n", 4, "--length", 12,
                           "--seed", 9)
    assert status == 0 and "seed 9" in err
    rng = np.random.RandomState(9)
    want = [model.sample(12, random_state=rng) for _ in range(4)]
    assert out.splitlines() == [" ".join(map(str, X[:, 0])) for X, _ in want]
    status, out, _ = cli(capsysbinary, "sample", d / "m.npz", "-n", 4, "--length", 12,
                         "--seed", 9, "--json", "--quiet")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["states"] for r in records] == [s.tolist() for _, s in want]
    # what sample writes, score reads
    (d / "s.txt").write_text("\n".join(" ".join(map(str, X[:, 0])) for X, _ in want) + "\n")
    status, out, _ = cli(capsysbinary, "score", d / "m.npz", d / "s.txt")
    assert [float(v) for v in out.split()] == [model.score(X) for X, _ in want]


def test_detect_uses_the_detector_saved_with_the_model(capsysbinary, rolls):
    from hmmfast.monitor import AnomalyDetector

    d, model, seqs = rolls
    train = [model.sample(20, random_state=s)[0][:, 0] for s in range(300)]
    detector = AnomalyDetector(model, suspicious=20.0, anomalous=5.0).fit(train)
    model.save(d / "det.npz", metadata={"anomaly_detector": detector.to_dict()})
    odd = [np.full(15, 5), np.array([0, 5] * 8)]  # all sixes; alternating
    (d / "s.txt").write_text("".join(" ".join(map(str, s)) + "\n" for s in [*seqs, *odd]))
    want = detector.predict([*seqs, *odd])
    status, out, err = cli(capsysbinary, "detect", d / "det.npz", d / "s.txt")
    assert status == 0
    rows = text_fields(out)
    assert [r[0] for r in rows] == want.level.tolist()
    assert [float(r[1]) for r in rows] == want.score.tolist()
    reasons = [dict(kv.split("=") for kv in r[2].split()) for r in rows]
    assert [int(r["longest_run"]) for r in reasons] == want.longest_run.tolist()
    assert [float(r["switch_rate_pct"]) for r in reasons] == want.switch_rate_pct.tolist()
    assert "anomalous" in want.level.tolist()  # the test sees a flagged session
    counts = {k: want.level.tolist().count(k) for k in ("normal", "suspicious", "anomalous")}
    assert f"{counts['anomalous']:,} anomalous" in err
    status, out, _ = cli(capsysbinary, "detect", d / "det.npz", d / "s.txt", "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["level"] for r in records] == want.level.tolist()
    assert [r["unseen"] for r in records] == want.unseen.tolist()
    status, _, err = cli(capsysbinary, "detect", d / "m.npz", d / "s.txt")
    assert status == 1 and "carries no anomaly detector" in one_error_line(err)


# ---------------------------------------------------------------------- the reader


def test_gzip_input_of_every_text_format(capsysbinary, rolls):
    d, model, seqs = rolls
    want = [model.score(s[:, None]) for s in seqs]
    text = (d / "d.txt").read_bytes()
    (d / "d.txt.gz").write_bytes(gzip.compress(text))
    (d / "d.jsonl.gz").write_bytes(gzip.compress("".join(
        json.dumps(s.tolist()) + "\n" for s in seqs).encode()))
    (d / "plain-name.txt").write_bytes(gzip.compress(text))  # found by its magic bytes
    for name in ("d.txt.gz", "d.jsonl.gz", "plain-name.txt"):
        status, out, err = cli(capsysbinary, "score", d / "m.npz", d / name)
        assert status == 0, err
        assert [float(v) for v in out.split()] == want, name
    result = subprocess.run([sys.executable, "-m", "hmmfast", "score", str(d / "m.npz"), "-"],
                            input=gzip.compress(text), env=ENV, capture_output=True,
                            timeout=120)
    assert result.returncode == 0 and [float(v) for v in result.stdout.split()] == want
    (d / "cut.txt.gz").write_bytes(gzip.compress(text)[:-30])
    status, _, err = cli(capsysbinary, "score", d / "m.npz", d / "cut.txt.gz")
    assert status == 1 and "gzip data is damaged or truncated" in one_error_line(err)


@pytest.mark.parametrize("content, words", [
    ("[0, 1, 123456789012345678901234567890]\n", "too large"),
    ("[0, 1, -123456789012345678901234567890]\n", "too large"),
    ("[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
    ("[[0, 1]]\n" + "[" * 100_000 + "]" * 100_000 + "\n", "line 2"),
])
@pytest.mark.parametrize("command", ["score", "fit"])
def test_hostile_json_lines_are_one_line_errors(capsysbinary, rolls, content, words, command):
    d, _, _ = rolls
    (d / "x.jsonl").write_text(content)
    args = ([command, d / "m.npz", d / "x.jsonl"] if command == "score" else
            [command, d / "x.jsonl", "-o", d / "out.npz"])
    status, _, err = cli(capsysbinary, *args)
    assert status == 1 and words in one_error_line(err)


@pytest.mark.parametrize("line, column", [("1,,2", 3), (",1 2", 1), ("1 2,", 4),
                                          ("1 , ,2", 5), ("1,\t,2", 4)])
def test_empty_fields_are_errors_not_dropped(capsysbinary, rolls, line, column):
    d, _, _ = rolls
    (d / "e.txt").write_text("0 1\n" + line + "\n")
    status, _, err = cli(capsysbinary, "score", d / "m.npz", d / "e.txt")
    assert status == 1
    assert f"line 2, column {column}: empty field" in one_error_line(err)
    with pytest.raises(ValueError, match="empty field") as info:
        _textio.parse_numbers(line.encode())
    assert (info.value.line, info.value.column, info.value.token) == (1, column, ",")


def test_commas_and_spaces_still_separate(capsysbinary, rolls):
    d, model, _ = rolls
    (d / "c.txt").write_text("0, 1 ,2\t3\n4 , 5\r\n")
    status, out, _ = cli(capsysbinary, "score", d / "m.npz", d / "c.txt")
    assert status == 0
    assert [float(v) for v in out.split()] == [model.score([[0], [1], [2], [3]]),
                                              model.score([[4], [5]])]
    symbols, offsets, spans, _ = _textio.parse_symbols(b"id,1,2\n", with_ids=True)
    assert symbols.tolist() == [1, 2] and spans.tolist() == [[0, 2]]
    with pytest.raises(ValueError, match="empty field"):
        _textio.parse_symbols(b",id 1\n", with_ids=True)


def test_numbers_of_any_length_are_read_exactly(capsysbinary, tmp_path):
    long_numbers = ["0." + "0" * 70 + "1", "1" * 400, "-" + "3" * 30 + "." + "1" * 300,
                    "2.5" + "0" * 2000 + "e-3"]
    data = (" ".join(long_numbers) + "\n").encode()
    values = _textio.parse_numbers(data)[0].ravel().tolist()
    assert values == [float(t) for t in long_numbers]  # Python's own conversion
    model = hmmfast.GaussianHMM(1)
    model.startprob_, model.transmat_ = [1.0], [[1.0]]
    model.means_, model.covars_ = [[0.0]], [[1.0]]
    model.save(tmp_path / "g.npz")
    (tmp_path / "n.txt").write_text("0." + "0" * 70 + "1 " + "1." + "0" * 80 + "\n")
    status, out, err = cli(capsysbinary, "score", tmp_path / "g.npz", tmp_path / "n.txt")
    assert status == 0, err
    assert float(out) == model.score([[1e-71], [1.0]])
