-- A thread a department writes in belongs to that department's delivery destination:
-- back offices read replies, attachments and case messages of their own destination's
-- threads only, never by the department's free-text name. Threads from before carry ''
-- until their destination next writes in them.
ALTER TABLE threads ADD COLUMN destination text NOT NULL DEFAULT '';
CREATE INDEX threads_destination ON threads (tenant, destination, submission_id) WHERE destination <> '';
