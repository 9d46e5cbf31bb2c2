"""hmmlearn's own test files, pointed at hmmfast (imports rewritten), and their outcome.

``python tests/hmmlearn_suite.py`` copies the family test files of the installed hmmlearn
(its ``hmmlearn/tests``) into a temporary directory, rewrites ``from hmmlearn import hmm``
(and the like) to import hmmfast, runs them with ``HMMLEARN_SEED=0`` and prints the
figure and every failing test; tests/test_hmmlearn_suite.py checks that the failures are
exactly the deliberate differences the README lists (``DELIBERATE``).

The helpers hmmlearn's tests import from their package (``normalized``,
``assert_log_likelihood_increasing``, ``make_covar_matrix``) stay hmmlearn's.
"""

import os
import re
import subprocess
import sys
import tempfile

#: the files run: every emission family's (test_base.py drives hmmlearn's own C module,
#: the variational and utility files test what hmmfast does not have)
FILES = ("test_categorical_hmm.py", "test_gaussian_hmm.py", "test_gmm_hmm.py",
         "test_gmm_hmm_multisequence.py", "test_gmm_hmm_new.py", "test_multinomial_hmm.py",
         "test_poisson_hmm.py")

_REWRITES = ((r"^from hmmlearn import hmm$", "import hmmfast as hmm"),
             (r"^from \.\. import hmm$", "import hmmfast as hmm"),
             (r"^from \.\.hmm import (\w+)$", r"from hmmfast import \1"),
             (r"^from hmmlearn\.base import ConvergenceMonitor$",
              "from hmmfast import ConvergenceMonitor"))

#: hmmlearn's tests of behaviour hmmfast changes on purpose (README, "hmmlearn's own test
#: suite"), by test function: {name: reason}
DELIBERATE = {
    "test_covar_is_writeable": "parameters are stored read-only (they guard the cache); "
                               "_covars_ is hmmlearn's stored form, exposed read-only",
    "test_fit_sparse_data": "`means_ *= 1000` edits a read-only parameter in place: the "
                            "error says to assign `means_ = means_ * 1000`",
    "test_criterion": "`means_ *= 10` (GMMHMM): the same read-only rule",
    "test__check_and_set_categorical_n_features": "n_features follows emissionprob_ once "
                                                  "it is assigned, so symbol 3 is out of "
                                                  "range for a 3-symbol model",
    "test_underflow_from_scaling[scaling]": "the scaling forward pass shifts each frame's "
                                            "log-emissions by their maximum and does not "
                                            "underflow on an outlier (hmmlearn raises)",
}


def rewrite(source, dest):
    """Copy hmmlearn's test package from ``source`` to ``dest``/hltests, imports
    rewritten to hmmfast; returns the package directory."""
    package = os.path.join(dest, "hltests")
    os.makedirs(package, exist_ok=True)
    for name in ("__init__.py", "conftest.py", *FILES):
        with open(os.path.join(source, name), encoding="utf-8") as f:
            text = f.read()
        for pattern, replacement in _REWRITES:
            text = re.sub(pattern, replacement, text, flags=re.M)
        with open(os.path.join(package, name), "w", encoding="utf-8") as f:
            f.write(text)
    return package


def run(workdir, pythonpath=None):
    """Run the rewritten suite in ``workdir``: (counts {outcome: n}, failed test ids)."""
    import hmmlearn

    source = os.path.join(os.path.dirname(hmmlearn.__file__), "tests")
    package = rewrite(source, workdir)
    env = dict(os.environ, HMMLEARN_SEED="0")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", package, "-q", "-p", "no:cacheprovider", "-rf",
         "--tb=no"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=1800)
    failed = sorted(set(re.findall(r"^FAILED (\S+)", proc.stdout, flags=re.M)))
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", summary)}
    if not counts:
        raise RuntimeError(f"hmmlearn's suite did not run:\n{proc.stdout}\n{proc.stderr}")
    return counts, failed


def reason(test_id):
    """The deliberate difference a failing test shows, or None."""
    function = test_id.rsplit("::", 1)[-1]
    base = function.split("[", 1)[0]
    return DELIBERATE.get(function) or DELIBERATE.get(base)


def main():
    import hmmlearn

    with tempfile.TemporaryDirectory() as workdir:
        counts, failed = run(workdir, os.environ.get("PYTHONPATH"))
    ran = counts.get("passed", 0) + counts.get("failed", 0)
    print(f"hmmlearn {hmmlearn.__version__}'s family tests against hmmfast: "
          f"{counts.get('passed', 0)} of {ran} pass ({counts})")
    for test_id in failed:
        print(f"  {test_id}: {reason(test_id) or 'NOT a listed difference'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
