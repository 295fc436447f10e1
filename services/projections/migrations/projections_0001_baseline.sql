-- The schema as the last release before versioned migrations left it, idempotent: a database of any
-- earlier release adopts versioning by applying it.

CREATE TABLE IF NOT EXISTS timelines (
    timeline_id uuid NOT NULL,
    aggregate_id uuid NOT NULL,
    aggregate_version integer NOT NULL,
    event_id uuid NOT NULL UNIQUE,
    event_type text NOT NULL,
    source text NOT NULL,
    occurred_at timestamptz NOT NULL,
    details jsonb NOT NULL,
    PRIMARY KEY (aggregate_id, aggregate_version)
);
CREATE INDEX IF NOT EXISTS timelines_in_order ON timelines (timeline_id, occurred_at, aggregate_version);
CREATE TABLE IF NOT EXISTS timeline_halls (
    aggregate_id uuid PRIMARY KEY,
    hall_id text NOT NULL
);
CREATE TABLE IF NOT EXISTS timeline_hand_offs (
    aggregate_id uuid NOT NULL,
    unit text NOT NULL,
    PRIMARY KEY (aggregate_id, unit)
);

CREATE TABLE IF NOT EXISTS halls (
    hall_id text PRIMARY KEY,
    name text NOT NULL,
    province text NOT NULL,
    city text NOT NULL,
    level integer NOT NULL,
    ownership text NOT NULL
);
CREATE TABLE IF NOT EXISTS complaint_summaries (
    complaint_id uuid PRIMARY KEY,
    number text NOT NULL UNIQUE,
    hall_id text NOT NULL,
    channel text NOT NULL,
    category text NOT NULL,
    priority text NOT NULL,
    owner text NOT NULL,
    status text NOT NULL,
    last_step text NOT NULL,
    received_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version integer NOT NULL
);
CREATE INDEX IF NOT EXISTS complaint_summaries_hall ON complaint_summaries (hall_id, received_at);
CREATE INDEX IF NOT EXISTS complaint_summaries_received ON complaint_summaries (received_at, complaint_id);

ALTER TABLE halls ADD COLUMN IF NOT EXISTS closed boolean NOT NULL DEFAULT false;

ALTER TABLE complaint_summaries ADD COLUMN IF NOT EXISTS hand_off_to text;
ALTER TABLE complaint_summaries ADD COLUMN IF NOT EXISTS owner_unit text;
ALTER TABLE complaint_summaries ADD COLUMN IF NOT EXISTS satisfaction text;
ALTER TABLE complaint_summaries ADD COLUMN IF NOT EXISTS callback_owed boolean NOT NULL DEFAULT false;
ALTER TABLE complaint_summaries ADD COLUMN IF NOT EXISTS repeat_count integer NOT NULL DEFAULT 0;
ALTER TABLE complaint_summaries ADD COLUMN IF NOT EXISTS escalated_level integer;
ALTER TABLE complaint_summaries ADD COLUMN IF NOT EXISTS escalated_target text;
ALTER TABLE complaint_summaries ADD COLUMN IF NOT EXISTS incident_id uuid;

CREATE TABLE IF NOT EXISTS score_changes (
    event_id uuid PRIMARY KEY,
    scorecard_version integer NOT NULL,
    hall_id text NOT NULL,
    period text NOT NULL,
    subject_id uuid NOT NULL,
    fact jsonb NOT NULL,
    source_event_id uuid NOT NULL,
    source_event_type text NOT NULL,
    policy_version text NOT NULL,
    score_before double precision NOT NULL,
    score double precision NOT NULL,
    components jsonb NOT NULL,
    deductions double precision NOT NULL,
    changes jsonb NOT NULL,
    happened_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    bonus double precision NOT NULL DEFAULT 0
);
-- Read models made before bonus points existed.
ALTER TABLE score_changes ADD COLUMN IF NOT EXISTS bonus double precision NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS score_changes_by_hall ON score_changes (period, hall_id, scorecard_version);
CREATE INDEX IF NOT EXISTS score_changes_by_subject ON score_changes (subject_id);

CREATE INDEX IF NOT EXISTS complaint_summaries_open ON complaint_summaries (priority) WHERE status <> 'closed';
CREATE TABLE IF NOT EXISTS sla_clock_stops (
    event_id uuid PRIMARY KEY,
    subject_id uuid NOT NULL,
    clock text NOT NULL,
    outcome text NOT NULL,
    stopped_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS sla_clock_stops_by_subject ON sla_clock_stops (subject_id, clock);

CREATE TABLE IF NOT EXISTS queue_clocks (
    subject_id uuid NOT NULL,
    clock text NOT NULL,
    due_at timestamptz,
    due_version integer NOT NULL DEFAULT 0,
    warned_version integer NOT NULL DEFAULT 0,
    breached_version integer NOT NULL DEFAULT 0,
    escalation_level integer,
    escalation_target text,
    escalation_version integer NOT NULL DEFAULT 0,
    stopped_version integer NOT NULL DEFAULT 0,
    PRIMARY KEY (subject_id, clock)
);
CREATE INDEX IF NOT EXISTS queue_clocks_escalated ON queue_clocks (escalation_target)
    WHERE escalation_target IS NOT NULL;

CREATE TABLE IF NOT EXISTS inspection_summaries (
    inspection_id uuid PRIMARY KEY,
    hall_id text NOT NULL,
    inspection_type text NOT NULL,
    inspector text NOT NULL,
    score integer NOT NULL,
    max_score integer NOT NULL,
    findings integer NOT NULL,
    period text NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS inspection_summaries_by_hall ON inspection_summaries (hall_id, at);
CREATE TABLE IF NOT EXISTS order_summaries (
    order_id uuid PRIMARY KEY,
    inspection_id uuid NOT NULL,
    hall_id text NOT NULL,
    item_id text NOT NULL,
    points integer NOT NULL,
    deadline timestamptz NOT NULL,
    period text NOT NULL,
    status text NOT NULL,
    last_step text NOT NULL,
    at timestamptz NOT NULL,
    version integer NOT NULL
);
CREATE INDEX IF NOT EXISTS order_summaries_by_hall ON order_summaries (hall_id, at);

CREATE TABLE IF NOT EXISTS incidents (
    incident_id uuid PRIMARY KEY,
    area text NOT NULL,
    category text NOT NULL,
    window_start timestamptz NOT NULL,
    window_end timestamptz NOT NULL,
    opened_at timestamptz NOT NULL
);
