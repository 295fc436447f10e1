"""Scoring service. Not built yet: it serves only /healthz and /readyz (see README)."""
