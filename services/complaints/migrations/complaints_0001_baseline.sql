-- The schema as the last release before versioned migrations left it, idempotent: a database of any
-- earlier release adopts versioning by applying it.

-- Complaint numbers are reserved in blocks of BLOCK_SIZE (services/complaints/repositories.py).
CREATE SEQUENCE IF NOT EXISTS complaint_number_seq INCREMENT BY 100;
ALTER SEQUENCE complaint_number_seq INCREMENT BY 100;

DROP TABLE IF EXISTS verification_failures;  -- kept failures by number, of numbers real or not
CREATE TABLE IF NOT EXISTS progress_failures (
    client text NOT NULL,
    failed_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS progress_failures_by_client ON progress_failures (client, failed_at);
CREATE INDEX IF NOT EXISTS progress_failures_by_time ON progress_failures (failed_at);

CREATE TABLE IF NOT EXISTS customer_keys (
    subject uuid PRIMARY KEY,
    wrapped_key bytea,
    phone_digest bytea,
    closed_at timestamptz,
    destroyed_at timestamptz
);

-- The complaint's receipt, number and hall, for the customer's repeat complaints; NULL in rows from before.
ALTER TABLE customer_keys ADD COLUMN IF NOT EXISTS received_at timestamptz;
ALTER TABLE customer_keys ADD COLUMN IF NOT EXISTS number text;
ALTER TABLE customer_keys ADD COLUMN IF NOT EXISTS hall_code text;

CREATE INDEX IF NOT EXISTS customer_keys_by_phone ON customer_keys (phone_digest) WHERE phone_digest IS NOT NULL;
CREATE INDEX IF NOT EXISTS customer_keys_by_phone_received ON customer_keys (phone_digest, received_at)
    WHERE phone_digest IS NOT NULL;
CREATE INDEX IF NOT EXISTS customer_keys_by_closure ON customer_keys (closed_at) WHERE wrapped_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS attachments (
    sha256 text PRIMARY KEY,
    size bigint NOT NULL,
    content_type text NOT NULL
);
CREATE TABLE IF NOT EXISTS attachment_uploads (
    sha256 text NOT NULL REFERENCES attachments ON DELETE CASCADE,
    unit text NOT NULL,
    name text NOT NULL,
    uploaded_at timestamptz NOT NULL,
    PRIMARY KEY (sha256, unit)
);
CREATE TABLE IF NOT EXISTS attachment_links (
    sha256 text NOT NULL REFERENCES attachments ON DELETE CASCADE,
    subject_kind text NOT NULL,
    subject_id uuid NOT NULL,
    subject_unit text NOT NULL,
    linked_at timestamptz NOT NULL,
    PRIMARY KEY (sha256, subject_id)
);
CREATE INDEX IF NOT EXISTS attachment_links_by_subject ON attachment_links (subject_id);
CREATE INDEX IF NOT EXISTS attachment_uploads_by_time ON attachment_uploads (uploaded_at);

CREATE TABLE IF NOT EXISTS customer_notifications (
    complaint_id uuid NOT NULL,
    occurrence integer NOT NULL,  -- the trigger event's version in the complaint
    channel text NOT NULL,
    trigger text NOT NULL,
    template text NOT NULL,
    template_version integer NOT NULL,
    result_at timestamptz,  -- result_recorded only: the result the survey link asks about
    due_at timestamptz NOT NULL,
    leased_until timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    last_error text,
    finished_at timestamptz,
    recorded boolean NOT NULL DEFAULT false,  -- its outcome is on the complaint's timeline
    PRIMARY KEY (complaint_id, occurrence, channel)
);
CREATE INDEX IF NOT EXISTS customer_notifications_due ON customer_notifications (due_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS customer_notifications_unrecorded
    ON customer_notifications (finished_at) WHERE state <> 'pending' AND NOT recorded;
CREATE TABLE IF NOT EXISTS notification_positions (
    planner text PRIMARY KEY,
    position bigint NOT NULL CHECK (position >= 0)
);
