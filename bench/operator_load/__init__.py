"""The kopf operator's own cost on the real control plane (see __main__.py)."""
