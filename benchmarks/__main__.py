"""``python -m benchmarks``: run every benchmark section and print the figures."""

import sys

from benchmarks.run import main

sys.exit(main())
