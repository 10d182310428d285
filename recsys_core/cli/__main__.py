"""``python -m recsys_core.cli``: the ``transfer-lab`` command without the console script."""

import sys

from recsys_core.cli import main

sys.exit(main())
