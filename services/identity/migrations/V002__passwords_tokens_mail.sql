-- applied as a5496a905fab93a0
-- (with mail_outbox, which libs/mail/migrations now creates)
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
