-- 0002: what the confirm/execute/verify flow needs on top of 0001.

ALTER TABLE rollbacks
    ADD COLUMN summary_ts   text,                               -- thread summary message ts
    ADD COLUMN plan         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN cancelled_by text,                               -- Slack user id, or 'rollbot'
    ADD COLUMN finished_at  timestamptz;

-- Rows that were already final before this migration finished when last touched.
UPDATE rollbacks SET finished_at = updated_at
    WHERE state IN ('succeeded', 'failed', 'cancelled');

-- finished_at means "this rollback is over": a stray write cannot make an active
-- rollback look finished. (One-way only: the store always sets it on final states,
-- but raw inserts of final rows, e.g. in tests, need not.)
ALTER TABLE rollbacks
    ADD CONSTRAINT rollbacks_finished_only_when_final
        CHECK (finished_at IS NULL OR state IN ('succeeded', 'failed', 'cancelled')),
    ADD CONSTRAINT rollbacks_verdict_known
        CHECK (verdict IS NULL OR verdict IN ('verified', 'degraded', 'failed')),
    ADD CONSTRAINT rollbacks_plan_is_object
        CHECK (jsonb_typeof(plan) = 'object');

-- Crash recovery (unfinished) and proposal expiry scan active rows by age; the
-- partial index stays tiny because almost every row is final.
CREATE INDEX rollbacks_active_created_at ON rollbacks (created_at)
    WHERE state IN ('proposed', 'confirmed', 'executing', 'verifying');

-- AuditLog.recent() without a service filter.
CREATE INDEX audit_events_created_at ON audit_events (created_at DESC);
