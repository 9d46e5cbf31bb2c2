"""``hmmfast sample MODEL``: sequences drawn from a model, in a format the reader reads.

Sequence k is ``model.sample(LENGTH, random_state=rng)`` for k = 1..N in turn, with
``rng = numpy.random.RandomState(SEED)``: the same seed gives the same file, and the
Python call above gives the same sequences. Without ``--seed`` one is drawn and printed
on stderr, so a run can be repeated.
"""

import json
import sys

import numpy as np

from ._cli_commands import load_model, open_output, write_all


def sample(args):
    seed = args.seed
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    with open_output(args.output, [("model", args.model)]) as out:
        model = load_model(args.model)
        rng = np.random.RandomState(seed)
        for _ in range(args.sequences):
            X, states = model.sample(args.length, random_state=rng)
            write_all(out, _line(X, states, args.json).encode())
    if not args.quiet:
        print(f"hmmfast sample: {args.sequences:,} sequences of {args.length:,} from "
              f"{args.model}, seed {seed}", file=sys.stderr)
    return 0


def _line(X, states, as_json):
    values = X.tolist()
    if X.ndim == 2 and X.shape[1] == 1:
        values = [row[0] for row in values]
    if as_json:
        return json.dumps({"obs": values, "states": states.tolist()}) + "\n"
    flat = np.asarray(X).ravel().tolist()
    return " ".join(map(repr if X.dtype.kind == "f" else str, flat)) + "\n"
