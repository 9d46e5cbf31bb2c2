"""The functions Dask runs on partitions: inference, the E-step, and the statistics' sums.

Module-level functions of plain arguments (a model, a partition, its index), so they pickle
by reference; each times its conversion and kernels in Dask's fine performance metrics
(``hmmfast-convert``, ``hmmfast-kernels``: the dashboard and the bench read them).
"""

import bisect
import copy

import numpy as np
import pandas as pd
from distributed.metrics import context_meter

from .. import _fit
from .._errors import HMMInputError, HMMTypeError, ImpossibleSequenceError, ParameterError
from . import _arrow
from ._checkpoint import digest
from ._partitions import Partition, bag_partition, frame_partition
from ._places import plain, repeated_error, reraise, split_error

ERRORS = (HMMInputError, HMMTypeError, ParameterError, ImpossibleSequenceError)


# ---------------------------------------------------------------------- inference tasks


def bounds(divisions, index):
    """(lo, hi, is_last) of partition ``index``'s division range, or None."""
    if divisions is None:
        return None
    return divisions[index], divisions[index + 1], index == len(divisions) - 2


def _number(divisions, partition_info):
    """The partition's number in the data. With known divisions, found from its lower
    division: Dask renumbers the partitions it keeps when a later step selects some
    (``.loc``, ``.partitions[...]``)."""
    if not partition_info:
        return 0
    if divisions is None:
        return partition_info["number"]
    p = bisect.bisect_right(divisions, partition_info["division"]) - 1
    return min(p, len(divisions) - 2)


def _convert(df, spec, divisions, partition_info):
    index = _number(divisions, partition_info)
    with context_meter.meter("hmmfast-convert"):
        return frame_partition(df, index, spec, bounds(divisions, index)), index


def score_frame(df, model, spec, n_threads, divisions, partition_info=None):
    """Scores of a DataFrame partition: a Series indexed by session id."""
    part, index = _convert(df, spec, divisions, partition_info)
    return pd.Series(score_part(model, part, index, n_threads), index=part.ids, name="score")


def score_part(model, part, index, n_threads):
    """(n_sessions,) log-likelihoods of a Partition."""
    if not part.n_sessions:
        return np.empty(0)
    try:
        with context_meter.meter("hmmfast-kernels"):
            return model.score_batch(part.X, n_threads, lengths=part.lengths)
    except ERRORS as exc:
        reraise(exc, index, part)


def decode_frame(df, model, spec, n_threads, options, extras, divisions, partition_info=None):
    """Decoded paths of a DataFrame partition: a DataFrame indexed by session id, the
    paths (and posteriors, occupancy) as Arrow list columns (see _arrow)."""
    part, index = _convert(df, spec, divisions, partition_info)
    decoded = decode_part(model, part, index, n_threads, options, extras)
    with context_meter.meter("hmmfast-convert"):
        return _arrow.decoded_frame(decoded, part.ids, index, model.n_components)


def decode_part(model, part, index, n_threads, options, extras):
    """Decode a Partition: an _arrow.Decoded (paths concatenated; ``extras`` lists
    the optional outputs wanted, "posteriors" and "occupancy")."""
    n = model.n_components
    if not part.n_sessions:
        return _arrow.Decoded.empty(n, extras)
    try:
        with context_meter.meter("hmmfast-kernels"):
            logprob, paths = model.decode_batch(part.X, n_threads, lengths=part.lengths,
                                                **options)
            decoded = _arrow.Decoded.of(logprob, paths)
            if "posteriors" in extras:
                decoded.posteriors = _posteriors(model, part, decoded.kept)
    except ERRORS as exc:
        reraise(exc, index, part)
    if "occupancy" in extras:
        decoded.occupancy = decoded.shares(n)
    return decoded


def _posteriors(model, part, kept):
    """(frames of the kept sessions, n_components) state posteriors (``kept``: the
    sessions decode did not mark impossible)."""
    if kept.all():
        return model.score_samples(part.X, lengths=part.lengths)[1]
    if not kept.any():
        return np.empty((0, model.n_components))
    frames = np.repeat(kept, part.lengths)
    return model.score_samples(part.X[frames], lengths=part.lengths[kept])[1]


def last_id(result):
    """The last session id of a partition's result (its index), None when it is empty."""
    return result.index[-1] if len(result) else None


def check_boundary(result, previous_last, index, session_col):
    """``result`` unchanged, unless the previous partition ends with the session this one
    starts with (a session split at their boundary)."""
    if previous_last is not None and len(result) and bool(previous_last == result.index[0]):
        raise split_error(result.index[0], index - 1, index, session_col)
    return result


def session_ids(result):
    """A partition's session ids (its result's index), for :func:`unique_sessions`."""
    return result.index


def unique_sessions(ids, session_col):
    """True, or the error naming a session id found in two partitions (``ids``: one
    Index per partition, each without repeats)."""
    sizes = [len(i) for i in ids]
    if sum(sizes) == 0:
        return True
    everything = ids[0].append(list(ids[1:])) if len(ids) > 1 else ids[0]
    repeated = everything.duplicated()
    if repeated.any():
        sid = everything[int(np.argmax(repeated))]
        where = np.flatnonzero(everything == sid)[:2]
        partition = np.searchsorted(np.cumsum(sizes), where, side="right")
        raise repeated_error(sid, [int(p) for p in partition], session_col)
    return True


def released(result, checked):
    """``result``, once the check it waits for (``checked``) has passed."""
    return result


def score_bag(model, seqs, index, n_threads):
    """Scores of a Bag partition: a list of floats in the input's order."""
    part = bag_partition(model, seqs, index)
    return score_part(model, part, index, n_threads).tolist()


def decode_bag(model, seqs, index, n_threads, options, extras):
    """(logprob, states[, posteriors][, occupancy]) of every sequence of a Bag partition,
    in the input's order."""
    part = bag_partition(model, seqs, index)
    return decode_part(model, part, index, n_threads, options, extras).items()


# ---------------------------------------------------------------------- fitting tasks


def training_partition(model, raw, index, spec=None, weights=None, limits=None):
    """A partition in the family's training form: validated and converted once, then
    kept on the workers for every EM iteration (see :func:`summary`); ``limits`` as
    :func:`bounds` returns them."""
    with context_meter.meter("hmmfast-convert"):
        if spec is not None:
            part = frame_partition(raw, index, spec, limits)
        else:
            part = bag_partition(model, raw, index, weights)
        if not part.n_sessions:
            return part  # left out of the fit
        try:
            X, missing = _fit.training_X(model, part.X)
        except (HMMInputError, HMMTypeError) as exc:
            reraise(exc, index, part)
    part.X, part.missing = X, missing
    return part


def summary(part, symbols, with_digest=False):
    """What the client checks: sizes, the ids at the edges, weights, symbols/features,
    and the data's digest (for checkpoints); sizes only for an empty partition."""
    ids = part.ids
    out = {"n_sessions": part.n_sessions, "n_frames": int(part.offsets[-1])}
    if not part.n_sessions:
        return out
    out.update({
        "first": None if ids is None else plain(ids[0]),
        "last": None if ids is None else plain(ids[-1]),
        "weight_total": (float(part.n_sessions) if part.weights is None
                         else float(part.weights.sum())),
        "n_features": int(part.X.shape[1]) if part.X.ndim == 2 else 1,
    })
    if with_digest:
        out["digest"] = digest(part.X, part.offsets, part.weights, part.missing)
    if symbols:
        out["max_symbol"] = int(part.X.max())
    return out


def partition_ids(part):
    """A training partition's session ids (for :func:`unique_sessions`)."""
    return part.ids


def head(part, n_sessions):
    """The first ``n_sessions`` sessions of a training partition (for initialisation)."""
    end = int(part.offsets[n_sessions])
    missing = None if part.missing is None else part.missing[:end]
    return Partition(part.X[:end], part.offsets[:n_sessions + 1], None, None, missing)


def partition_estep(model, part, index):
    """One partition's E-step: (additive statistics, weighted log-likelihood)."""
    if not model._uses_fast_estep():
        # hmmlearn's per-sequence hooks (a subclass's, written for single-threaded
        # hmmlearn) may keep state on the model during the E-step: the tasks sharing
        # this worker's copy get their own
        model = copy.copy(model)
    try:
        with context_meter.meter("hmmfast-kernels"):
            stats, value = _fit.estep(model, part.data())
    except (HMMInputError, HMMTypeError, ImpossibleSequenceError) as exc:
        reraise(exc, index, part)
    return additive(model, stats), value - model._log_prior()


def partition_loglik(model, part, index):
    """One partition's weighted log-likelihood (a forward pass, no statistics)."""
    try:
        with context_meter.meter("hmmfast-kernels"):
            value = _fit.objective(model, part.data())
    except (HMMInputError, HMMTypeError, ImpossibleSequenceError) as exc:
        reraise(exc, index, part)
    return value - model._log_prior()


# ---------------------------------------------------------------------- statistics


def rebase_scatter(scatter, post, obs, old, new):
    """sum_t g_tj (x_t - new_j)(x_t - new_j)^T from the same sum around ``old_j``.

    Exact algebra: with s1 = sum_t g_tj (x_t - old_j) = obs_j - post_j old_j and
    d = new_j - old_j, the scatter around new is S_old - s1 d^T - d s1^T + post_j d d^T
    (elementwise S_old - 2 s1 d + post_j d^2 for the per-feature scatter of "diag" and
    "spherical"). ``scatter`` (n, D) or (n, D, D); ``post`` (n,); the rest (n, D).
    """
    s1 = obs - post[:, None] * old
    d = new - old
    if scatter.ndim == 2:
        return scatter - 2.0 * s1 * d + post[:, None] * d * d
    cross = np.einsum("jk,jl->jkl", s1, d)
    return (scatter - cross - cross.transpose(0, 2, 1)
            + post[:, None, None] * np.einsum("jk,jl->jkl", d, d))


def additive(model, stats):
    """The E-step statistics in a form that adds across partitions.

    Every family's statistics are sums over frames, except GaussianHMM's covariance
    statistic on the fast path: the scatter around the means the M-step would make from
    *these* statistics (``stats["scatter_means"]``), which differ per partition. It is
    moved to a common centre, the current means (every partition has them), and moved
    again to the final means on the client (:func:`finish`).
    """
    if "scatter_means" in stats:
        centre = np.asarray(model.means_, dtype=np.float64)
        stats["scatter"] = rebase_scatter(stats["scatter"], stats["post"], stats["obs"],
                                          stats.pop("scatter_means"), centre)
    return stats


def finish(model, stats):
    """Summed statistics ready for ``model._do_mstep`` (see :func:`additive`)."""
    if "scatter" in stats and "scatter_means" not in stats and hasattr(model, "_mstep_means"):
        centre = np.asarray(model.means_, dtype=np.float64)
        means = model._mstep_means(stats)
        stats["scatter"] = rebase_scatter(stats["scatter"], stats["post"], stats["obs"],
                                          centre, means)
        stats["scatter_means"] = means
    return stats


def combine(results):
    """Sum (statistics, log-likelihood) pairs, in their order (the reduction tree's node)."""
    stats, total = results[0]
    stats = dict(stats)
    for other, value in results[1:]:
        if other.keys() != stats.keys():
            raise RuntimeError("internal: partitions returned different statistics "
                               f"({sorted(stats)} and {sorted(other)})")
        for key, arr in other.items():
            try:
                stats[key] = stats[key] + arr
            except TypeError:
                raise TypeError(f"the E-step statistic {key!r} ({type(arr).__name__}) "
                                "cannot be summed across partitions") from None
        total += value
    return stats, total


def add_values(values):
    """Sum of the partitions' log-likelihoods, in their order."""
    total = values[0]
    for v in values[1:]:
        total += v
    return total
