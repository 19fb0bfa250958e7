-- 0003: deep verification. The baseline measurement taken before any change, and
-- every measurement after it (JSON lists of bot.analysis.Measurement).

ALTER TABLE rollbacks
    ADD COLUMN baseline jsonb,
    ADD COLUMN analysis jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD CONSTRAINT rollbacks_analysis_is_array CHECK (jsonb_typeof(analysis) = 'array');
