"""Experiments built on the trainer and the simulator: generalisation to shifted simulations
(:mod:`.shifts`, :mod:`.generalisation`), few-shot learning of a new class (:mod:`.fewshot`), and the
comparison of models over seeds behind ``eqlens bench`` (:mod:`.model_comparison`).
See docs/generalisation.md. Nothing here imports streamlit, plotly or captum."""
