"""The dishonest casino: a fair die and a loaded one, switched behind the player's back."""

import numpy as np

from ._categorical import CategoricalHMM

FAIR, LOADED = 0, 1


def casino_model(random_state=None):
    """The textbook casino (Durbin et al.): the loaded die shows a six half the time."""
    model = CategoricalHMM(n_components=2, random_state=random_state)
    model.startprob_ = [0.5, 0.5]
    model.transmat_ = [[0.95, 0.05],
                       [0.10, 0.90]]
    model.emissionprob_ = [[1 / 6] * 6,
                           [0.1, 0.1, 0.1, 0.1, 0.1, 0.5]]
    return model


def _strip(states, width):
    return "".join("FL"[s] for s in states[:width])


def run(n_rolls=300, seed=7, width=60, out=print):
    """Sample rolls, decode them, report accuracy and a strip of true vs decoded states."""
    model = casino_model(random_state=seed)
    rolls, true_states = model.sample(n_rolls)
    viterbi_logprob, viterbi_states = model.decode(rolls)
    _, map_states = model.decode(rolls, algorithm="map")
    loglik = model.score(rolls)
    out(f"hmmfast demo: the dishonest casino ({n_rolls} rolls, seed {seed})")
    out("  states: F = fair die, L = loaded die (six with probability 0.5)")
    out(f"  log P(rolls)              = {loglik:.4f}")
    out(f"  log P(rolls, Viterbi path) = {viterbi_logprob:.4f}")
    out(f"  Viterbi accuracy   {np.mean(viterbi_states == true_states):6.1%}")
    out(f"  posterior accuracy {np.mean(map_states == true_states):6.1%}")
    for start in range(0, min(n_rolls, 3 * width), width):
        stop = min(start + width, n_rolls)
        out(f"  rolls   {''.join(str(r + 1) for r in rolls[start:stop, 0])}")
        out(f"  true    {_strip(true_states[start:stop], width)}")
        out(f"  viterbi {_strip(viterbi_states[start:stop], width)}")
        out("")
    return float(np.mean(viterbi_states == true_states))
