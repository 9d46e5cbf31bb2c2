"""hmmfast: Hidden Markov Models with hmmlearn's API over Cython kernels.

>>> import hmmfast as hmm
>>> model = hmm.CategoricalHMM(n_components=2)
"""

# first: in the command line, a Ctrl-C while the rest is imported exits 130 quietly
from . import _cli_startup  # noqa: F401

__version__ = "0.1.0"

try:
    from . import _trellis, _viterbi  # noqa: F401  (compiled kernels)
except ImportError as exc:  # pragma: no cover - only for an unbuilt source tree
    import os as _os

    raise ImportError(
        f"hmmfast's compiled kernels could not be imported from "
        f"{_os.path.dirname(__file__)} ({exc}). This is probably the source tree without "
        "built extensions: install the package with `pip install .` and run from outside "
        "the repository, or build in place with `python setup.py build_ext --inplace`."
    ) from exc

from ._base import BaseHMM
from ._categorical import CategoricalHMM
from ._errors import (
    ConvergenceWarning,
    HMMInputError,
    HMMTypeError,
    ImpossibleSequenceError,
    ModelFileError,
    NotFittedError,
    ParameterError,
    PruningError,
)
from ._functional import forward, forward_backward, nbest, viterbi

from ._fit import ConvergenceMonitor
from ._gaussian import GaussianHMM
from ._gmm import GMMHMM
from ._io import load, read_header
from ._multinomial import MultinomialHMM
from ._poisson import PoissonHMM
from ._select import SelectionResult, select
from ._stream_intake import StreamDecoder, StreamScorer
from ._versions import hash_data
from . import topology  # public module: transition topologies

__all__ = [
    "GMMHMM",
    "BaseHMM",
    "CategoricalHMM",
    "ConvergenceMonitor",
    "ConvergenceWarning",
    "GaussianHMM",
    "HMMInputError",
    "HMMTypeError",
    "ImpossibleSequenceError",
    "ModelFileError",
    "MultinomialHMM",
    "NotFittedError",
    "ParameterError",
    "PoissonHMM",
    "PruningError",
    "SelectionResult",
    "StreamDecoder",
    "StreamScorer",
    "__version__",
    "forward",
    "forward_backward",
    "hash_data",
    "load",
    "nbest",
    "read_header",
    "select",
    "topology",
    "viterbi",
]


def __getattr__(name):  # PEP 562: hmmfast.monitor on first use; `import hmmfast` stays light
    if name == "monitor":
        import importlib

        return importlib.import_module(".monitor", __name__)
    raise AttributeError(f"module 'hmmfast' has no attribute {name!r}")
