-- What tenant administrators looked at or changed: who, when, which account, why.
CREATE TABLE admin_access_log (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant            text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  admin_account_id  uuid NOT NULL,
  action            text NOT NULL CHECK (action IN ('find', 'lock', 'unlock')),
  target_account_id uuid NOT NULL,
  reason            text NOT NULL,
  at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_access_log_by_target ON admin_access_log (tenant, target_account_id, at);

CREATE INDEX accounts_display_name ON accounts (tenant, lower(display_name));
