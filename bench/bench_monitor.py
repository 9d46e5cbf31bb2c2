"""hmmfast.monitor: anomaly-detector throughput, the streaming flag, drift-monitor figures.

Usage: python bench/bench_monitor.py [--repeats 5] [--quick] [--out bench/results/monitor.md]

1. AnomalyDetector.predict (the defaults: the end step from learned exit probabilities,
   levels from every kind of evidence) on 100,000 sessions of 15-25 steps (N=5, M=10),
   on 1 and 2 threads: median time, sessions per second, and where the time goes (the
   kernel pass: gather, per-step forward, Viterbi; then evidence, levels and reasons).
   Peer: hmmlearn hand-rolled (score + decode per session), on 2,000 sessions.
2. The streaming flag: SessionStream.push per observation (median over sessions), against
   the bare StreamScorer.push it wraps.
3. LikelihoodDriftMonitor (window 200 sessions, quantile 0.01) on per-step scores: false
   alarms over a long in-distribution stream (one update per session; per-update alarm
   rate and alarm episodes per 10,000 sessions) and over disjoint windows, and the
   detection delay (sessions after the change point until the alarm) when production
   sends a share of page views to a rare page type.
4. Early flags by steps read, on a long-session simulator (a sticky 4-state chain,
   sessions of 20-500 steps, 3,000 training sessions): the share of held-out normal
   sessions flagged early for sessions of 20-100 and 100-500 steps, for every
   ``normalize``, and how many of those flags full scoring overturns.
5. OccupancyMonitor with its defaults: sessions after a collapse starts (after 20,000
   healthy sessions) until it is reported, and false verdicts on healthy traffic.
6. EmissionDriftCheck with its defaults over many seeds (400 sessions of 10-40 steps per
   check): checks with any state flagged on traffic drawn from the model, and drifts
   flagged (a categorical row sending 30 % of its mass to a rare page, a Gaussian state
   moved onto its neighbour, a threefold variance).
"""

import argparse
import time

import numpy as np
from _benchlib import hmmlearn_or_none, median_seconds, write_table

import hmmfast
from hmmfast.monitor import AnomalyDetector, LikelihoodDriftMonitor, OccupancyMonitor

N, M = 5, 10


def make_model(seed=0):
    rng = np.random.default_rng(seed)
    model = hmmfast.CategoricalHMM(N)
    model.startprob_ = rng.dirichlet(np.ones(N))
    model.transmat_ = rng.dirichlet(np.ones(N), size=N) * 0.5 + np.eye(N) * 0.5
    model.emissionprob_ = rng.dirichlet(np.full(M, 0.7), size=N)
    return model


def sample_sessions(model, count, rng, lo=15, hi=26):
    """Independent sessions drawn from the model, lo to hi - 1 steps."""
    return [model.sample(int(n), random_state=rng)[0][:, 0]
            for n in rng.integers(lo, hi, size=count)]


# ---------------------------------------------------------------- 1. throughput


def stages(det, sessions, threads):
    """Median seconds of each stage of predict, timed alone: the kernel pass (gather,
    per-step forward, Viterbi, with the end frame) and the evidence, levels and reasons."""
    det.n_threads = threads
    batch = det._run(sessions, None)
    return {
        "kernels (gather, forward, Viterbi)": lambda: det._run(sessions, None),
        "evidence, levels, reasons": lambda: det._record(batch),
    }


def hmmlearn_rate(hmm, model, sessions):
    """Sessions per second of the hand-rolled hmmlearn equivalent (score + decode per
    session, reasons by NumPy), after checking the scores agree."""
    peer = hmm.CategoricalHMM(N, n_features=M, implementation="scaling")
    peer.startprob_, peer.transmat_, peer.emissionprob_ = (
        model.startprob_, model.transmat_, model.emissionprob_)
    some = sessions[:200]
    np.testing.assert_allclose([peer.score(x[:, None]) for x in some],
                               model.score_batch(some), rtol=1e-9)

    def run():
        for x in sessions:
            x2 = x[:, None]
            ll = peer.score(x2)
            _, path = peer.decode(x2)
            np.count_nonzero(np.diff(path))
            _ = ll / len(x)

    return len(sessions) / median_seconds(run, 1, warmup=0)


def throughput(repeats, n_sessions):
    model = make_model()
    rng = np.random.default_rng(1)
    det = AnomalyDetector(model).fit(sample_sessions(model, 20_000, rng))
    sessions = sample_sessions(model, n_sessions, rng)
    rows = []
    for threads in (1, 2):
        det.n_threads = threads
        t = median_seconds(lambda: det.predict(sessions), repeats)
        split = {name: median_seconds(fn, repeats) for name, fn in
                 stages(det, sessions, threads).items()}
        rows.append((threads, t, split))
    hmm = hmmlearn_or_none()
    peer = hmmlearn_rate(hmm, model, sessions[:2000]) if hmm is not None else None
    return rows, peer, n_sessions


# ---------------------------------------------------------------- 2. streaming flag


def stream_costs(repeats):
    model = make_model()
    rng = np.random.default_rng(2)
    det = AnomalyDetector(model, normalize="per_step").fit(sample_sessions(model, 5000, rng))
    sessions = [x.tolist() for x in sample_sessions(model, 2000, rng)]
    n_obs = sum(len(x) for x in sessions)
    stream = det.stream()
    scorer = model.stream_scorer()

    def flag():
        for x in sessions:
            stream.reset()
            push = stream.push
            for o in x:
                push(o)

    def bare():
        for x in sessions:
            scorer.reset()
            push = scorer.push
            for o in x:
                push(o)

    return (median_seconds(flag, repeats) / n_obs, median_seconds(bare, repeats) / n_obs)


# ---------------------------------------------------------------- 3. drift


def shifted(model, page, weight):
    out = hmmfast.CategoricalHMM(N)
    em = model.emissionprob_ * (1 - weight)
    em[:, page] += weight
    out.startprob_, out.transmat_, out.emissionprob_ = model.startprob_, model.transmat_, em
    return out


def drift_figures(quick):
    model = make_model()
    rng = np.random.default_rng(3)
    det = AnomalyDetector(model).fit(sample_sessions(model, 5000, rng))
    baseline = det.score(sample_sessions(model, 10_000, rng))
    window = 200
    n_quiet = 20_000 if quick else 100_000
    quiet = det.score(sample_sessions(model, n_quiet, rng))
    # a baseline's own mean is off by sd / sqrt(n): average over several baselines
    baselines = [baseline] + [det.score(sample_sessions(model, 10_000, np.random.default_rng(
        50 + k))) for k in range(2 if quick else 4)]
    false = {}
    for q in (0.01, 0.001):
        shares, episodes, disjoint = [], [], []
        for base in baselines:
            mon = LikelihoodDriftMonitor(base, window=window, quantile=q)
            alarms = np.array([mon.update(s) for s in quiet])
            shares.append(alarms[window - 1:].mean())
            episodes.append((np.sum(alarms[1:] & ~alarms[:-1]) + alarms[0]) * 10_000 / n_quiet)
            blocks = LikelihoodDriftMonitor(base, window=window, quantile=q)
            disjoint.append(np.mean([blocks.update(quiet[i:i + window])
                                     for i in range(0, n_quiet - window + 1, window)]))
        false[q] = (np.mean(shares), np.mean(episodes), np.mean(disjoint), len(baselines))
    rare = int(np.argmin(model.emissionprob_.max(axis=0)))
    delays = {}
    for weight in (0.05, 0.1, 0.2):
        found = []
        for seed in range(5 if quick else 20):
            r = np.random.default_rng(100 + seed)
            before = det.score(sample_sessions(model, 1000, r))
            after = det.score(sample_sessions(shifted(model, rare, weight), 2000, r))
            mon = LikelihoodDriftMonitor(baseline, window=window)
            delay = None
            for i, s in enumerate(np.concatenate([before, after])):
                if mon.update(s) and i >= len(before):
                    delay = i - len(before) + 1
                    break
            found.append(delay)
        delays[weight] = found
    drop = {w: float(np.mean(det.score(sample_sessions(shifted(model, rare, w), 2000, rng)))
                     - baseline.mean()) / baseline.std() for w in delays}
    return window, n_quiet, false, delays, drop


# ---------------------------------------------------------------- 4. early flags


def sticky_model(seed=0, n=4, m=8, stay=0.9):
    rng = np.random.default_rng(seed)
    model = hmmfast.CategoricalHMM(n)
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n), size=n) * (1 - stay) + np.eye(n) * stay
    model.emissionprob_ = rng.dirichlet(np.full(m, 0.8), size=n)
    return model


def early_flags(quick):
    model = sticky_model()
    rng = np.random.default_rng(1)
    train = sample_sessions(model, 3000, rng, 20, 501)
    n_held = 1000 if quick else 3000
    held = {"20-100": sample_sessions(model, n_held, rng, 20, 101),
            "100-500": sample_sessions(model, n_held, rng, 100, 501)}
    rows = []
    for normalize in ("per_step", "none", "min_step"):
        det = AnomalyDetector(model, normalize=normalize).fit(train)
        stream = det.stream()
        for bucket, sessions in held.items():
            flagged = []
            for x in sessions:
                stream.reset()
                for o in x.tolist():
                    if stream.push(o) == "anomalous":
                        break
                flagged.append(stream.flagged)
            flagged = np.array(flagged)
            full = det.predict(sessions).level == "anomalous"
            rows.append((normalize, bucket, flagged.mean(), int(flagged.sum()),
                         int(np.sum(flagged & ~full)), full.mean()))
    return n_held, rows


# ---------------------------------------------------------------- 5. occupancy


def occupancy_figures(quick):
    start = [0.4, 0.3, 0.3]
    trans = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]
    model = hmmfast.CategoricalHMM(3)
    model.startprob_, model.transmat_ = start, trans
    model.emissionprob_ = np.full((3, 4), 0.25)
    delays, false_dead, false_collapse = [], 0, 0
    n_checks = 0
    for seed in range(3 if quick else 10):
        rng = np.random.default_rng(seed)

        def paths(count):
            return [model.sample(int(rng.integers(8, 16)), random_state=rng)[1]
                    for _ in range(count)]

        mon = OccupancyMonitor(model).fit(paths(2000))
        for _ in range(20):
            mon.update(paths(1000))
            n_checks += 1
            false_dead += mon.dead_states.size > 0
            false_collapse += mon.collapsed
        for s in range(2000):
            mon.update([np.zeros(int(rng.integers(8, 16)), dtype=np.intp)])
            if mon.collapsed:
                delays.append(s + 1)
                break
    return delays, false_dead, false_collapse, n_checks


# ---------------------------------------------------------------- 6. emission drift


def drift_models():
    """The models of tests/test_emission_drift.py: a 3-state categorical over 6 pages and
    a 3-state Gaussian (means 0, 4, 8)."""
    def categorical(seed):
        rng = np.random.default_rng(seed)
        model = hmmfast.CategoricalHMM(3)
        model.startprob_ = rng.dirichlet(np.ones(3))
        model.transmat_ = rng.dirichlet(np.ones(3), size=3) * 0.3 + np.eye(3) * 0.7
        model.emissionprob_ = rng.dirichlet(np.full(6, 2.0), size=3)
        return model

    def gaussian(means=(0.0, 4.0, 8.0), variances=(1.0, 1.0, 1.0)):
        model = hmmfast.GaussianHMM(3, covariance_type="diag")
        model.startprob_ = [1 / 3] * 3
        model.transmat_ = np.full((3, 3), 0.05) + np.eye(3) * 0.85
        model.means_ = np.array(means)[:, None]
        model.covars_ = np.array(variances)[:, None]
        return model

    return categorical, gaussian


def emission_drift_figures(quick):
    from hmmfast.monitor import EmissionDriftCheck

    categorical, gaussian = drift_models()

    def draw(model, rng, symbols=False):
        out = [model.sample(int(rng.integers(10, 40)), random_state=rng)[0]
               for _ in range(400)]
        return [x[:, 0] for x in out] if symbols else out

    n_seeds = 10 if quick else 40
    counts = dict.fromkeys(("categorical, from the model", "Gaussian, from the model",
                            "categorical row, 30 % to a rare page",
                            "Gaussian state onto its neighbour",
                            "Gaussian variance x3"), 0)
    g = gaussian()
    for seed in range(n_seeds):
        rng = np.random.default_rng(1000 + seed)
        m = categorical(seed)
        drifted = categorical(seed)
        em = m.emissionprob_.copy()
        rare = int(np.argmin(em.max(axis=0)))
        em[1] = em[1] * 0.7 + np.eye(6)[rare] * 0.3
        drifted.emissionprob_ = em
        checks = (
            (m, m, True, None), (g, g, False, None), (m, drifted, True, 1),
            (g, gaussian(means=(0.0, 7.5, 8.0)), False, 1),
            (g, gaussian(variances=(3.0, 1.0, 1.0)), False, 0),
        )
        for name, (model, source, symbols, state) in zip(counts, checks, strict=True):
            flagged = EmissionDriftCheck(model).update(draw(source, rng, symbols)).flagged_states
            counts[name] += (flagged.size > 0) if state is None else (state in flagged)
    return n_seeds, counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smaller drift streams")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows, peer, n = throughput(args.repeats, 100_000)
    push, bare = stream_costs(args.repeats)
    window, n_quiet, false, delays, drop = drift_figures(args.quick)
    n_held, flags = early_flags(args.quick)
    collapse, false_dead, false_collapse, n_checks = occupancy_figures(args.quick)
    n_seeds, drift_checks = emission_drift_figures(args.quick)
    t1 = rows[0][1]
    lines = [
        f"AnomalyDetector.predict with the defaults (exit probabilities, every kind of "
        f"evidence), {n:,} sessions of 15-25 steps (N=5, M=10) (median ms; stages timed "
        "alone)",
        "",
        "| threads | predict ms | sessions/s | speed-up | kernels (gather, forward, Viterbi) "
        "| evidence, levels, reasons |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for threads, t, split in rows:
        cells = " | ".join(f"{1e3 * v:.1f}" for v in split.values())
        lines.append(f"| {threads} | {1e3 * t:.1f} | {n / t:,.0f} | {t1 / t:.2f}x | {cells} |")
    if peer is not None:
        lines += ["", f"hmmlearn hand-rolled (score + decode per session): {peer:,.0f} "
                  f"sessions/s; hmmfast on 2 threads: {n / rows[1][1] / peer:,.0f}x"]
    lines += [
        "",
        "Streaming flag (SessionStream.push, one observation; per-step score)",
        "",
        "| call | µs per observation |",
        "|---|---:|",
        f"| SessionStream.push | {1e6 * push:.2f} |",
        f"| StreamScorer.push (inside it) | {1e6 * bare:.2f} |",
        "",
        f"LikelihoodDriftMonitor, window {window} sessions, baselines of 10,000 sessions' "
        f"per-step scores; false alarms over {n_quiet:,} in-distribution sessions (one "
        f"update per session), mean over {false[0.01][3]} baselines",
        "",
        "| quantile | share of updates in alarm | alarm episodes per 10,000 sessions | "
        "share of disjoint windows alarmed |",
        "|---:|---:|---:|---:|",
    ]
    for q, (share, episodes, disjoint, _) in false.items():
        lines.append(f"| {q} | {share:.2%} | {episodes:.1f} | {disjoint:.2%} |")
    lines += [
        "",
        "Detection delay (quantile 0.01): sessions after the change point until the alarm, "
        "when production sends a share of page views to a rare page",
        "",
        "| share moved | mean score drop (baseline sd) | delay median | delay max | missed |",
        "|---:|---:|---:|---:|---:|",
    ]
    for weight, found in delays.items():
        hit = [d for d in found if d is not None]
        med = f"{np.median(hit):.0f}" if hit else "-"
        mx = f"{max(hit)}" if hit else "-"
        lines.append(f"| {weight:.0%} | {drop[weight]:.2f} | {med} | {mx} | "
                     f"{len(found) - len(hit)} of {len(found)} |")
    lines += [
        "",
        f"Early flags by steps read (min_steps=10, anomalous tier 1 %), {n_held:,} held-out "
        "normal sessions per row, long-session simulator (4 sticky states, 3,000 training "
        "sessions of 20-500 steps)",
        "",
        "| score | session steps | flagged early | overturned by full scoring | anomalous "
        "by full scoring |",
        "|---|---|---:|---:|---:|",
    ]
    for normalize, bucket, share, n_flag, over, full in flags:
        lines.append(f"| {normalize} | {bucket} | {share:.2%} | {over} of {n_flag} | "
                     f"{full:.2%} |")
    lines += [
        "",
        f"OccupancyMonitor (defaults: window 1,000, collapse_fraction 0.8), 3 states, "
        f"training share 40/30/30 %: a collapse into state 0 after 20,000 healthy "
        f"sessions, {len(collapse)} runs",
        "",
        "| sessions until reported: median | max | false dead verdicts | false collapse "
        "verdicts |",
        "|---:|---:|---:|---:|",
        f"| {np.median(collapse):.0f} | {max(collapse)} | {false_dead} of {n_checks} windows | "
        f"{false_collapse} of {n_checks} windows |",
    ]
    lines += [
        "",
        f"EmissionDriftCheck (defaults: z 2, alpha 1e-3, divergence 0.02, share and "
        f"variance ratios 2), 400 sessions of 10-40 steps per check, {n_seeds} seeds",
        "",
        "| traffic | checks flagging (the drifted state) |",
        "|---|---:|",
    ]
    for name, n_flag in drift_checks.items():
        lines.append(f"| {name} | {n_flag} of {n_seeds} |")
    write_table(lines, args.out)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"\n({time.perf_counter() - t0:.0f} s)")
