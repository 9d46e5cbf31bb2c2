"""``python -m hmmfast.serve MODEL_FILE [options]`` (the same as ``hmmfast serve``)."""

import sys

from ._run import main

sys.exit(main())
