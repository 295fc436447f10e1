-- The idempotent consumer's inbox, its group epochs and the topic ids it has seen.
-- The schema as the last release before versioned migrations left it, idempotent: a database of any
-- earlier release adopts versioning by applying it.

CREATE TABLE IF NOT EXISTS consumer_inbox (
    consumer text NOT NULL,
    event_id uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE IF NOT EXISTS consumer_epochs (consumer text PRIMARY KEY, epoch integer NOT NULL);

CREATE TABLE IF NOT EXISTS consumer_topic_ids (
    consumer text NOT NULL,
    topic text NOT NULL,
    topic_id uuid NOT NULL,
    PRIMARY KEY (consumer, topic)
);
