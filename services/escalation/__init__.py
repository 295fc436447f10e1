"""Escalation service: working-time calendar, SLA policies and the clock model; no running clocks yet (README)."""
