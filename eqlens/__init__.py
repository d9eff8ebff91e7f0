"""eqlens: rotation-equivariant vision models for strong gravitational lensing.

Data flows one way: ``eqlens.simulation`` / ``eqlens.data`` -> ``eqlens.models`` ->
``eqlens.training`` -> ``eqlens.analysis``; the Streamlit app in ``app/`` only calls these.
The core never imports streamlit, plotly or captum.
"""

__version__ = "0.1.0"
