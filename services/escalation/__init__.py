"""Escalation service. So far only the working-time calendar (see README); SLA clocks are not built yet."""
