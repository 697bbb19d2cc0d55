-- Log-in accounts. Passwords, sessions and external identities follow in later migrations.
CREATE TABLE accounts (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant           text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  email            text NOT NULL,
  email_normalized text NOT NULL,
  display_name     text NOT NULL,
  language         text NOT NULL CHECK (language IN ('de', 'en')),
  state            text NOT NULL DEFAULT 'pending_verification'
                   CHECK (state IN ('pending_verification', 'active', 'locked')),
  created_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT accounts_email_unique UNIQUE (tenant, email_normalized)
);
