-- Who other than the party read its data (docs/data-protection.md, "Who read my data"): one
-- row per data.accessed event of the service that served the read, listed to the party
-- newest first. No reference to parties: a person may be looked up by an administrator
-- before accounts ever saw them. Kept as long as the party's account; erased with it.
CREATE TABLE access_log (
  id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The envelope's id ("<service>-<outbox id>"): an event is kept once.
  event_id      text        NOT NULL UNIQUE CHECK (length(event_id) <= 100),
  tenant        text        NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  party_id      uuid        NOT NULL,
  occurred_at   timestamptz NOT NULL,
  accessor_kind text        NOT NULL CHECK (accessor_kind IN ('back_office', 'partner', 'administrator')),
  accessor_id   text        NOT NULL CHECK (length(accessor_id) BETWEEN 1 AND 200),
  accessor_name text        NOT NULL CHECK (length(accessor_name) BETWEEN 1 AND 200),
  resource      text        NOT NULL CHECK (resource IN ('submission', 'attachment', 'mailbox', 'profile', 'account')),
  resource_id   text        NOT NULL DEFAULT '' CHECK (length(resource_id) <= 100),
  reference     text        NOT NULL DEFAULT '' CHECK (length(reference) <= 100),
  action        text        NOT NULL CHECK (action ~ '^[a-z][a-z_]{0,31}$'),
  purpose       text        NOT NULL CHECK (length(purpose) BETWEEN 1 AND 500),
  recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX access_log_by_party ON access_log (tenant, party_id, occurred_at DESC, id DESC);
