"""The dashboard's own helpers: session state, shared widgets, plotly figure builders.

Only ``app.py`` and ``pages/`` import this package; the engine (``recsys_core``) never
imports it, nor streamlit.
"""
