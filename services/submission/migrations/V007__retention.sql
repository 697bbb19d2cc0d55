-- Retention: every online service states how long its closed submissions are kept, on
-- which legal basis, and whether they are offered to the archive before (records of
-- lasting value). Every catalogue sync and publication writes the three columns from the
-- definition; the defaults are the platform's rule (ten years, administrative records)
-- for rows this release does not write: services an administrator published before, and
-- rows the previous release writes during a rollout or after a rollback.
ALTER TABLE online_services
  ADD COLUMN retention_years       integer NOT NULL DEFAULT 10 CHECK (retention_years BETWEEN 1 AND 100),
  ADD COLUMN retention_legal_basis text    NOT NULL
    DEFAULT 'Art. 6(1)(e) GDPR; records retention per the municipality''s filing plan (platform default, confirmed by the data protection officer)',
  ADD COLUMN lasting_value         boolean NOT NULL DEFAULT false;

-- A submission is closed when it reaches approved, rejected, withdrawn or closed; it is
-- kept until retain_until (closed_at + the service's retention_years), then handed to the
-- archive (lasting value) and anonymised: the party, the answers, the notes and the files
-- go; service, dates, status and fee stay for the statistics.
ALTER TABLE submissions
  ADD COLUMN closed_at      timestamptz,
  ADD COLUMN retain_until   timestamptz,
  ADD COLUMN handed_over_at timestamptz,
  ADD COLUMN anonymised_at  timestamptz,
  ALTER COLUMN party_id   DROP NOT NULL,
  ALTER COLUMN account_id DROP NOT NULL,
  ADD CONSTRAINT submissions_anonymised CHECK (anonymised_at IS NULL OR (party_id IS NULL AND account_id IS NULL)),
  ADD CONSTRAINT submissions_retained CHECK ((closed_at IS NULL) = (retain_until IS NULL));

-- Submissions closed before this release: closed when their last decision was recorded.
UPDATE submissions s SET
  closed_at = c.at,
  retain_until = c.at + make_interval(years => o.retention_years)
FROM (SELECT submission_id, max(at) AS at FROM submission_history
      WHERE status IN ('approved', 'rejected', 'withdrawn', 'closed') GROUP BY submission_id) c,
     online_services o
WHERE c.submission_id = s.id AND o.tenant = s.tenant AND o.id = s.service_id
  AND s.status IN ('approved', 'rejected', 'withdrawn', 'closed');
-- A closed submission without its history row (none known): closed at its last change.
UPDATE submissions s SET
  closed_at = s.updated_at,
  retain_until = s.updated_at + make_interval(years => o.retention_years)
FROM online_services o
WHERE o.tenant = s.tenant AND o.id = s.service_id AND s.closed_at IS NULL
  AND s.status IN ('approved', 'rejected', 'withdrawn', 'closed');

-- The retention job's work list ("my archive" reads submissions_mine, filtering).
CREATE INDEX submissions_retention ON submissions (retain_until) WHERE anonymised_at IS NULL AND retain_until IS NOT NULL;
