"""The clickstream case: flag bots, scrapers and broken sessions with an HMM of normal users.

The simulator
-------------
A shop's sessions are sequences of page types (M = 10):

    0 home, 1 category, 2 search, 3 product, 4 reviews, 5 compare, 6 cart, 7 checkout,
    8 account, 9 help

Normal users move through N = 5 hidden intent phases — browse, search, research (product
pages), cart, checkout — mostly forwards, each phase emitting its own mix of pages
(``PHASE_PAGES``), and leave while browsing (a bounce), from the cart (abandoned) or
after checkout, never in the middle of a search or of reading product pages
(``PHASE_MOVES`` holds the moves and the exits). Sessions last ~12 pages.

Three kinds of anomalous session:

* **bot** (oscillates): loops over a fixed cycle of 2-3 pages taken from different phases
  (e.g. home -> product -> cart -> home ...), with 10% random pages. Its pages are common
  ones, so a model of page frequencies finds nothing odd; the order (phases jumping back
  and forth) is what gives it away.
* **scraper** (stuck): lands on a category page, then harvests reviews and product pages
  for 30-60 steps (80% reviews).
* **truncated** (stops early): a normal session cut after its third page or later while
  the user is searching or reading product pages (a broken client, a page that never
  loaded). Only where it ends is odd: the detector's default end of session (an end
  symbol, 10, that ``AnomalyDetector.fit`` appends to every session when it trains the
  model, which then has 11 symbols) is what sees it.

The report
----------
Baum-Welch on normal sessions only (the model starts unfitted; ``AnomalyDetector(model)``
with the library's defaults trains it), tiers calibrated so that 5 % (suspicious) and
1 % (anomalous) of the training sessions reach them, every kind of evidence together
(score, deviation for the length, end step, path); then, on held-out normal sessions and
each anomaly kind: the false-positive rate and recall at both tiers, the same for an
order-blind bag-of-pages baseline (a unigram page model, per-page log-likelihood,
thresholds at the same percentiles) and the baseline's recall at the HMM's measured
false-positive rate, the reasons per kind, and the early-termination saving of the
streaming flag.
"""

import sys

import numpy as np

from ._categorical import CategoricalHMM

PAGES = ("home", "category", "search", "product", "reviews", "compare", "cart", "checkout",
         "account", "help")
PHASES = ("browse", "search", "research", "cart", "checkout")
END = len(PAGES)  # the end-of-session symbol the detector appends

#: P(page | phase), rows sum to 1.
PHASE_PAGES = np.array([
    # home  cat   srch  prod  rev   comp  cart  chk   acct  help
    [0.45, 0.45, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.05, 0.05],  # browse
    [0.00, 0.10, 0.80, 0.10, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00],  # search
    [0.00, 0.00, 0.00, 0.55, 0.25, 0.20, 0.00, 0.00, 0.00, 0.00],  # research
    [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.80, 0.00, 0.10, 0.10],  # cart
    [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.75, 0.25, 0.00],  # checkout
])
#: P(next phase | phase) in the first 5 columns, P(leave | phase) in the last.
PHASE_MOVES = np.array([
    # brw   srch  res   cart  chk   leave
    [0.59, 0.18, 0.18, 0.00, 0.00, 0.05],  # browse
    [0.05, 0.55, 0.40, 0.00, 0.00, 0.00],  # search
    [0.03, 0.07, 0.67, 0.23, 0.00, 0.00],  # research
    [0.00, 0.00, 0.15, 0.45, 0.37, 0.03],  # cart
    [0.00, 0.00, 0.00, 0.00, 0.55, 0.45],  # checkout
])
START = np.array([0.7, 0.3, 0.0, 0.0, 0.0])

BOT_CYCLES = ((0, 3, 6), (2, 6), (1, 7), (0, 5, 7), (2, 3, 8))
KINDS = ("bot", "scraper", "truncated")


def normal_session(rng, max_len=200, phases=False):
    """One normal user's pages: ndarray of int, length >= 1 (and the phases, with
    ``phases``)."""
    phase = rng.choice(5, p=START)
    pages, seen = [], []
    while len(pages) < max_len:
        pages.append(rng.choice(10, p=PHASE_PAGES[phase]))
        seen.append(phase)
        nxt = rng.choice(6, p=PHASE_MOVES[phase])
        if nxt == 5:
            break
        phase = nxt
    pages = np.array(pages, dtype=np.intp)
    return (pages, np.array(seen)) if phases else pages


def bot_session(rng):
    cycle = BOT_CYCLES[rng.integers(len(BOT_CYCLES))]
    n = int(rng.integers(12, 31))
    pages = np.array([cycle[t % len(cycle)] for t in range(n)], dtype=np.intp)
    noise = rng.random(n) < 0.10
    pages[noise] = rng.integers(0, 10, size=int(noise.sum()))
    return pages


def scraper_session(rng):
    n = int(rng.integers(30, 61))
    pages = np.where(rng.random(n) < 0.8, 4, 3).astype(np.intp)
    pages[0] = 1
    return pages


def truncated_session(rng):
    """A normal session cut after page t >= 3 while searching or reading products."""
    while True:
        full, phases = normal_session(rng, phases=True)
        cuts = [t for t in range(3, len(full)) if phases[t - 1] in (1, 2)]
        if cuts:
            return full[:cuts[int(rng.integers(len(cuts)))]]


def simulate(kind, n, rng):
    """``n`` sessions of ``kind`` ("normal" or one of KINDS): list of int arrays."""
    make = {"normal": normal_session, "bot": bot_session, "scraper": scraper_session,
            "truncated": truncated_session}[kind]
    return [make(rng) for _ in range(n)]


class BagOfPages:
    """The order-blind baseline: a unigram page model (add-one smoothing), scored like the
    detector (``normalize``: mean, sum or minimum of log P(page) over the session), with
    thresholds at the same percentiles of its training scores."""

    def __init__(self, suspicious=5.0, anomalous=1.0, normalize="per_step"):
        self.suspicious, self.anomalous, self.normalize = suspicious, anomalous, normalize

    def fit(self, sessions):
        counts = np.bincount(np.concatenate(sessions), minlength=len(PAGES)) + 1.0
        self.log_p = np.log(counts / counts.sum())
        scores = self.score(sessions)
        self.thresholds_ = {"suspicious": float(np.percentile(scores, self.suspicious)),
                            "anomalous": float(np.percentile(scores, self.anomalous))}
        return self

    def score(self, sessions):
        reduce = {"per_step": np.mean, "none": np.sum, "min_step": np.min}[self.normalize]
        return np.array([reduce(self.log_p[s]) for s in sessions])


def _rate(scores, threshold):
    return float(np.mean(scores < threshold))


_CODE = {"suspicious": 1, "anomalous": 2}


def stream_saving(detector, sessions):
    """(steps read before the flag or the end, full lengths, flagged early) per session."""
    stream = detector.stream()
    read, flagged = [], []
    for pages in sessions:
        stream.reset()
        for page in pages.tolist():
            stream.push(page)
            if stream.flagged:
                break
        read.append(stream.steps_read)
        flagged.append(stream.flagged)
    return np.array(read), np.array([len(s) for s in sessions]), np.array(flagged)


def build(n_train=3000, n_test=2000, n_anomalies=500, seed=0,
          normalizes=("per_step", "none", "min_step")):
    """Simulate, train and score: a dict of everything the report prints (and tests).

    The model is trained once, by the first detector's ``fit`` with the library's
    defaults (which appends the end symbol); each other score (``normalize``) gets its
    own detector over it, with the same end symbol, and its own bag-of-pages baseline.
    """
    from .monitor import AnomalyDetector, OccupancyMonitor

    rng = np.random.default_rng(seed)
    train = simulate("normal", n_train, rng)
    test = {"normal": simulate("normal", n_test, rng)}
    for kind in KINDS:
        test[kind] = simulate(kind, n_anomalies, rng)
    model = CategoricalHMM(5, n_iter=200, tol=1e-2, n_init=3, random_state=seed)
    result = {"train": train, "test": test, "model": model, "seed": seed, "scores": {}}
    end = "auto"
    for normalize in normalizes:
        detector = AnomalyDetector(model, normalize=normalize, end_symbol=end).fit(train)
        end = detector.end_symbol_
        baseline = BagOfPages(normalize=normalize).fit(train)
        result["scores"][normalize] = {
            "detector": detector, "baseline": baseline,
            "records": {kind: detector.predict(s) for kind, s in test.items()},
            "base_scores": {kind: baseline.score(s) for kind, s in test.items()},
        }
    occupancy = OccupancyMonitor(model).fit(model.decode_batch(train)[1])
    occupancy.update(model.decode_batch(test["normal"])[1])
    result["occupancy"] = occupancy
    return result


def compare(scored, tier):
    """{kind: (HMM rate, baseline rate, baseline rate at the HMM's FPR)} at one tier
    ("normal": the false-positive rates; the others: recall)."""
    rec, base = scored["records"], scored["base_scores"]
    bl = scored["baseline"]
    code = _CODE[tier]
    fpr = float(np.mean(rec["normal"].level_code >= code))
    # the baseline threshold that flags as many held-out normals as the HMM does: the
    # (k+1)-th smallest normal score, so exactly the k below it are flagged (without ties)
    k = round(fpr * len(base["normal"]))
    matched = np.sort(base["normal"])[k] if k < len(base["normal"]) else np.inf
    return {kind: (float(np.mean(rec[kind].level_code >= code)),
                   _rate(base[kind], bl.thresholds_[tier]), _rate(base[kind], matched))
            for kind in ("normal", *KINDS)}


def run(n_train=3000, seed=0, plot=None, out=sys.stdout):
    """Run the case study and print the report to ``out``; ``plot``: a PNG path for the
    figures (score histograms with thresholds, Viterbi strips of a bot and a scraper,
    state occupancy). Returns the dict of ``build``."""
    def say(line=""):
        print(line, file=out)

    result = build(n_train=n_train, seed=seed)
    main = result["scores"]["per_step"]
    det, rec = main["detector"], main["records"]
    say(f"hmmfast demo clickstream (seed {seed}): N=5 intent phases, M=10 page types")
    lengths = [len(s) for s in result["train"]]
    say(f"  Baum-Welch on {n_train} normal sessions only (mean length "
        f"{np.mean(lengths):.1f} pages; end-of-session symbol appended); held-out: "
        f"{len(result['test']['normal'])} normal sessions, "
        f"{len(result['test']['bot'])} of each anomaly kind")
    say(f"  AnomalyDetector(model) with the library's defaults: tiers at 5% (suspicious) and "
        f"1% (anomalous) of the training sessions, all evidence together; score cut-offs "
        f"(per-step log-likelihood): {det.thresholds_['suspicious']:.3f} and "
        f"{det.thresholds_['anomalous']:.3f}")
    say("")
    say("  share flagged (normal: false-positive rate; the kinds: recall)")
    say("  | sessions | tier | HMM | bag of pages | bag of pages at the HMM's FPR |")
    say("  |---|---|---:|---:|---:|")
    for tier in ("suspicious", "anomalous"):
        for kind, (ours, base, matched) in compare(main, tier).items():
            say(f"  | {kind} | {tier} | {ours:.1%} | {base:.1%} | {matched:.1%} |")
    say("")
    say("  by score (normalize), recall at equal false-positive rate")
    say("  | score | tier | FPR | bot HMM / bag | scraper HMM / bag | truncated HMM / bag | "
        "all kinds HMM / bag |")
    say("  |---|---|---:|---:|---:|---:|---:|")
    for normalize, scored in result["scores"].items():
        for tier in ("suspicious", "anomalous"):
            rows = compare(scored, tier)
            cells = [f"{rows[k][0]:.0%} / {rows[k][2]:.0%}" for k in KINDS]
            ours = np.mean([rows[k][0] for k in KINDS])
            bag = np.mean([rows[k][2] for k in KINDS])
            say(f"  | {normalize} | {tier} | {rows['normal'][0]:.1%} | " + " | ".join(cells)
                + f" | {ours:.0%} / {bag:.0%} |")
    say("")
    say("  reasons (median over the sessions of each kind; percentiles among training) and "
        "the evidence that fired most often at the anomalous tier")
    say("  | sessions | switch_rate_pct | longest_run_pct | length_pct | end_step | "
        "most common reason |")
    say("  |---|---:|---:|---:|---:|---|")
    for kind in ("normal", *KINDS):
        r = rec[kind]
        fired = [name for reason in r.reason[r.level_code == 2] for name in reason.split(",")]
        names, counts = np.unique(fired, return_counts=True) if fired else ([], [])
        top = (f"{names[np.argmax(counts)]} ({np.max(counts) / max(len(r.reason), 1):.0%})"
               if len(names) else "-")
        say(f"  | {kind} | {np.nanmedian(r.switch_rate_pct):.0f} | "
            f"{np.nanmedian(r.longest_run_pct):.0f} | {np.median(r.length_pct):.0f} | "
            f"{np.median(r.end_step):.2f} | {top} |")
    say("")
    say("  early termination (stream: flag once anomalous after >= 10 pages, against "
        "cut-offs by pages read; stop reading)")
    say("  | score | sessions | flagged early | overturned by full scoring | pages unread |")
    say("  |---|---|---:|---:|---:|")
    for normalize, scored in result["scores"].items():
        det_n = scored["detector"]
        for kind in ("normal", *KINDS):
            read, full, flagged = stream_saving(det_n, result["test"][kind])
            confirmed = scored["records"][kind].level == "anomalous"
            say(f"  | {normalize} | {kind} | {flagged.sum()} of {len(flagged)} | "
                f"{np.sum(flagged & ~confirmed)} | {1 - read.sum() / full.sum():.1%} |")
    occ = result["occupancy"]
    say("")
    say("  decoded-state occupancy of held-out normal sessions: "
        + ", ".join(f"{p:.0%}" for p in occ.occupancy)
        + f"; collapsed={occ.collapsed}, dead states={occ.dead_states.tolist()}")
    if plot is not None:
        write_plots(result, plot)
        say(f"  figures written to {plot}")
    return result


def write_plots(result, path):
    """One PNG: score histograms with the thresholds, Viterbi strips of a bot and of a
    scraper, and state occupancy."""
    from .monitor import _plots

    fig = _plots._figure(figsize=(11, 7.5))
    grid = fig.add_gridspec(3, 2, height_ratios=(3, 1, 1))
    main = result["scores"]["per_step"]
    det, rec, model = main["detector"], main["records"], result["model"]
    _plots.plot_scores({k: r.score for k, r in rec.items()}, det.thresholds_,
                       ax=fig.add_subplot(grid[0, 0]),
                       title="per-step log-likelihood by kind")
    _plots.plot_occupancy(result["occupancy"], ax=fig.add_subplot(grid[0, 1]))
    for row, kind in ((1, "bot"), (2, "scraper")):
        pages = result["test"][kind][0]
        _, states = model.decode(np.append(pages, END))
        _plots.plot_state_strip(states[:-1], observations=pages, n_states=5,
                                ax=fig.add_subplot(grid[row, :]),
                                title=f"a {kind}: Viterbi states (digits: page types)")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")  # a path or a binary file
    return fig
