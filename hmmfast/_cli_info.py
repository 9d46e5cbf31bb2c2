"""``hmmfast info``: a model file's header; ``--check-data DATA``; ``--diff A B``.

``info MODEL`` reads the header only (``--verify`` loads the whole model).
``--check-data DATA`` reads DATA as ``fit`` would for this model's family and hashes it
as the fit did (hmmfast.hash_data); exit 0 when it is the recorded training data (or an
earlier data set of a warm-start chain, which is said), 1 when not. ``--diff A B``
compares two files: structure, parameters (by checksum, and the largest absolute
difference when both load), settings, version ids, fit records and metadata; exit 0
when nothing but the writer's hmmfast version differs, 1 otherwise.
"""

import json
import os
import textwrap
from argparse import Namespace

import numpy as np

from ._cli_data import DataError, UsageError


def info(args):
    """hmmfast info MODEL | --check-data DATA | --diff A B."""
    if args.diff is not None:
        if args.model is not None or args.check_data is not None or args.verify:
            raise UsageError("--diff A B compares two files: give no MODEL, --check-data or "
                             "--verify with it")
        return diff(*args.diff, as_json=args.json)
    if args.model is None:
        raise UsageError("give a MODEL file (or --diff A B)")
    if args.check_data is not None:
        return check_data(args)
    if args.format is not None or args.ids or args.dim is not None:
        raise UsageError("--format, --ids and --dim describe --check-data's DATA")
    return show(args)


def show(args):
    from . import load, read_header
    from ._versions import version_id

    header = read_header(args.model)
    verified = None
    if args.verify:
        load(args.model)
        verified = True
    version, computed = header.get("version_id"), False
    if version is None:  # format version 1 stores none
        version, computed = version_id(header), True
    if args.json:
        record = {"file": args.model, "size": os.path.getsize(args.model), "header": header,
                  "version_id": version}
        if verified:
            record["verified"] = True
        print(json.dumps(record, indent=2, sort_keys=True))
        return 0
    print("\n".join(describe(args.model, header, version, computed, verified)))
    return 0


def describe(path, header, version, computed=False, verified=None):
    """Human-readable lines for a model file's header."""
    structure = header.get("structure", {})
    sizes = ", ".join(f"{k}={v}" for k, v in structure.items())
    lines = [
        f"file           {path} ({os.path.getsize(path):,} bytes)",
        f"model          {header.get('class')}({sizes})",
        f"format         {header.get('format')} version {header.get('format_version')}, "
        f"written by hmmfast {header.get('hmmfast_version')}",
        f"version id     {version}" + (" (computed; format version 1 stores none)"
                                       if computed else ""),
        f"fingerprint    {header.get('fingerprint')}",
    ]
    lines.extend(_fit_lines(header.get("fit")))
    lines.append("parameters")
    for name, spec in header.get("arrays", {}).items():
        shape = tuple(spec.get("shape", ()))
        lines.append(f"  {name:<22} {spec.get('dtype'):<6} {shape}")
    params = header.get("params", {})
    if params:
        text = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(params.items()))
        lines.extend(textwrap.wrap(text, 99, initial_indent="settings       ",
                                   subsequent_indent=" " * 15))
    metadata = header.get("metadata") or {}
    if metadata:
        lines.append("metadata")
        for k, v in metadata.items():
            text = json.dumps(v)
            lines.append(f"  {k:<22} {text if len(text) <= 200 else text[:197] + '...'}")
    if verified:
        lines.append("verified       every checksum and parameter (hmmfast.load)")
    return lines


def _fit_lines(record):
    if not record:
        return ["fit            none recorded (parameters were assigned)"]
    state = "converged" if record.get("converged") else "not converged"
    lines = [f"fit            {record.get('method', 'fit')}, log-likelihood "
             f"{record.get('log_likelihood')!r} after {record.get('n_iter')} iterations "
             f"({state}), on {_count(record.get('n_sequences'))} sequences, "
             f"{_count(record.get('n_samples'))} samples"]
    if record.get("stale"):
        lines.append(f"               STALE: the parameters were changed after this fit "
                     f"(it produced fingerprint {str(record.get('fingerprint'))[:12]}...); "
                     "the record is kept for reference and left out of the version id")
    if record.get("training_data_sha256"):
        lines.append(f"training data  sha256 {record['training_data_sha256']}")
    earlier = record.get("previous_training_data_sha256") or []
    for k, digest in enumerate(earlier, 1):
        lines.append(f"  warm start   {k} of {len(earlier)} earlier: sha256 {digest}")
    if record.get("random_seed") is not None:
        lines.append(f"seed           {record['random_seed']}")
    return lines


def _count(value):
    return f"{value:,}" if isinstance(value, int) else str(value)


# ---------------------------------------------------------------------- --check-data


def check_data(args):
    """Exit 0 when DATA hashes to the recorded training data, 1 when it does not."""
    from . import load, read_header
    from ._cli_commands import _source_for
    from ._versions import hash_data

    header = read_header(args.model)
    record = header["fit"]
    if not record or not record.get("training_data_sha256"):
        raise DataError(f"{args.model} records no training data hash (it has no fit "
                        "record: its parameters were assigned, not fitted)")
    model = load(args.model)
    options = Namespace(model=args.model, data=args.check_data, dim=args.dim, ids=args.ids,
                        json=False, format=args.format, chunk=100_000)
    source = _source_for(model, options)
    source.n_symbols = None  # any symbol: data that does not fit the model hashes too
    X, lengths = source.read_all()
    digest = hash_data(X, lengths)
    chain = record.get("previous_training_data_sha256") or []
    if digest == record["training_data_sha256"]:
        print(f"{args.check_data}: matches the training data of {args.model} "
              f"(sha256 {digest})")
        return 0
    if digest in chain:
        k = chain.index(digest) + 1
        print(f"{args.check_data}: matches earlier training data {k} of {len(chain)} of "
              f"{args.model}'s warm-start chain, not the last fit's (sha256 {digest})")
        return 0
    note = (" (the fit used sample weights or known states, which this command cannot "
            "read: hash the data with hmmfast.hash_data(X, lengths, sample_weight=..., "
            "states=...))" if record.get("method") == "fit_supervised" else "")
    raise DataError(f"{args.check_data} does not match the training data of {args.model}: "
                    f"sha256 {digest}, recorded {record['training_data_sha256']}{note}")


# ---------------------------------------------------------------------- --diff


def diff(path_a, path_b, as_json=False):
    """Print what differs between two model files; 0 when nothing does (but the writer's
    version), 1 otherwise."""
    from . import read_header
    from ._versions import version_id

    a, b = read_header(path_a), read_header(path_b)
    found = []  # (section, name, value in A, value in B)

    def compare(section, left, right, keys=None):
        for key in keys if keys is not None else sorted(set(left) | set(right)):
            va, vb = left.get(key, "<absent>"), right.get(key, "<absent>")
            if va != vb:
                found.append((section, key, va, vb))

    compare("file", a, b, ["class", "format_version", "hmmfast_version"])
    compare("structure", a["structure"], b["structure"])
    compare("version", {"version_id": a.get("version_id") or version_id(a),
                        "fingerprint": a["fingerprint"]},
            {"version_id": b.get("version_id") or version_id(b),
             "fingerprint": b["fingerprint"]})
    compare("settings", a["params"], b["params"])
    compare("fit", a["fit"] or {}, b["fit"] or {})
    compare("metadata", a["metadata"], b["metadata"])
    for section, key, va, vb in _parameters(path_a, path_b, a, b):
        found.append((section, key, va, vb))
    status = 1 if any(row[:2] != ("file", "hmmfast_version") for row in found) else 0
    if as_json:
        print(json.dumps({"a": path_a, "b": path_b, "same": status == 0, "differences": [
            {"section": s, "name": k, "a": va, "b": vb} for s, k, va, vb in found]},
            indent=2, default=str))
        return status
    if not found:
        print(f"{path_a} and {path_b}: the same model, settings, fit record and metadata")
        return 0
    print(f"--- {path_a}\n+++ {path_b}")
    for section, key, va, vb in found:
        if section == "parameter" and va == "values differ":
            print(f"{section + ' ' + key:<34} {vb}")
        else:
            print(f"{section + ' ' + key:<34} {_short(va)}  ->  {_short(vb)}")
    return status


def _parameters(path_a, path_b, a, b):
    """Parameter arrays whose checksums differ, as ("parameter", name, what, how much):
    the shapes, or the largest absolute difference when both files load."""
    from . import load

    arrays_a, arrays_b = a["arrays"], b["arrays"]
    names = [n for n in sorted(set(arrays_a) | set(arrays_b))
             if arrays_a.get(n, {}).get("sha256") != arrays_b.get(n, {}).get("sha256")]
    if not names:
        return []
    try:
        models = load(path_a), load(path_b)
    except ValueError:
        models = None
    rows = []
    for name in names:
        shapes = [tuple(x[name]["shape"]) if name in x else "<absent>"
                  for x in (arrays_a, arrays_b)]
        if shapes[0] != shapes[1]:
            rows.append(("parameter", name, f"shape {shapes[0]}", f"shape {shapes[1]}"))
            continue
        largest = "values differ"
        attr = name.split(".")[0]
        if models is not None and not name.startswith("param."):
            va, vb = (_dense(getattr(m, attr)) for m in models)
            if va.shape == vb.shape:
                largest = f"largest |A - B| = {float(np.max(np.abs(va - vb))):.6g}"
        rows.append(("parameter", name, "values differ", largest))
    return rows


def _dense(value):
    return np.asarray(value.toarray() if hasattr(value, "toarray") else value)


def _short(value, limit=60):
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."
