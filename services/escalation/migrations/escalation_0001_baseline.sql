-- The schema as the last release before versioned migrations left it, idempotent: a database of any
-- earlier release adopts versioning by applying it.

CREATE TABLE IF NOT EXISTS sla_deadlines (
    sla_id uuid PRIMARY KEY,
    due_at timestamptz,
    version integer NOT NULL
);
CREATE INDEX IF NOT EXISTS sla_deadlines_by_due ON sla_deadlines (due_at) WHERE due_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS sla_rule_changes (
    changed_at timestamptz NOT NULL,
    fingerprint text NOT NULL,
    policy_versions text[] NOT NULL,
    calendar_version text NOT NULL,
    open_subjects integer NOT NULL,
    recalculated integer NOT NULL
);

CREATE TABLE IF NOT EXISTS sla_verdict_backfills (
    finished_at timestamptz NOT NULL,
    subjects integer NOT NULL,
    verdicts integer NOT NULL
);
