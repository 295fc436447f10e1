"""Kafka topic names. One events topic per publishing service, keyed by aggregate id."""

COMPLAINTS_EVENTS = "complaints.events.v1"
ESCALATION_EVENTS = "escalation.events.v1"
SCORING_EVENTS = "scoring.events.v1"


def dead_letter_topic(consumer_name: str) -> str:
    """Each consuming service has its own dead-letter topic."""
    return f"{consumer_name}.dead-letter.v1"
