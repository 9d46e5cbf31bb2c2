"""Option types shared by the command line (hmmfast._cli) and ``hmmfast serve``
(hmmfast.serve._run): argparse ``type=`` converters whose errors say what was expected."""

import argparse


def at_least(minimum):
    """An argparse type: an integer >= ``minimum`` (``type=at_least(1)``)."""
    def convert(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    convert.__name__ = f"integer >= {minimum}"
    return convert
