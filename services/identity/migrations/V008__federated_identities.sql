-- Log-in with upstream identity providers (docs/federation.md): which provider's person
-- is which account. An account made by a provider log-in has no e-mail address of its own
-- until the person gives one (an address a provider asserts goes to the profile only).
ALTER TABLE accounts
  ALTER COLUMN email DROP NOT NULL,
  ALTER COLUMN email_normalized DROP NOT NULL;

CREATE TABLE federated_identities (
  tenant        text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  provider      text NOT NULL CHECK (provider ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  -- The provider's stable id of the person (SAML NameID, OpenID Connect sub).
  subject       text NOT NULL CHECK (length(subject) BETWEEN 1 AND 1024),
  account_id    uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  -- The level of the latest log-in through it.
  level         text NOT NULL CHECK (level IN ('low', 'substantial', 'high')),
  linked_at     timestamptz NOT NULL DEFAULT now(),
  last_login_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, provider, subject),
  -- One link per provider and account.
  CONSTRAINT one_link_per_provider UNIQUE (account_id, provider)
);
