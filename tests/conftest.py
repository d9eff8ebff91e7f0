"""Settings for the whole suite.

Hypothesis: no per-example deadline and no "input generation is slow" health check. Both measure the
machine's load (CI shares two cores between two pytest workers, a campaign may be training beside
them), not a property of the code, and failed CI on it; every other health check stays on.
"""

from hypothesis import HealthCheck, settings

settings.register_profile("eqlens", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("eqlens")
