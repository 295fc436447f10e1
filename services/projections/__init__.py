"""Projections service: read models built from every service's events, served over REST."""
