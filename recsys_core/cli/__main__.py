"""``python -m recsys_core.cli``: the ``transfer-lab`` command without the console script."""

from recsys_core.cli import console

console()
