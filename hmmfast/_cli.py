"""The ``hmmfast`` command line."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hmmfast", description="Fast Hidden Markov Models.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="decode the dishonest-casino example")
    demo.add_argument("--rolls", type=int, default=300, help="number of rolls (default 300)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.rolls < 1:
            parser.error("--rolls must be at least 1")
        from ._demo import run

        run(n_rolls=args.rolls, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
