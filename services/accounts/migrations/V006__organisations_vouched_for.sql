-- Organisations an identity provider vouched for (the ELSTER company account): which
-- provider, and its id of the organisation, so the next log-in of the company finds it.
ALTER TABLE organisations
  ADD COLUMN provider    text NOT NULL DEFAULT '',
  ADD COLUMN provider_id text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX organisations_by_provider ON organisations (tenant, provider, provider_id)
  WHERE provider <> '';
