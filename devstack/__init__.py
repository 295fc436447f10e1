"""Local stack: embedded PostgreSQL, the Tansu broker and every service, as processes."""
