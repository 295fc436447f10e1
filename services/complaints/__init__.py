"""Complaints service: the registry of halls and the complaints filed against them."""
