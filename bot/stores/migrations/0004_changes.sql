-- 0004: every runbook action is a change of some kind. Today's rollbacks become
-- changes of kind 'traffic' with nothing lost: the target and the splits move into
-- the kind's own JSON (spec / before / after), the one-active rule moves to `subject`.

ALTER TABLE rollbacks RENAME TO changes;
ALTER TABLE audit_events RENAME COLUMN rollback_id TO change_id;
ALTER INDEX audit_events_rollback_id RENAME TO audit_events_change_id;

ALTER TABLE changes
    ADD COLUMN kind    text  NOT NULL DEFAULT 'traffic',
    ADD COLUMN subject text,
    ADD COLUMN spec    jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN before  jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN after   jsonb;

UPDATE changes SET
    subject = service,
    spec    = jsonb_build_object('cloud_run_service', cloud_run_service,
                                 'traffic', jsonb_build_object(target_revision, 100)),
    before  = jsonb_build_object('traffic', coalesce(traffic_before, '{}'::jsonb)),
    after   = CASE WHEN traffic_after IS NULL THEN NULL
                   ELSE jsonb_build_object('traffic', traffic_after) END;

ALTER TABLE changes
    ALTER COLUMN kind DROP DEFAULT,
    ALTER COLUMN subject SET NOT NULL,
    ADD CONSTRAINT changes_spec_is_object CHECK (jsonb_typeof(spec) = 'object'),
    ADD CONSTRAINT changes_before_is_object CHECK (jsonb_typeof(before) = 'object');

-- One active change per subject (a service, a flag, a switch…), whatever its kind.
DROP INDEX rollbacks_one_active_per_service;
CREATE UNIQUE INDEX changes_one_active_per_subject
    ON changes (subject)
    WHERE state IN ('proposed', 'confirmed', 'executing', 'verifying');

ALTER TABLE changes
    DROP COLUMN cloud_run_service,
    DROP COLUMN target_revision,
    DROP COLUMN traffic_before,
    DROP COLUMN traffic_after,
    DROP COLUMN mode;

ALTER INDEX rollbacks_service_created_at RENAME TO changes_service_created_at;
ALTER INDEX rollbacks_active_created_at RENAME TO changes_active_created_at;
ALTER SEQUENCE rollbacks_id_seq RENAME TO changes_id_seq;
ALTER INDEX rollbacks_pkey RENAME TO changes_pkey;

-- Queued jobs name their change by `change_id` now (was `rollback_id`).
DO $$
BEGIN
    IF to_regclass('procrastinate_jobs') IS NOT NULL THEN
        UPDATE procrastinate_jobs
           SET args = (args - 'rollback_id') || jsonb_build_object('change_id', args->'rollback_id')
         WHERE args ? 'rollback_id' AND status IN ('todo', 'doing');
    END IF;
END $$;

-- Confirm and Cancel jobs name their change explicitly now (recovery matched the
-- click's JSON before); the button's value was its id.
DO $$
BEGIN
    IF to_regclass('procrastinate_jobs') IS NOT NULL THEN
        UPDATE procrastinate_jobs
           SET args = args || jsonb_build_object('change_id', (args->'click'->>'value')::bigint)
         WHERE task_name IN ('rollbot.confirm', 'rollbot.cancel')
           AND status IN ('todo', 'doing')
           AND NOT args ? 'change_id'
           AND args->'click'->>'value' ~ '^[1-9][0-9]{0,17}$';
    END IF;
END $$;
