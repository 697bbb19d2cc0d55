-- The OpenID Provider for partner portals (docs/openid-provider.md).

-- Signing keys (RS256, RSA 2048). The current key is the newest whose active_from has
-- passed; a later one is published ahead of use; older ones stay published until every
-- token they signed has expired, then the rotation job deletes them.
CREATE TABLE op_signing_keys (
  kid            text        PRIMARY KEY CHECK (kid ~ '^[A-Za-z0-9_-]{1,64}$'),
  -- The public key as a JWK (kty, n, e, kid, alg, use).
  public_jwk     jsonb       NOT NULL,
  -- The private key (PKCS#8 PEM) sealed with libsodium secretbox under a key derived from
  -- STADTPORTAL_OP_SECRET: base64 of nonce ∥ ciphertext. Never stored in the clear.
  private_sealed text        NOT NULL,
  active_from    timestamptz NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX op_signing_keys_active_from ON op_signing_keys (active_from);

-- What a person allowed a partner portal to receive, per account and client.
CREATE TABLE op_consents (
  tenant       text        NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  account_id   uuid        NOT NULL,
  client_id    uuid        NOT NULL REFERENCES partner_clients (id) ON DELETE CASCADE,
  scopes       text[]      NOT NULL CHECK (cardinality(scopes) BETWEEN 1 AND 20),
  consented_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account_id, client_id)
);
CREATE INDEX op_consents_tenant ON op_consents (tenant, account_id);

-- Back-channel logouts to deliver to partner portals, retried with backoff for a day. The
-- logout token is signed at each attempt from the pairwise subject and the session's sid
-- (no other personal data).
CREATE TABLE op_backchannel_deliveries (
  id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant       text        NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  client_id    uuid        NOT NULL REFERENCES partner_clients (id) ON DELETE CASCADE,
  uri          text        NOT NULL CHECK (length(uri) BETWEEN 1 AND 512),
  subject      text        NOT NULL CHECK (length(subject) BETWEEN 1 AND 100),
  sid          text        NOT NULL CHECK (length(sid) BETWEEN 0 AND 100),
  attempts     integer     NOT NULL DEFAULT 0,
  next_at      timestamptz NOT NULL DEFAULT now(),
  last_error   text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz,
  gave_up_at   timestamptz
);
CREATE INDEX op_backchannel_deliveries_due ON op_backchannel_deliveries (next_at)
  WHERE delivered_at IS NULL AND gave_up_at IS NULL;
