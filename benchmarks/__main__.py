"""``python -m benchmarks [NAME_FILTER ...]``: run the benchmarks and print the table."""

import sys

from benchmarks._runner import main

sys.exit(main())
