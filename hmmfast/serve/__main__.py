"""``python -m hmmfast.serve MODEL_FILE [options]`` (the same as ``hmmfast serve``)."""

import sys

try:
    from ._run import main

    status = main()
except KeyboardInterrupt:  # Ctrl-C while the service's modules load
    status = 130
sys.exit(status)
