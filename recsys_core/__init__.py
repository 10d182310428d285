"""Recsys Transfer Lab engine: data, models, transfer strategies, evaluation, run store.

This package never imports streamlit; the dashboard in ``app.py``/``views/`` and the
CLI in :mod:`recsys_core.cli` are two front ends over the same functions.
"""

__version__ = "0.1.0"
