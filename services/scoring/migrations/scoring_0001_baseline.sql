-- The schema as the last release before versioned migrations left it, idempotent: a database of any
-- earlier release adopts versioning by applying it.

CREATE TABLE IF NOT EXISTS complaint_periods (
    complaint_id uuid PRIMARY KEY,
    hall_id text NOT NULL,
    period text NOT NULL
);
-- Rectification orders likewise (from their opening), for the steps whose events name neither.
CREATE TABLE IF NOT EXISTS order_periods (
    order_id uuid PRIMARY KEY,
    hall_id text NOT NULL,
    period text NOT NULL
);

CREATE TABLE IF NOT EXISTS halls (
    hall_id text PRIMARY KEY,
    province text NOT NULL,
    city text NOT NULL,
    level integer NOT NULL,
    ownership text NOT NULL
);
-- Each change of a hall's level, ownership or closure, effective from an instant: see `HALL_AT`.
CREATE TABLE IF NOT EXISTS hall_changes (
    event_id uuid PRIMARY KEY,
    hall_id text NOT NULL,
    effective_from timestamptz NOT NULL,
    level integer,
    ownership text,
    closed boolean,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS hall_changes_by_hall ON hall_changes (hall_id, effective_from);
CREATE TABLE IF NOT EXISTS score_changes (
    scorecard_id uuid NOT NULL,
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
    changes jsonb NOT NULL,
    happened_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (scorecard_id, scorecard_version)
);
CREATE INDEX IF NOT EXISTS score_changes_by_hall ON score_changes (period, hall_id, scorecard_version);
-- Months whose grades may have moved since `grades_table` last graded them.
CREATE TABLE IF NOT EXISTS periods_to_grade (period text PRIMARY KEY);
CREATE TABLE IF NOT EXISTS score_changes_copied (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    position bigint NOT NULL
);

-- When scoring recorded the hall, for grades as of an instant; NULL in rows from before it was kept
-- (`make republish` fills them in).
ALTER TABLE halls ADD COLUMN IF NOT EXISTS registered_at timestamptz;

CREATE TABLE IF NOT EXISTS hall_grades (
    period text NOT NULL,
    hall_id text NOT NULL,
    province text NOT NULL,
    city text NOT NULL,
    status text NOT NULL,
    score double precision NOT NULL,
    rank integer,
    grade text,
    tied_at_boundary boolean NOT NULL,
    dropped_by_quota boolean NOT NULL,
    policy_version text NOT NULL,
    PRIMARY KEY (period, hall_id)
);
