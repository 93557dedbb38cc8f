"""`python -m repro run ...` is the same as `repro run ...`."""

import sys

from .cli import main

sys.exit(main())
