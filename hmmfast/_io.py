"""Model files: ``save``, ``load``, ``read_header`` and the model ``fingerprint``.

Format, version 2 (version 1 files are read too)
------------------------------------------------
One zip archive (an ``.npz``; ``numpy.load(path, allow_pickle=False)`` reads it too),
every member stored uncompressed with a fixed date, so the same model gives the same
bytes. Every array is little-endian, C order, in .npy format 1.0 (2.0 is read too)::

    __header__.npy             uint8 (n,): the header, UTF-8 JSON, sorted keys
    startprob_.npy             float64 (N,)
    transmat_.npy              float64 (N, N); a scipy.sparse transmat_ is kept as CSR:
    transmat_.data.npy         float64 (nnz,)
    transmat_.indices.npy      int64 (nnz,)
    transmat_.indptr.npy       int64 (N + 1,)
    emissionprob_.npy          CategoricalHMM, MultinomialHMM: float64 (N, M)
    means_.npy, covars_.npy    GaussianHMM: (N, D) and the compact form the covars_ setter
                               takes: (N,) spherical, (N, D) diag, (N, D, D) full, (D, D) tied
    weights_.npy, means_.npy, covars_.npy   GMMHMM: (N, K), (N, K, D), compact (hmmlearn's)
    lambdas_.npy               PoissonHMM: float64 (N, D)
    param.<name>.npy           float64: an array-valued constructor parameter (a prior)

Header keys, all required and no others: ``format`` ("hmmfast-model"), ``format_version``
(2), ``hmmfast_version`` (the writer's), ``class`` (one of the five built-in classes),
``structure`` ({n_components, n_features, covariance_type and n_mix where they apply,
transmat_format "dense" or "csr", transmat_nnz for csr}), ``params`` (get_params():
numbers, strings, null; ``{"__float__": "-inf"}`` for a non-finite float,
``{"__array__": "param.<name>"}`` for an array), ``unsaved_params`` (names saved as
null: a RandomState or Generator ``random_state``), ``arrays`` ({member: {dtype, shape,
sha256}}), ``fingerprint``, ``version_id`` (hmmfast._versions: hash of the training
data hashes, hyper-parameters and fingerprint), ``fit`` (null, or the fit record:
log_likelihood, n_iter, converged, n_samples, n_sequences, training_data_sha256, method,
and since version 2 fingerprint (the fit's result), random_seed,
previous_training_data_sha256 (a warm-start chain, oldest first) and stale (true when
the parameters changed after the fit)) and ``metadata`` (the user's JSON-safe dict, {}
by default). Version 1 had no ``version_id`` and only the first seven fit keys.

Checksum of an array: SHA-256 of ``f"{dtype.str}|{shape}|"`` then its C-order bytes
(``_io_format.array_sha256``). Fingerprint: SHA-256 of the canonical JSON of the class,
the structure and the parameter arrays' checksums (``_io_format.fingerprint``); it leaves
out every constructor setting that is not structure (priors, fit controls, n_threads,
verbose, random_state, algorithm, implementation, missing). Equal fingerprints: the same
probability model, bit for bit, in the same storage form (a sparse transmat_ and its
dense copy differ).

Validation order in load (each failure raises ModelFileError, one line; an OSError
from opening the file -- missing, a directory, no permission -- propagates as is):
it is a regular file (a FIFO, device or socket is refused before it is opened, so
nothing blocks) -> a non-empty zip -> members are unique, unencrypted, stored, inside
the file -> the header member is a uint8 vector holding strict JSON (no NaN, no duplicate keys)
for an object -> format, format_version (newer: "upgrade hmmfast"), keys and types,
class, structure, params, each declared array's dtype and shape against the structure,
the fingerprint against the declared checksums, the version_id against what it
hashes -> the member names equal the declared arrays -> per array, its .npy header (no
object dtype, C order, dtype, shape) against the declaration and the member's size,
before any data is read -> its data and SHA-256 -> a fresh model: the constructor,
every parameter through its setter (finite, stochastic rows, positive definite
covariances, valid CSR), which must leave the saved values unchanged, the fit record,
and the whole-model check. Nothing is unpickled: object arrays are refused from their
.npy header, and numpy's pickle path is never called.

Atomic write: the model, parameters and metadata are validated and encoded, and the
model rebuilt from them as load would, before anything touches the disk; then
hmmfast._outputs.Output writes it: a temporary file beside the target (symlinks
followed), fsynced, given the target's mode (a new file: 0o666 minus the umask) and
renamed onto it, the directory fsynced; a target that is not a regular file (a device,
a FIFO) is written in place instead. On any exception the temporary file is removed
and the previous file at the path is untouched. The file is written at exactly the
path given (no ".npz" is appended, unlike numpy.savez).
"""

import errno
import io
import math
import os
import stat
import struct
import zipfile

import numpy as np
from numpy.lib import format as npy_format
from scipy import sparse

from . import _io_format as F
from . import _sparse, _versions
from ._categorical import CategoricalHMM
from ._errors import HMMTypeError, ModelFileError, ParameterError
from ._gaussian import GaussianHMM
from ._gmm import GMMHMM
from ._multinomial import MultinomialHMM
from ._outputs import Output
from ._poisson import PoissonHMM

CLASSES = {cls.__name__: cls for cls in (CategoricalHMM, GaussianHMM, GMMHMM, PoissonHMM,
                                         MultinomialHMM)}
_PARAM_NAMES = {name: cls._get_param_names() for name, cls in CLASSES.items()}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# what a damaged archive can raise from zipfile / numpy.lib.format
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
                TypeError, KeyError, IndexError, NotImplementedError, RuntimeError,
                OverflowError, SyntaxError, struct.error)


# ---------------------------------------------------------------------- model -> arrays


def _class_name(model):
    name = type(model).__name__
    if CLASSES.get(name) is not type(model):
        raise HMMTypeError(
            f"model files hold the built-in classes {sorted(CLASSES)}, not "
            f"{type(model).__module__}.{type(model).__qualname__}: a subclass may compute "
            "what a file cannot record; pickle it, or use a built-in class")
    return name


def model_state(model):
    """(class name, structure, {member: array}) of a built-in model's parameters.

    Read under the model's lock (one consistent snapshot); arrays are little-endian and
    C-contiguous (the model's own read-only arrays, not copies, where they already are).
    """
    name = _class_name(model)
    with model._lock:
        n = model._n()
        model._check_fitted(F.PARAMETERS[name])
        raw = {p: getattr(model, "_" + p[:-1]) for p in F.PARAMETERS[name]}
        structure = {key: getattr(model, key) for key in F.STRUCTURE[name]}
    structure["n_components"] = n
    arrays = {}
    for p, value in raw.items():
        if p == "transmat_" and _sparse.is_sparse(value):
            structure["transmat_format"], structure["transmat_nnz"] = "csr", int(value.nnz)
            arrays["transmat_.data"] = np.ascontiguousarray(value.data, dtype=F.FLOAT)
            arrays["transmat_.indices"] = np.ascontiguousarray(value.indices, dtype=F.INDEX)
            arrays["transmat_.indptr"] = np.ascontiguousarray(value.indptr, dtype=F.INDEX)
        else:
            arrays[p] = np.ascontiguousarray(value, dtype=F.FLOAT)
    structure.setdefault("transmat_format", "dense")
    for key in ("n_features", "n_mix"):
        if key in structure:
            structure[key] = int(structure[key])
    for member, (_, shape) in F.parameter_members(name, structure).items():
        if arrays[member].shape != shape:
            raise ParameterError(
                f"{member} has shape {arrays[member].shape} but the model's structure "
                f"{structure} needs {shape}; assign it again")
    return name, structure, arrays


def fingerprint(model):
    """Hex SHA-256 of the model's class, structure and parameters (see the module doc)."""
    name, structure, arrays = model_state(model)
    return F.fingerprint(name, structure, {m: F.array_sha256(a) for m, a in arrays.items()})


# ---------------------------------------------------------------------- save


def _encode_fit(record):
    if record is None:
        return None
    out = dict(record)
    value = out.get("log_likelihood")
    if isinstance(value, float) and not math.isfinite(value):
        out["log_likelihood"] = F._special_float(value)
    return out


def save(model, path, metadata=None):
    """Write ``model`` to ``path`` atomically (see the module docstring for the format).

    Raises HMMTypeError for a class other than the built-in ones, an unsavable
    constructor parameter or metadata that is not JSON-safe; NotFittedError /
    ParameterError for a model without valid parameters; OSError from the file system,
    naming ``path``. Nothing is written when any of these is raised.
    """
    members = encode(model, path, metadata)
    with Output(path) as f:
        write_members(f, members)


def encode(model, path, metadata=None):
    """The members of ``model``'s file as [(name, array)], the header first, checked as
    ``load`` will check them (nothing touches the disk; ``path`` names the file in
    errors)."""
    target = os.fsdecode(os.fspath(path))
    metadata = F.check_metadata(metadata)
    name = _class_name(model)
    with model._lock:
        model._prepare()  # the model as a whole is valid
        name, structure, arrays = model_state(model)
        params, param_arrays, unsaved = F.encode_params(model.get_params())
        record = getattr(model, "_fit_record", None)
    members = {**arrays, **param_arrays}
    declared = {m: {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": F.array_sha256(a)}
                for m, a in members.items()}
    from . import __version__

    fingerprint = F.fingerprint(name, structure, {m: declared[m]["sha256"] for m in arrays})
    header = {
        "format": F.FORMAT, "format_version": F.FORMAT_VERSION, "hmmfast_version": __version__,
        "class": name, "structure": structure, "params": params, "unsaved_params": unsaved,
        "arrays": declared, "fit": _encode_fit(_versions.record_for_file(record, fingerprint)),
        "metadata": metadata, "fingerprint": fingerprint,
    }
    header["version_id"] = _versions.version_id(header)
    blob = F.encode_header(header)
    where = f"model to save to {target!r}"
    try:  # what load will check, before the disk is touched
        checked = F.parse_header(where, blob)
        F.check_header(where, checked, _PARAM_NAMES)
        _versions.check_version_id(where, checked)
        _build(where, header, members)
    except ModelFileError as exc:
        raise ParameterError(f"cannot save this {name}: {exc}") from None
    return [(F.HEADER, blob), *members.items()]


def write_members(f, members):
    """The zip archive of ``members`` into the binary file ``f`` (a stream that cannot
    seek, such as a pipe, gets the same bytes, assembled in memory first)."""
    if not _seekable(f):
        buffer = io.BytesIO()
        write_members(buffer, members)
        f.write(buffer.getbuffer())
        return
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
        for name, arr in members:
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            with zf.open(info, "w", force_zip64=arr.nbytes >= 1 << 31) as out:
                npy_format.write_array(out, arr, allow_pickle=False)


def _seekable(f):
    try:
        return f.seekable() and f.tell() == 0
    except OSError:
        return False


# ---------------------------------------------------------------------- load


class _Archive:
    """An opened model file whose members and header have been checked."""

    def __init__(self, path):
        self.path = os.fsdecode(os.fspath(path))
        self.where = f"model file {self.path!r}"
        self._check_regular(os.stat(self.path).st_mode)  # an OSError propagates
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))  # never blocks, even if swapped
        self._file = os.fdopen(fd, "rb")
        try:
            self._check_regular(os.fstat(fd).st_mode)
            self._open()
        except BaseException:
            self._file.close()
            raise

    def _check_regular(self, mode):
        """Refuse what is not a regular file before opening it: a FIFO would block the
        reader forever, a device never ends. A directory stays IsADirectoryError."""
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", self.path)
        if not stat.S_ISREG(mode):
            kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else
                    "a character device" if stat.S_ISCHR(mode) else
                    "a block device" if stat.S_ISBLK(mode) else
                    "a socket" if stat.S_ISSOCK(mode) else "not a file")
            self._fail(f"is {kind}, not a regular file; a model file must be a regular "
                       "file (save it to one, or copy it: cat pipe > model.npz)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()

    def _fail(self, what):
        raise ModelFileError(f"{self.where}: {what}")

    def _open(self):
        size = os.fstat(self._file.fileno()).st_size
        if size == 0:
            self._fail("the file is empty; expected an hmmfast model (.npz)")
        try:
            self._zip = zipfile.ZipFile(self._file)
            infos = self._zip.infolist()
        except _READ_ERRORS as exc:
            self._fail(f"not a zip archive (.npz), as a model file must be ({exc})")
        self._members = {}
        for info in infos:
            name = info.filename
            duplicate = name.endswith(".npy") and name[:-4] in self._members
            if duplicate or not name.endswith(".npy"):
                what = "a duplicate member" if duplicate else "a member"
                self._fail(f"{what} {name!r:.80}; expected each array once, as NAME.npy")
            if info.flag_bits & 0x1:
                self._fail(f"member {name!r:.80} is encrypted")
            if info.compress_type != zipfile.ZIP_STORED:
                self._fail(f"member {name!r:.80} is compressed (method "
                           f"{info.compress_type}); model files store members uncompressed")
            if info.file_size != info.compress_size or info.header_offset + info.file_size > size:
                self._fail(f"member {name!r:.80} claims {info.file_size} bytes at offset "
                           f"{info.header_offset}, beyond the file's {size}: truncated or "
                           "corrupt")
            self._members[name[:-4]] = info
        if F.HEADER not in self._members:
            self._fail(f"no {F.HEADER}.npy member: not an hmmfast model file")
        data = self._read(F.HEADER, {"dtype": F.BYTES, "shape": None})
        self.header = F.parse_header(self.where, data)
        F.check_header(self.where, self.header, _PARAM_NAMES)
        _versions.check_version_id(self.where, self.header)
        names = set(self._members) - {F.HEADER}
        declared = set(self.header["arrays"])
        if names != declared:
            self._fail(f"members differ from the header: unexpected "
                       f"{sorted(names - declared)[:5]}, missing {sorted(declared - names)}"
                       [:300])
        for name, entry in self.header["arrays"].items():  # .npy headers, not the data
            self._read(name, entry, with_data=False)

    def _read(self, name, declared, with_data=True):
        """One member's array, its .npy header checked against ``declared`` (dtype and
        shape; shape None: any 1-D) and the member's size before its data is read
        (``with_data=False``: only those checks)."""
        info = self._members[name]
        try:
            with self._zip.open(info) as fp:
                version = npy_format.read_magic(fp)
                if version not in ((1, 0), (2, 0)):
                    self._fail(f"member {name}.npy has .npy format {version}, expected 1.0")
                read = (npy_format.read_array_header_1_0 if version == (1, 0)
                        else npy_format.read_array_header_2_0)
                shape, fortran, dtype = read(fp)
                if dtype.hasobject:
                    self._fail(f"member {name}.npy holds Python objects (pickled data); "
                               "refused, a model file holds numbers only")
                expected = tuple(declared["shape"]) if declared["shape"] is not None else None
                if (dtype.str != declared["dtype"] or fortran
                        or (expected is not None and shape != expected)
                        or (expected is None and len(shape) != 1)):
                    self._fail(f"member {name}.npy holds {dtype.str} {shape}"
                               f"{' Fortran order' if fortran else ''}; expected "
                               f"{declared['dtype']} {'(n,)' if expected is None else expected} in C order")
                nbytes = dtype.itemsize * math.prod(shape)
                if fp.tell() + nbytes != info.file_size:
                    self._fail(f"member {name}.npy is {info.file_size} bytes; its .npy "
                               f"header declares {fp.tell() + nbytes}")
                if not with_data:
                    return None
                data = fp.read(nbytes)
        except ModelFileError:
            raise
        except _READ_ERRORS as exc:
            self._fail(f"member {name}.npy cannot be read ({exc})"[:300])
        if len(data) != nbytes:
            self._fail(f"member {name}.npy is truncated: {len(data)} of {nbytes} bytes")
        return np.frombuffer(data, dtype=dtype).reshape(shape)

    def arrays(self):
        """Every declared array, its SHA-256 checked."""
        out = {}
        for name, declared in self.header["arrays"].items():
            arr = self._read(name, declared)
            if F.array_sha256(arr) != declared["sha256"]:
                self._fail(f"checksum mismatch in {name}.npy: the data is not what was "
                           "saved (SHA-256 differs from the header's)")
            out[name] = arr
        return out


def read_header(path):
    """The header of a model file, without reading its parameter arrays.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict
        The JSON header as stored (see ``hmmfast._io``): format, format_version,
        hmmfast_version, class, structure, params, unsaved_params, arrays (dtype, shape
        and sha256 of each), fingerprint, fit (the fit record or None) and metadata.
        Checked as ``load`` checks it, except the array data and its checksums.

    Raises
    ------
    ModelFileError
        The file is not a valid model file. An OSError from opening it propagates.
    """
    with _Archive(path) as archive:
        return archive.header


def load(path):
    """Load a model written by ``save``, never unpickling; see ``hmmfast._io``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    model : CategoricalHMM, GaussianHMM, GMMHMM, PoissonHMM or MultinomialHMM
        Equal in parameters (bit for bit), constructor parameters, fingerprint and fit
        record to the model saved (so score/decode give the same bits); a RandomState
        random_state comes back as None, ``monitor_`` as a fresh monitor. Its kernel
        inputs are built, so the first call pays no set-up.

    Raises
    ------
    ModelFileError
        Anything wrong with the file: not a zip, header, format version, shapes,
        checksums, parameter validation. An OSError from opening it (missing file,
        permissions) propagates.
    """
    with _Archive(path) as archive:
        arrays = archive.arrays()
    return _build(archive.where, archive.header, arrays)


def _csr(structure, arrays):
    """A CSR transmat_ from checked index arrays (scipy does not check index bounds)."""
    n, nnz = structure["n_components"], structure["transmat_nnz"]
    data = arrays["transmat_.data"]
    indices, indptr = arrays["transmat_.indices"], arrays["transmat_.indptr"]
    if indptr[0] != 0 or indptr[-1] != nnz or np.any(np.diff(indptr) < 0):
        raise ValueError(f"transmat_.indptr must rise from 0 to nnz={nnz}")
    if nnz and (indices.min() < 0 or indices.max() >= n):
        raise ValueError(f"transmat_.indices must lie in [0, {n})")
    return sparse.csr_matrix((np.array(data), np.array(indices), np.array(indptr)),
                             shape=(n, n))


def _unchanged(model, p, value):
    stored = getattr(model, "_" + p[:-1])
    if sparse.issparse(stored):
        return (stored.nnz == value.nnz
                and all(np.array_equal(getattr(stored, a), getattr(value, a))
                        for a in F.CSR_PARTS))
    return np.array_equal(stored, value)


def _build(where, header, arrays):
    """A fresh model from a checked header and its arrays; the setters validate."""
    name = header["class"]
    structure = header["structure"]
    try:
        params = {k: F.decode_value(v, arrays) for k, v in header["params"].items()}
        model = CLASSES[name](**params)
        for p in F.PARAMETERS[name]:
            csr = p == "transmat_" and structure["transmat_format"] == "csr"
            value = _csr(structure, arrays) if csr else arrays[p]
            setattr(model, p, value)
            if not _unchanged(model, p, value):
                raise ModelFileError(
                    f"{where}: validating {p} changed its values (a renormalised row, an "
                    "unsorted or explicit-zero CSR entry...); expected the validated form "
                    "save writes")
        fit = header["fit"]
        if fit is not None:
            fit = {**fit, "log_likelihood": F.decode_value(fit["log_likelihood"], {})}
        object.__setattr__(model, "_fit_record", fit)
        model._prepare()
    except ModelFileError:
        raise
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise ModelFileError(f"{where}: the saved parameters are not a valid {name}: "
                             f"{exc}"[:400]) from None
    return model
