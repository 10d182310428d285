"""The dashboard's own helpers: session state, shared widgets, plotly figure builders.

Only ``app.py`` and ``views/`` import this package; the engine (``recsys_core``) never
imports it, nor streamlit.
"""
