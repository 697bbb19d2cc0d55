-- The erasure of a person (party.erasure_requested): a delivery the department received
-- and the access log's rows about the person no longer name the person's party (the
-- department's reads stay on record: who, when, why). A delivery's snapshot (the
-- submission as pushed) is cleared some days after the department acknowledged it; the
-- index serves that retention job.
ALTER TABLE deliveries ALTER COLUMN party_id DROP NOT NULL;
ALTER TABLE access_log ALTER COLUMN party_id DROP NOT NULL;
CREATE INDEX deliveries_snapshot_kept ON deliveries (acknowledged_at) WHERE snapshot IS NOT NULL;
