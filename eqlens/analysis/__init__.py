"""Analysis behind the app: equivariance metrics, attention, group channels, attributions."""
