-- Where each relay has published up to, and the trace context stored beside each event.
-- The schema as the last release before versioned migrations left it, idempotent: a database of any
-- earlier release adopts versioning by applying it.

CREATE TABLE IF NOT EXISTS relay_positions (
    relay_name text PRIMARY KEY,
    position bigint NOT NULL CHECK (position >= 0)
);

CREATE TABLE IF NOT EXISTS event_trace_contexts (
    originator_id uuid NOT NULL,
    originator_version integer NOT NULL,
    traceparent text NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (originator_id, originator_version)
);

ALTER TABLE event_trace_contexts ADD COLUMN IF NOT EXISTS stored_at timestamptz NOT NULL DEFAULT now();
