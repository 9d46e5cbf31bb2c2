"""Model files: save, load, read_header and fingerprint, with pickle as the peer.

Usage: python bench/bench_io.py [--repeats 200] [--out bench/results/io.md]

For each model it first checks that the loaded model scores exactly as the saved one,
then reports the median wall time (ms) of: ``model.save`` (atomic: temporary file,
fsync, rename, directory fsync), ``hmmfast.load`` (checksums, header and parameter
validation, the model's kernel inputs built), ``hmmfast.read_header``,
``model.fingerprint``, and as peers ``pickle.dumps`` / ``pickle.loads`` of the same
model in memory and a pickle load from a file. Also what deflate would give (file size
and the time to inflate the file), the reason members are stored uncompressed.
Target (issue 16): load of the N=64, M=1,000 CategoricalHMM <= 5 ms.
"""

import argparse
import pickle
import platform
import tempfile
import zlib
from pathlib import Path

import numpy as np
from _benchlib import median_seconds, write_table

import hmmfast


def categorical(n=64, m=1000, seed=0):
    rng = np.random.default_rng(seed)
    model = hmmfast.CategoricalHMM(n)
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n), size=n)
    model.emissionprob_ = rng.dirichlet(np.ones(m), size=n)
    X = rng.integers(0, m, size=(200, 1))
    return model, X


def gaussian_full(n=8, d=13, seed=0):
    rng = np.random.default_rng(seed)
    model = hmmfast.GaussianHMM(n, covariance_type="full")
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n), size=n)
    model.means_ = rng.normal(size=(n, d))
    a = rng.normal(size=(n, d, d))
    model.covars_ = a @ a.transpose(0, 2, 1) + d * np.eye(d)
    X = rng.normal(size=(200, d))
    return model, X


CASES = [("CategoricalHMM N=64, M=1000", categorical),
         ("GaussianHMM full N=8, D=13", gaussian_full)]


def measure(label, make, repeats, directory):
    model, X = make()
    path = Path(directory) / "model.npz"
    pickled_path = Path(directory) / "model.pkl"
    model.save(path, metadata={"bench": True})
    loaded = hmmfast.load(path)
    assert loaded.score(X) == model.score(X) and loaded.fingerprint == model.fingerprint
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    pickled_path.write_bytes(blob)
    assert pickle.loads(blob).score(X) == model.score(X)
    raw = path.read_bytes()
    deflated = zlib.compress(raw, 6)

    def load_pickle_file():
        with open(pickled_path, "rb") as f:
            return pickle.load(f)

    ops = {
        "save": lambda: model.save(path),
        "load": lambda: hmmfast.load(path),
        "read_header": lambda: hmmfast.read_header(path),
        "fingerprint": lambda: model.fingerprint,
        "pickle.dumps": lambda: pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL),
        "pickle.loads": lambda: pickle.loads(blob),
        "pickle load from file": load_pickle_file,
        "inflate the file (not used)": lambda: zlib.decompress(deflated),
    }
    times = {op: 1e3 * median_seconds(fn, repeats if op != "save" else max(20, repeats // 4),
                                      warmup=3)
             for op, fn in ops.items()}
    return {"case": label, "times": times, "size": len(raw), "deflated": len(deflated),
            "pickle": len(blob)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        rows = [measure(label, make, args.repeats, directory) for label, make in CASES]
    ops = list(rows[0]["times"])
    lines = [
        f"Model files, median ms ({args.repeats} runs; save {max(20, args.repeats // 4)}; "
        f"{platform.processor() or platform.machine()}, hmmfast {hmmfast.__version__}, "
        f"numpy {np.__version__}, Python {platform.python_version()})",
        "",
        "| operation | " + " | ".join(r["case"] for r in rows) + " |",
        "|---|" + "---:|" * len(rows),
    ]
    for op in ops:
        lines.append(f"| {op} | " + " | ".join(f"{r['times'][op]:.3f}" for r in rows) + " |")
    lines.append("| file size, kB (deflated; pickle) | " + " | ".join(
        f"{r['size'] / 1e3:.0f} ({r['deflated'] / 1e3:.0f}; {r['pickle'] / 1e3:.0f})"
        for r in rows) + " |")
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
