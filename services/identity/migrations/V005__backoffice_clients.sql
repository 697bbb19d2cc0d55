-- OAuth 2.0 clients of the departments' back offices, one destination each.
CREATE TABLE clients (
  client_id   text        PRIMARY KEY,
  tenant      text        NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  destination text        NOT NULL CHECK (destination ~ '^[a-z][a-z0-9-]{0,63}$'),
  department  text        NOT NULL,
  -- SHA-256 (hex) of the secret (256 random bits) for client_secret clients.
  secret_hash text,
  -- base64 Ed25519 public key for private_key_jwt clients.
  public_key  text,
  created_by  text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CHECK ((secret_hash IS NULL) <> (public_key IS NULL))
);
