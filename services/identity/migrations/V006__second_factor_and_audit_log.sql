-- applied as 4198e64af72ec435
-- (with inbox, which libs/events/migrations now creates)
-- The second factor (TOTP, RFC 6238) of an account: one secret, confirmed by a first
-- code; `last_step` is the newest time step used, so a code is accepted once.
CREATE TABLE totp_factors (
  account_id   uuid        PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
  tenant       text        NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  secret       bytea       NOT NULL CHECK (length(secret) = 20),
  confirmed_at timestamptz,
  last_step    bigint      NOT NULL DEFAULT 0,
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- Back-office clients can be disabled; a rotated secret replaces the old hash.
ALTER TABLE clients
  ADD COLUMN disabled_at       timestamptz,
  ADD COLUMN secret_rotated_at timestamptz;

-- Administrative actions of every service (docs/adr/0016-operators.md): the other
-- services send them as `audit.recorded` events (exactly once through `inbox`), identity's
-- own and the operator command's are written in the transaction of the action. Rows are
-- only ever added.
CREATE TABLE audit_log (
  id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant      text        NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  at          timestamptz NOT NULL DEFAULT now(),
  service     text        NOT NULL,
  actor       text        NOT NULL,
  session_ref text        NOT NULL DEFAULT '',
  action      text        NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
  targets     jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(targets) = 'object'),
  outcome     text        NOT NULL CHECK (outcome IN ('succeeded', 'refused', 'failed')),
  request_id  text        NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_newest ON audit_log (tenant, id DESC);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
