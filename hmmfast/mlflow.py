"""MLflow integration: log hmmfast models to a tracking server and registry, load them
back, and serve them through MLflow's ``pyfunc`` interface (extra ``[mlflow]``).

::

    import mlflow
    import hmmfast.mlflow

    with mlflow.start_run():
        model.fit(X, lengths)
        uri = hmmfast.mlflow.log_model(model, "hmm", registered_model_name="sessions")
    model = hmmfast.mlflow.load_model(uri)              # the hmmfast model, bit for bit
    scorer = mlflow.pyfunc.load_model(uri)              # any MLflow consumer
    scorer.predict(pd.DataFrame({"obs": [[0, 2, 1], [1, 1]]}))   # one row per session

What a logged model carries. Artifacts: the model file (``model.npz``, written by
``model.save``: checksummed, loaded without unpickling) and an ``MLmodel`` file with two
flavours, ``hmmfast`` (the file, class, fingerprint, hmmfast version) and
``python_function`` (loader ``hmmfast.mlflow``). Run tags: ``hmmfast.fingerprint``,
``hmmfast.training_data_sha256`` (the hash of the data the last fit saw,
``hmmfast.hash``-compatible), ``hmmfast.class`` and ``hmmfast.version``, so a registry
entry names exactly which parameters and which training data it holds. Run metrics: the
last fit's objective per EM iteration (``hmmfast.log_likelihood``, step = iteration),
``hmmfast.n_iter`` and ``hmmfast.converged``.

The pyfunc's ``predict(df)`` takes a pandas DataFrame with one row per session and a
column ``obs`` (a list or array of the session's observations: symbols for a
CategoricalHMM, frames, lists of ``n_features`` numbers, for the other families) and
returns a DataFrame with the same index and columns ``score`` (log P(session); -inf for
a session the model cannot produce) and ``n_obs``.
"""

import json
import os
import tempfile
import time

import numpy as np

try:
    import mlflow
    from mlflow.models import Model
except ImportError as exc:  # pragma: no cover - only without the extra
    raise ImportError(f'hmmfast.mlflow needs MLflow: pip install "hmmfast[mlflow]" '
                      f"({exc})") from exc

from . import __version__
from . import load as _load_file
from ._errors import HMMInputError, HMMTypeError

FLAVOR_NAME = "hmmfast"
MODEL_FILE = "model.npz"
OBS_COLUMN = "obs"

__all__ = ["load_model", "log_model", "save_model"]


def save_model(model, path, metadata=None):
    """Write ``model`` as an MLflow model directory at ``path`` (which must not exist).

    Parameters
    ----------
    model : a built-in hmmfast model with its parameters set
    path : str or os.PathLike
    metadata : dict, optional
        JSON-safe values saved in the model file's header (``hmmfast.read_header``).
    """
    path = os.fspath(path)
    if os.path.exists(path):
        raise FileExistsError(f"{path} already exists; save_model writes a new directory")
    os.makedirs(path)
    model.save(os.path.join(path, MODEL_FILE), metadata=metadata)
    mlmodel = Model()
    mlmodel.add_flavor(FLAVOR_NAME, model_file=MODEL_FILE, hmmfast_version=__version__,
                       model_class=type(model).__name__, fingerprint=model.fingerprint)
    mlflow.pyfunc.add_to_model(mlmodel, loader_module="hmmfast.mlflow", data=MODEL_FILE)
    with open(os.path.join(path, "requirements.txt"), "w") as f:
        f.write(f"hmmfast=={__version__}\n")
    mlmodel.save(os.path.join(path, "MLmodel"))


def log_model(model, name, *, registered_model_name=None, metadata=None):
    """Log ``model`` to the active MLflow run (one is started and ended if none is
    active), with its tags and fit history (see the module docstring).

    Parameters
    ----------
    model : a built-in hmmfast model with its parameters set
    name : str
        The artifact path within the run.
    registered_model_name : str, optional
        Also register it under this name in the model registry (a new version).
    metadata : dict, optional
        JSON-safe values saved in the model file's header.

    Returns
    -------
    str
        The model's URI, ``runs:/<run id>/<name>``, for :func:`load_model` and
        ``mlflow.pyfunc.load_model``.
    """
    if not isinstance(name, str) or not name or name.startswith("/"):
        raise HMMTypeError(f"name must be a relative artifact path, got {name!r}")
    own_run = mlflow.active_run() is None
    run = mlflow.start_run() if own_run else mlflow.active_run()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "model")
            save_model(model, local, metadata)
            mlflow.log_artifacts(local, artifact_path=name)
        _log_tags_and_history(model, run.info.run_id)
        uri = f"runs:/{run.info.run_id}/{name}"
        if registered_model_name is not None:
            mlflow.register_model(uri, registered_model_name)
    finally:
        if own_run:
            mlflow.end_run()
    return uri


def _log_tags_and_history(model, run_id):
    from mlflow.entities import Metric, RunTag

    record = getattr(model, "_fit_record", None) or {}
    tags = {"hmmfast.fingerprint": model.fingerprint, "hmmfast.class": type(model).__name__,
            "hmmfast.version": __version__}
    if record.get("training_data_sha256"):
        tags["hmmfast.training_data_sha256"] = record["training_data_sha256"]
    if record.get("method"):
        tags["hmmfast.fit_method"] = record["method"]
    metrics = []
    monitor = getattr(model, "monitor_", None)
    history = list(getattr(monitor, "history", []) or [])
    now = int(1000 * time.time())
    for step, value in enumerate(history):
        if np.isfinite(value):
            metrics.append(Metric("hmmfast.log_likelihood", float(value), now, step))
    if history:
        metrics.append(Metric("hmmfast.n_iter", float(monitor.iter), now, 0))
        metrics.append(Metric("hmmfast.converged", float(bool(monitor.converged)), now, 0))
    client = mlflow.MlflowClient()
    client.log_batch(run_id, metrics=metrics,
                     tags=[RunTag(k, str(v)) for k, v in tags.items()])


def _local_path(model_uri):
    return mlflow.artifacts.download_artifacts(artifact_uri=model_uri)


def load_model(model_uri):
    """The hmmfast model logged at ``model_uri`` (``runs:/...``, ``models:/name/1``, a
    local directory...), loaded from its model file (checksums verified, no unpickling).
    """
    path = _local_path(model_uri)
    with open(os.path.join(path, "MLmodel")) as f:
        text = f.read()
    conf = Model.from_dict(_yaml(text)).flavors.get(FLAVOR_NAME)
    if conf is None:
        raise HMMTypeError(f"{model_uri} is not an hmmfast model (no {FLAVOR_NAME!r} "
                           "flavour in its MLmodel)")
    return _load_file(os.path.join(path, conf["model_file"]))


def _yaml(text):
    import yaml

    return yaml.safe_load(text)


class _PyFuncModel:
    """The ``python_function`` view of an hmmfast model (see the module docstring)."""

    def __init__(self, model):
        self.model = model

    def get_raw_model(self):
        return self.model

    def predict(self, model_input, params=None):
        import pandas as pd

        if not isinstance(model_input, pd.DataFrame) or OBS_COLUMN not in model_input:
            raise HMMInputError(f"predict takes a DataFrame with one row per session and a "
                                f"column {OBS_COLUMN!r}, got {type(model_input).__name__}")
        sequences = [self._session(i, cell) for i, cell in
                     enumerate(model_input[OBS_COLUMN].tolist())]
        scores = (self.model.score_batch(sequences) if sequences
                  else np.empty(0, dtype=np.float64))
        return pd.DataFrame({"score": scores, "n_obs": [len(s) for s in sequences]},
                            index=model_input.index)

    def _session(self, i, cell):
        if isinstance(cell, str):
            cell = json.loads(cell)
        if self.model._observation_kind() == "symbols":
            arr = np.asarray(cell)
            if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
                raise HMMInputError(f"session {i}: obs must be a list of integer symbols, "
                                    f"got {np.shape(cell)} {arr.dtype}", sequence=i)
            return arr.astype(np.intp)
        d = self.model.n_features
        arr = np.asarray([np.ravel(np.asarray(x, dtype=np.float64)) for x in cell]) \
            if len(cell) else np.empty((0, d))
        if arr.ndim != 2 or arr.shape[1] != d:
            raise HMMInputError(f"session {i}: obs must be a list of frames of n_features="
                                f"{d} numbers, got shape {arr.shape}", sequence=i)
        return arr


def _load_pyfunc(data_path):
    """MLflow's pyfunc loader: ``data_path`` is the model file (or its directory)."""
    if os.path.isdir(data_path):
        data_path = os.path.join(data_path, MODEL_FILE)
    return _PyFuncModel(_load_file(data_path))
