"""Map layers: each turns query-layer rows into one Plotly trace (one trace per layer keeps the payload small)."""
