-- 0001: rollbacks and their audit trail.

CREATE TABLE rollbacks (
    id                bigserial PRIMARY KEY,
    service           text        NOT NULL,  -- catalog key
    cloud_run_service text        NOT NULL,
    target_revision   text        NOT NULL,
    mode              text        NOT NULL DEFAULT 'full'
                          CHECK (mode IN ('full', 'gradual')),
    state             text        NOT NULL DEFAULT 'proposed'
                          CHECK (state IN ('proposed', 'confirmed', 'executing', 'verifying',
                                           'succeeded', 'failed', 'cancelled')),
    traffic_before    jsonb,
    traffic_after     jsonb,
    requested_by      text        NOT NULL,
    confirmed_by      text,
    channel_id        text        NOT NULL,
    card_ts           text,
    thread_ts         text,
    verdict           text,
    error             text,
    dry_run           boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- At most one in-flight rollback per service, enforced by the database so that two
-- replicas (or a double click) cannot both start one; terminal states do not count.
CREATE UNIQUE INDEX rollbacks_one_active_per_service
    ON rollbacks (service)
    WHERE state IN ('proposed', 'confirmed', 'executing', 'verifying');

CREATE INDEX rollbacks_service_created_at ON rollbacks (service, created_at DESC);

CREATE TABLE audit_events (
    id          bigserial PRIMARY KEY,
    rollback_id bigint REFERENCES rollbacks (id),
    service     text,
    actor       text        NOT NULL,  -- Slack user id, or 'rollbot'
    action      text        NOT NULL,
    outcome     text        NOT NULL DEFAULT 'ok'
                    CHECK (outcome IN ('ok', 'denied', 'error')),
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_events_rollback_id ON audit_events (rollback_id);
CREATE INDEX audit_events_service_created_at ON audit_events (service, created_at DESC);
