-- 0005: gradual rollouts. A change that moves traffic in steps is `rolling_out`
-- between its first step and its last; `rollout` holds its steps, analyses and
-- clock (bot/changes/rollout.py). An aborted rollout is a verdict of its own.

ALTER TABLE changes ADD COLUMN rollout jsonb;
ALTER TABLE changes
    ADD CONSTRAINT changes_rollout_is_object
        CHECK (rollout IS NULL OR jsonb_typeof(rollout) = 'object');

ALTER TABLE changes DROP CONSTRAINT rollbacks_state_check;
ALTER TABLE changes
    ADD CONSTRAINT changes_state_known
        CHECK (state IN ('proposed', 'confirmed', 'executing', 'rolling_out', 'verifying',
                         'succeeded', 'failed', 'cancelled'));

ALTER TABLE changes DROP CONSTRAINT rollbacks_verdict_known;
ALTER TABLE changes
    ADD CONSTRAINT changes_verdict_known
        CHECK (verdict IS NULL OR verdict IN ('verified', 'degraded', 'failed', 'aborted'));

-- A rolling-out change holds its subject like any other active change.
DROP INDEX changes_one_active_per_subject;
CREATE UNIQUE INDEX changes_one_active_per_subject
    ON changes (subject)
    WHERE state IN ('proposed', 'confirmed', 'executing', 'rolling_out', 'verifying');

DROP INDEX changes_active_created_at;
CREATE INDEX changes_active_created_at ON changes (created_at)
    WHERE state IN ('proposed', 'confirmed', 'executing', 'rolling_out', 'verifying');
