"""Hostile model files: every one raises hmmfast.ModelFileError (a one-line message naming
the file), never another exception, never an allocation the file does not hold, never
code execution. Round trips and fixtures: tests/test_io.py.
"""

import io
import json
import os
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from factories import categorical
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format

import hmmfast
from hmmfast import _io_format as F
from hmmfast._versions import version_id
from hmmfast import ModelFileError


def small_model():
    return categorical([0.5, 0.25, 0.25], [[0.5, 0.5, 0.0], [0.25, 0.5, 0.25], [0.0, 0.5, 0.5]],
                       [[0.5, 0.25, 0.25, 0.0], [0.125, 0.375, 0.25, 0.25],
                        [0.25, 0.25, 0.25, 0.25]])


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    path = tmp_path_factory.mktemp("valid") / "model.npz"
    small_model().save(path, metadata={"k": "v"})
    return path


def rewrite(path, data):
    """Write ``data`` to ``path`` as a new file: rewriting a file in place after truncating
    it makes ext4 flush it to disk on close (auto_da_alloc), ~4 ms a write on a busy
    disk; these tests write thousands of variants."""
    path.unlink(missing_ok=True)
    path.write_bytes(data)
    return path


def expect_error(path, *words, reader=hmmfast.load):
    with pytest.raises(ModelFileError) as info:
        reader(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    for word in words:
        assert word in message, (word, message)
    return message


def npy(arr, allow_pickle=False):
    buf = io.BytesIO()
    npy_format.write_array(buf, np.asarray(arr), allow_pickle=allow_pickle)
    return buf.getvalue()


def npy_claiming(shape, data=b"\0" * 24, descr="<f8", fortran=False):
    """A .npy member whose header declares ``shape`` over ``data``."""
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": fortran,
                                            "shape": shape})
    return buf.getvalue() + data


def members(path):
    with zipfile.ZipFile(path) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def write_zip(path, items, compression=zipfile.ZIP_STORED):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name"
        with zipfile.ZipFile(path, "w", compression) as zf:
            for name, data in items:
                zf.writestr(name, data)
    return path


def parts(path):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(arrays.pop("__header__").tobytes()), arrays


def header_member(header):
    return ("__header__.npy", npy(np.frombuffer(json.dumps(header).encode(), np.uint8)))


def forge(valid, dst, edit_arrays=None, edit_header=None):
    """A rewritten file with checksums and fingerprint made consistent again (as a
    careful forger would), then ``edit_header`` applied."""
    header, arrays = parts(valid)
    if edit_arrays:
        edit_arrays(arrays)
    for k, a in arrays.items():
        header["arrays"][k] = {"dtype": a.dtype.str, "shape": list(a.shape),
                               "sha256": F.array_sha256(a)}
    params = F.parameter_members(header["class"], header["structure"])
    header["fingerprint"] = F.fingerprint(header["class"], header["structure"], {
        k: header["arrays"][k]["sha256"] for k in params})
    if "version_id" in header:
        header["version_id"] = version_id(header)
    if edit_header:
        edit_header(header)
    items = [header_member(header), *((k + ".npy", npy(a)) for k, a in arrays.items())]
    return write_zip(dst, items)


# ---------------------------------------------------------------------- damaged bytes


def test_every_truncation_is_refused(valid, tmp_path):
    raw = valid.read_bytes()
    path = tmp_path / "cut.npz"
    for size in range(len(raw)):
        rewrite(path, raw[:size])
        expect_error(path)


def test_every_single_bit_flip_is_refused_or_harmless(valid, tmp_path):
    raw = valid.read_bytes()
    fingerprint = hmmfast.read_header(valid)["fingerprint"]
    path = tmp_path / "flip.npz"
    harmless = 0
    for at in range(len(raw)):
        flipped = bytearray(raw)
        flipped[at] ^= 0x10
        rewrite(path, bytes(flipped))
        try:
            model = hmmfast.load(path)
        except ModelFileError as exc:
            assert "\n" not in str(exc)
            continue
        assert model.fingerprint == fingerprint  # only zip bookkeeping bytes (dates...)
        harmless += 1
    assert harmless < len(raw) // 10


def test_data_and_header_changes_with_a_valid_zip_crc(valid, tmp_path):
    header, arrays = parts(valid)
    arrays["transmat_"] = arrays["transmat_"][::-1].copy()  # still stochastic
    items = [header_member(header), *((k + ".npy", npy(a)) for k, a in arrays.items())]
    expect_error(write_zip(tmp_path / "a.npz", items), "checksum mismatch", "transmat_")
    header, arrays = parts(valid)
    header["fingerprint"] = "0" * 64
    items = [header_member(header), *((k + ".npy", npy(a)) for k, a in arrays.items())]
    expect_error(write_zip(tmp_path / "b.npz", items), "fingerprint", reader=hmmfast.read_header)


@pytest.mark.parametrize("content", [b"", b"hello world" * 10, b"PK\x03\x04" + b"\0" * 40,
                                     npy(np.ones(3)), b"\x80\x04K\x01."])
def test_not_a_zip(content, tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    expect_error(path, "empty" if not content else "zip")


# ---------------------------------------------------------------------- header


@pytest.mark.parametrize("text, words", [
    (b"{not json", ["JSON"]), (b"[1, 2]", ["JSON object"]), (b"\xff\xfe", ["UTF-8"]),
    (b'{"format": NaN}', ["JSON"]), (b'{"a": 1, "a": 2}', ["duplicate"]),
    (b'{"x": 1e999}', ["overflows"]), (b"[" * 100000 + b"]" * 100000, ["JSON"]),
    (b'{"format": "something-else"}', ["not an hmmfast model"])])
def test_bad_header_json(valid, tmp_path, text, words):
    items = [("__header__.npy", npy(np.frombuffer(text, np.uint8))), *members(valid)[1:]]
    expect_error(write_zip(tmp_path / "h.npz", items), *words, reader=hmmfast.read_header)


def test_header_member_missing_or_of_wrong_dtype(valid, tmp_path):
    expect_error(write_zip(tmp_path / "a.npz", members(valid)[1:]), "__header__")
    items = [("__header__.npy", npy(np.zeros(3))), *members(valid)[1:]]
    expect_error(write_zip(tmp_path / "b.npz", items), "__header__.npy holds <f8")


@pytest.mark.parametrize("key", sorted(F.HEADER_KEYS))
def test_missing_header_key(valid, tmp_path, key):
    expect_error(forge(valid, tmp_path / "m.npz", edit_header=lambda h: h.pop(key)), key)


@pytest.mark.parametrize("key, value", [
    ("format_version", "1"), ("format_version", True), ("format_version", 0),
    ("class", 3), ("structure", []), ("params", None), ("arrays", []), ("fit", 1),
    ("metadata", "x"), ("fingerprint", "xyz"), ("unsaved_params", [1]),
    ("hmmfast_version", None)])
def test_wrong_header_types(valid, tmp_path, key, value):
    expect_error(forge(valid, tmp_path / "m.npz",
                       edit_header=lambda h: h.__setitem__(key, value)), key)


def test_newer_format_version_asks_for_an_upgrade(valid, tmp_path):
    path = forge(valid, tmp_path / "m.npz",
                 edit_header=lambda h: h.__setitem__("format_version", F.FORMAT_VERSION + 1))
    expect_error(path, "newer hmmfast", "upgrade", reader=hmmfast.read_header)


@pytest.mark.parametrize("edit, words", [
    (lambda h: h.__setitem__("class", "MyHMM"), ["unknown model class", "MyHMM"]),
    (lambda h: h["structure"].__setitem__("n_components", 4), ["n_components"]),
    (lambda h: h["params"].__setitem__("n_components", 4), ["n_components"]),
    (lambda h: h["params"].__setitem__("algorithm", "bogus"), ["algorithm"]),
    (lambda h: h["params"].__setitem__("os.system", 1), ["unknown constructor"]),
    (lambda h: h["params"].__setitem__("tol", {"__float__": "huge"}), ["tol"]),
    (lambda h: h["params"].__setitem__("tol", {"__array__": "../x"}), ["refers to"]),
    (lambda h: h["arrays"]["startprob_"].__setitem__("shape", [4]), ["startprob_"]),
    (lambda h: h["arrays"]["startprob_"].__setitem__("dtype", "|O"), ["startprob_"]),
    (lambda h: h["arrays"].pop("transmat_"), ["transmat_"]),
    (lambda h: h["fit"] is None and h.__setitem__("fit", {"n_iter": -1}), ["fit record"])])
def test_header_that_lies(valid, tmp_path, edit, words):
    expect_error(forge(valid, tmp_path / "m.npz", edit_header=edit), *words)


# ---------------------------------------------------------------------- members


def test_member_shape_or_layout_differs_from_the_header(valid, tmp_path):
    items = dict(members(valid))
    for name, data, words in [
            ("emissionprob_.npy", npy(np.full((3, 3), 1 / 3)), ["emissionprob_", "(3, 4)"]),
            ("startprob_.npy", npy(np.array([0.5, 0.25, 0.25], ">f8")), [">f8"]),
            ("startprob_.npy", npy(np.array([0.5, 0.25, 0.25], "<f4")), ["<f4"]),
            ("transmat_.npy", npy(np.asfortranarray(np.eye(3)[:, ::-1])), ["Fortran"]),
            ("startprob_.npy", npy_claiming((3,), b"\0" * 16), ["bytes"]),
            ("startprob_.npy", b"\x93NUMPY\x03\x00" + b"\0" * 30, ["format"])]:
        path = write_zip(tmp_path / "m.npz", [*{**items, name: data}.items()])
        expect_error(path, *words, reader=hmmfast.read_header)


def test_huge_declared_shapes_are_refused_without_allocating(valid, tmp_path):
    items = dict(members(valid))
    items["startprob_.npy"] = npy_claiming((10**12,))  # 8 TB declared over 24 bytes
    paths = [(write_zip(tmp_path / "a.npz", items.items()), "startprob_.npy holds")]

    def huge(h):  # a header consistent with 10**12 states, members claiming it too
        n = 10**12
        h["structure"]["n_components"] = h["params"]["n_components"] = n
        for k, shape in [("startprob_", [n]), ("transmat_", [n, n]), ("emissionprob_", [n, 4])]:
            h["arrays"][k]["shape"] = shape
        h["fingerprint"] = F.fingerprint(h["class"], h["structure"], {
            k: h["arrays"][k]["sha256"] for k in ("emissionprob_", "startprob_", "transmat_")})
        h["version_id"] = version_id(h)

    forged = forge(valid, tmp_path / "b.npz", edit_header=huge)
    header = json.loads(np.frombuffer(npy_format.read_array(
        io.BytesIO(dict(members(forged))["__header__.npy"])), np.uint8).tobytes())
    paths.append((write_zip(tmp_path / "b.npz", [header_member(header), *(
        (f"{k}.npy", npy_claiming(tuple(header["arrays"][k]["shape"])))
        for k in ("startprob_", "transmat_", "emissionprob_"))]), "header declares"))
    for path, words in paths:
        tracemalloc.start()
        try:
            expect_error(path, words)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 5_000_000, peak


class Payload:
    """Unpickling this creates a directory: proof of code execution if it appears."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickled_object_arrays_are_refused_without_unpickling(valid, tmp_path):
    marker = tmp_path / "pwned"
    evil = npy(np.array([Payload(marker)], dtype=object), allow_pickle=True)
    items = dict(members(valid))
    cases = [{**items, "startprob_.npy": evil}, {**items, "__header__.npy": evil},
             {**items, "payload.npy": evil}]
    for k, case in enumerate(cases):
        path = write_zip(tmp_path / f"e{k}.npz", case.items())
        expect_error(path)
        expect_error(path, reader=hmmfast.read_header)
    assert not marker.exists()
    np.load(io.BytesIO(evil), allow_pickle=True)  # the payload is live: this runs it
    assert marker.exists()


@pytest.mark.parametrize("extra, words", [
    (("notes.txt", b"hi"), ["notes.txt"]), (("extra.npy", npy(np.ones(2))), ["extra"]),
    (("startprob_.npy", npy(np.ones(3) / 3)), ["duplicate"]),
    (("../startprob_.npy", npy(np.ones(3) / 3)), ["../startprob_"]),
    (("/etc/startprob_.npy", npy(np.ones(3) / 3)), ["startprob_"]),
    (("sub/../transmat_.npy", npy(np.eye(3))), ["transmat_"])])
def test_extra_duplicate_and_traversal_members(valid, tmp_path, extra, words):
    path = write_zip(tmp_path / "m.npz", [*members(valid), extra])
    expect_error(path, *words, reader=hmmfast.read_header)


def test_compressed_members_are_refused(valid, tmp_path):
    path = write_zip(tmp_path / "m.npz", members(valid), zipfile.ZIP_DEFLATED)
    expect_error(path, "compressed")


# ---------------------------------------------------------------------- parameter values


@pytest.mark.parametrize("edit, words", [
    (lambda a: a["startprob_"].__setitem__(1, np.nan), ["finite"]),
    (lambda a: a["emissionprob_"].__setitem__((0, 0), np.inf), ["finite"]),
    (lambda a: a["transmat_"].__setitem__(0, a["transmat_"][0] * 1.1), ["sums to"]),
    (lambda a: a["transmat_"].__setitem__((0, 0), -0.5), ["non-negative"]),
    (lambda a: a["transmat_"].__setitem__((1, 1), 0.5 + 1e-12), ["changed its values"])])
def test_invalid_parameters_with_matching_checksums(valid, tmp_path, edit, words):
    expect_error(forge(valid, tmp_path / "m.npz", edit_arrays=edit), *words)


def test_invalid_csr_and_covariances(tmp_path):
    from scipy import sparse

    m = small_model()
    m.transmat_ = sparse.csr_matrix(m.transmat_)
    m.save(tmp_path / "s.npz")
    for edit, words in [
            (lambda a: a["transmat_.indices"].__setitem__(0, 7), ["indices"]),
            (lambda a: a["transmat_.indptr"].__setitem__(1, 6), ["indptr"]),
            (lambda a: a["transmat_.indices"].__setitem__(slice(0, 2), [1, 0]), ["changed"])]:
        expect_error(forge(tmp_path / "s.npz", tmp_path / "f.npz", edit_arrays=edit), *words)
    g = hmmfast.GaussianHMM(2, covariance_type="full")
    g.startprob_, g.transmat_ = [0.5, 0.5], [[0.5, 0.5], [0.5, 0.5]]
    g.means_, g.covars_ = [[0.0], [1.0]], [[[1.0]], [[2.0]]]
    g.save(tmp_path / "g.npz")
    expect_error(forge(tmp_path / "g.npz", tmp_path / "f.npz", edit_arrays=lambda a: a[
        "covars_"].__setitem__((1, 0, 0), -1.0)), "positive definite")


# ---------------------------------------------------------------------- fuzzing


def _check_loader(path, fingerprint):
    for reader in (hmmfast.read_header, hmmfast.load):
        try:
            out = reader(path)
        except ModelFileError as exc:
            assert "\n" not in str(exc)
            continue
        got = out["fingerprint"] if isinstance(out, dict) else out.fingerprint
        assert got == fingerprint


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 10**6)),
       insert=st.one_of(st.none(), st.tuples(st.integers(0, 10**6), st.binary(max_size=16))))
def test_fuzz_mutated_files(valid, tmp_path, edits, cut, insert):
    raw = bytearray(valid.read_bytes())
    for at, byte in edits:
        raw[at % len(raw)] = byte
    if insert is not None:
        at = insert[0] % len(raw)
        raw[at:at] = insert[1]
    if cut is not None:
        del raw[cut % len(raw):]
    path = tmp_path / "fuzz.npz"
    rewrite(path, bytes(raw))
    _check_loader(path, hmmfast.read_header(valid)["fingerprint"])


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06"]), body=st.binary(max_size=400))
def test_fuzz_random_bytes(tmp_path, prefix, body):
    path = tmp_path / "random.npz"
    rewrite(path, prefix + body)
    _check_loader(path, None)
