"""Code shared by the services: event contracts, topics, settings, relay, consumer base."""
