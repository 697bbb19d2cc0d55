-- Passwords (Argon2id, parameters inside each hash), roles, e-mail tokens and the
-- outbox of mails to send.
ALTER TABLE accounts
  ADD COLUMN password_hash     text,
  ADD COLUMN email_verified_at timestamptz,
  ADD COLUMN roles             text[] NOT NULL DEFAULT '{}';

-- Single-use tokens sent by e-mail; only their SHA-256 is stored.
CREATE TABLE email_tokens (
  token_hash bytea PRIMARY KEY,
  tenant     text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  purpose    text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
  expires_at timestamptz NOT NULL,
  used_at    timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_tokens_expiry ON email_tokens (expires_at);

-- Mails are written in the same transaction as the change that causes them and sent
-- by a background sender, retried with backoff; the body is cleared once sent.
CREATE TABLE mail_outbox (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant          text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  recipient       text NOT NULL,
  subject         text NOT NULL,
  body            text,
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  claimed_until   timestamptz,
  sent_at         timestamptz,
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mail_outbox_pending ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;
