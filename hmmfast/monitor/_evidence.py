"""Levels from several kinds of evidence, calibrated together on normal sessions.

A session's level reads its score and its path statistics. Each kind of evidence has a
cut-off per tier; a session takes a tier when any evidence is beyond that tier's cut-off
(the record's ``reason`` names which). The cut-offs are chosen on the training (normal)
sessions so that the share of them at each tier is the tier's percentile:

1. every kind of evidence gets the loosest cut-off that leaves at most j training
   sessions strictly beyond it, for one common j (ties: a value shared by many sessions
   is either beyond or not, so a statistic whose tail is one big tie simply does not
   fire); j is the largest for which the union stays within the target count
   k = round(percentile / 100 * n);
2. the *fill* evidence's cut-off is then raised until the union holds exactly k
   sessions, taking the sessions not flagged yet in order of (value, log-likelihood per
   step): the second key breaks ties (``normalize="min_step"`` ties whenever many
   sessions share their least likely step), so ties never make a tier unreachable. The
   fill is "deviation" when it is among the evidence (length-aware, so the share at a
   tier is about the same for short and long sessions), else the score.

With ``normalize="per_step"`` the score is the deviation without its length correction:
the detector pins it (no share in step 1), so it fires only below every training
session, and the deviation carries that evidence (a flat per-step cut-off flagged 2.2 %
of held-out normal sessions of 20-100 steps at the 1 % tier, measured).

The suspicious tier is calibrated after the anomalous one with the anomalous sessions
counted in, so the share at "suspicious or worse" is the suspicious percentile.
"""

import numpy as np

#: Evidence names, in the order a reason lists them; "low": small values are odd.
EVIDENCE = ("score", "deviation", "end_step", "longest_run", "switch_z", "length", "unseen")
LOW = frozenset({"score", "deviation", "end_step"})
_TIERS = ("anomalous", "suspicious")


def beyond(name, values, cut):
    """Where ``values`` are strictly beyond ``cut`` on the odd side of ``name``."""
    with np.errstate(invalid="ignore"):
        return values < cut if name in LOW else values > cut


def fill_name(names):
    """The evidence whose cut-off fills the tier (see the module docstring)."""
    return "deviation" if "deviation" in names else "score"


def tied_beyond(values, tie, cut, cut_tie):
    """values < cut, or values == cut and tie < cut_tie (ties broken by the second key)."""
    return (values < cut) | ((values == cut) & (tie < cut_tie))


def _calibrate_tier(stats, tie, k, base, pinned):
    n = len(tie)
    fill = fill_name(stats)
    ordered = {name: (np.sort(v) if name in LOW else np.sort(v)[::-1])
               for name, v in stats.items()}

    def flags_at(j):
        flags = base.copy()
        cuts = {}
        for name, v in stats.items():
            cuts[name] = float(ordered[name][0 if name in pinned else min(j, n - 1)])
            flags |= beyond(name, v, cuts[name])
        return flags, cuts

    lo, hi = 0, max(k, 0)
    while lo < hi:  # the largest j in [0, k] whose union holds <= k (j = 0: |base| <= k)
        mid = (lo + hi + 1) // 2
        if np.count_nonzero(flags_at(mid)[0]) <= k:
            lo = mid
        else:
            hi = mid - 1
    flags, cuts = flags_at(lo)
    values = stats[fill]
    candidates = np.flatnonzero(~flags)
    m = k - (n - candidates.size)
    if m >= candidates.size:
        cut, cut_tie = np.inf, np.inf
    else:
        m = max(m, 0)
        order = candidates[np.lexsort((tie[candidates], values[candidates]))]
        chosen = order[m]
        cut, cut_tie = float(values[chosen]), float(tie[chosen])
        if m == 0 or values[order[m - 1]] < cut:
            cut_tie = -np.inf  # no tie to break at the cut
    cuts[fill] = cut
    cuts["tie"] = cut_tie
    flags |= tied_beyond(values, tie, cut, cut_tie)
    return cuts, flags


def calibrate(stats, tie, percentiles, pinned=()):
    """Cut-offs of every tier (see the module docstring).

    Parameters
    ----------
    stats : dict
        {evidence name: ndarray of shape (n,)}, every kind of evidence ("score" too).
    tie : ndarray of shape (n,)
        The tie-breaking second key (log-likelihood per step).
    percentiles : dict
        {"suspicious": float, "anomalous": float}, in percent.
    pinned : collection of str
        Evidence that takes no share: its cut-off stays at the most extreme training
        value (it fires only beyond everything training showed).

    Returns
    -------
    dict
        {tier: {evidence name: cut-off, ..., "tie": the fill's second-key cut-off}}.
    """
    n = len(tie)
    out = {}
    base = np.zeros(n, dtype=bool)
    for tier in _TIERS:
        k = round(percentiles[tier] / 100.0 * n)
        out[tier], flags = _calibrate_tier(stats, tie, k, base, frozenset(pinned))
        base = flags
    return out


def fired(cuts, stats, tie):
    """{evidence name: bool ndarray (n,)} of the evidence beyond a tier's cut-offs."""
    fill = fill_name(stats)
    out = {}
    for name, v in stats.items():
        if name == fill:
            out[name] = tied_beyond(v, tie, cuts[name], cuts.get("tie", -np.inf))
        elif name in cuts:
            out[name] = beyond(name, v, cuts[name])
    return out


def levels(cutoffs, stats, tie):
    """(level codes (n,) int8, reasons (n,) object array of str): 2 where the anomalous
    evidence fires, 1 where only the suspicious one does; the reason lists the evidence that fired at
    the session's tier, comma-separated, in EVIDENCE order ("" for normal)."""
    n = len(tie)
    codes = np.zeros(n, dtype=np.int8)
    reasons = np.full(n, "", dtype=object)
    for code, tier in ((2, "anomalous"), (1, "suspicious")):
        hits = fired(cutoffs[tier], stats, tie)
        names = [name for name in EVIDENCE if name in hits]
        any_hit = np.zeros(n, dtype=bool)
        for name in names:
            any_hit |= hits[name]
        new = any_hit & (codes == 0)
        codes[new] = code
        for s in np.flatnonzero(new):
            reasons[s] = ",".join(name for name in names if hits[name][s])
    return codes, reasons


def cutoffs_to_dict(cutoffs):
    """JSON-safe form (infinities as strings "inf"/"-inf")."""
    return {tier: {name: (v if np.isfinite(v) else ("inf" if v > 0 else "-inf"))
                   for name, v in cuts.items()} for tier, cuts in cutoffs.items()}


def cutoffs_from_dict(d):
    """The cut-offs back from :func:`cutoffs_to_dict`."""
    return {tier: {name: float(v) for name, v in d[tier].items()} for tier in _TIERS}


def length_model(per_step, n_scored):
    """(mean, a, b) of the training sessions' log-likelihood per step: its variance for
    a session of T scored steps is modelled as a + b / T (least squares of the squared
    deviations on 1 / T, both terms >= 0; a mean of T steps varies ~1/T)."""
    mu = float(np.mean(per_step))
    sq = (per_step - mu) ** 2
    design = np.column_stack([np.ones_like(sq), 1.0 / n_scored])
    coef = np.linalg.lstsq(design, sq, rcond=None)[0]
    if coef[0] < 0 or coef[1] < 0:  # refit with the negative term dropped
        k = 1 if coef[0] < 0 else 0
        only = float(np.dot(design[:, k], sq) / np.dot(design[:, k], design[:, k]))
        coef = np.zeros(2)
        coef[k] = max(only, 0.0)
    if coef.sum() <= 0:
        coef[0] = max(float(np.var(per_step)), 1e-12)
    return mu, float(coef[0]), float(coef[1])


def deviation(per_step, n_scored, model):
    """(log-likelihood per step - training mean) / its standard deviation for the
    session's length, under ``length_model``'s (mean, a, b)."""
    mu, a, b = model
    return (per_step - mu) / np.sqrt(a + b / n_scored)


def switch_z(switches, lengths, rate):
    """Switches beyond the training switch ``rate``, in standard deviations of a binomial
    count over the session's T - 1 transitions (at least 1/2, so a rate of 0 or 1 in
    training still gives a finite scale); 0 for one-step sessions."""
    n = np.maximum(lengths - 1, 0)
    z = (switches - n * rate) / np.sqrt(np.maximum(n * rate * (1.0 - rate), 0.25))
    return np.where(n > 0, z, 0.0)
