-- Enrolling a second factor needs a one-time code the operator command printed for the
-- account (grant of an administrative role, reset of a lost factor), handed over outside
-- the platform: the password alone enrols nothing. Only its SHA-256 is kept.
CREATE TABLE totp_enrolment_codes (
  account_id uuid        PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
  code_hash  bytea       NOT NULL CHECK (length(code_hash) = 32),
  expires_at timestamptz NOT NULL
);
