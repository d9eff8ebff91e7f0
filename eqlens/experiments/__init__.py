"""Experiments built on the trainer and the simulator: generalisation to shifted simulations
(:mod:`.shifts`, :mod:`.generalisation`) and few-shot learning of a new class (:mod:`.fewshot`).
See docs/generalisation.md. Nothing here imports streamlit, plotly or captum."""
