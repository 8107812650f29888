"""Paper figures: one module per figure (``fig4.make(inputs, params) -> Figure``).

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot, no display, no
global figure state), so they render with any backend and never open a window.
"""
