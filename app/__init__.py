"""The eqlens Streamlit app: ``streamlit run app/main.py``. Pages live in ``app/views/``; the app
holds no model code and only calls the ``eqlens`` package."""
