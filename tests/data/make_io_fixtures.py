"""Write the model-file fixtures of tests/test_io.py (format version 1).

Run from the repository root with the hmmfast that defines the format version:

    python tests/data/make_io_fixtures.py

The files are committed and must keep loading: a later format change needs a migration
(or a new format_version that still reads these). Files are deterministic (sorted JSON,
fixed zip dates): re-running this script with hmmfast 0.1.0 rewrites identical bytes.
tests/test_io.py holds the same values in its own source and checks the loaded models
against NumPy/SciPy computations, not against this script.
"""

from pathlib import Path

import numpy as np
from scipy import sparse

import hmmfast

HERE = Path(__file__).resolve().parent

# CategoricalHMM from labelled data by counting (fit_supervised): 2 sequences.
CAT_X = [0, 1, 1, 2, 3, 3, 0, 2, 1, 1, 0, 3]
CAT_STATES = [0, 0, 1, 1, 2, 2, 0, 1, 1, 1, 0, 2]
CAT_LENGTHS = [8, 4]
CAT_METADATA = {"purpose": "format v1 fixture",
                "anomaly_detector": {"thresholds_": {"suspicious": -1.5, "anomalous": -3.0}}}

# GaussianHMM, full covariances, sparse (CSR) transmat_, an array prior, tol=-inf.
GAUSS_STARTPROB = [1.0, 0.0, 0.0]
GAUSS_TRANSMAT = [[0.75, 0.25, 0.0], [0.0, 0.5, 0.5], [0.125, 0.0, 0.875]]
GAUSS_MEANS = [[0.0, 0.0], [3.0, 1.0], [-2.0, 4.0]]
GAUSS_COVARS = [[[1.0, 0.25], [0.25, 0.5]], [[2.0, 0.0], [0.0, 2.0]],
                [[0.5, -0.125], [-0.125, 1.5]]]
GAUSS_MEANS_PRIOR = [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]


def categorical():
    model = hmmfast.CategoricalHMM(n_components=3, n_features=4, random_state=0)
    model.fit_supervised(np.array(CAT_X)[:, None], CAT_STATES, CAT_LENGTHS)
    return model


def gaussian():
    model = hmmfast.GaussianHMM(n_components=3, covariance_type="full", random_state=7,
                                tol=float("-inf"), means_prior=np.array(GAUSS_MEANS_PRIOR))
    model.startprob_ = GAUSS_STARTPROB
    model.transmat_ = sparse.csr_matrix(np.array(GAUSS_TRANSMAT))
    model.means_ = GAUSS_MEANS
    model.covars_ = GAUSS_COVARS
    return model


if __name__ == "__main__":
    categorical().save(HERE / "categorical_v1.npz", metadata=CAT_METADATA)
    gaussian().save(HERE / "gaussian_full_csr_v1.npz", metadata={"purpose": "format v1 fixture"})
    print("wrote", HERE / "categorical_v1.npz", HERE / "gaussian_full_csr_v1.npz")
