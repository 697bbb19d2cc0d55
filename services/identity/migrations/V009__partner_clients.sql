-- Partner portals (Portalverbund) registered by tenant admins: the relying parties of the
-- OpenID Provider to come (docs/operations.md "Partner portals"). URIs are kept exactly as
-- registered; redirects will be matched against them as whole strings.
CREATE TABLE partner_clients (
  id                        uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant                    text        NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  name                      text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  redirect_uris             text[]      NOT NULL CHECK (cardinality(redirect_uris) BETWEEN 1 AND 10),
  post_logout_redirect_uris text[]      NOT NULL DEFAULT '{}' CHECK (cardinality(post_logout_redirect_uris) <= 10),
  backchannel_logout_uri    text,
  scopes                    text[]      NOT NULL CHECK ('openid' = ANY (scopes)),
  auth_method               text        NOT NULL CHECK (auth_method IN ('private_key_jwt', 'client_secret_basic')),
  -- The partner's public keys (a JWK Set) or where to fetch them, for private_key_jwt.
  jwks                      jsonb,
  jwks_uri                  text,
  -- SHA-256 (hex) of the secret (256 random bits) for client_secret_basic; never the secret.
  secret_hash               text,
  created_by                text        NOT NULL,
  disabled_at               timestamptz,
  created_at                timestamptz NOT NULL DEFAULT now(),
  updated_at                timestamptz NOT NULL DEFAULT now(),
  CHECK (CASE auth_method
           WHEN 'private_key_jwt' THEN secret_hash IS NULL AND ((jwks IS NULL) <> (jwks_uri IS NULL))
           ELSE secret_hash IS NOT NULL AND jwks IS NULL AND jwks_uri IS NULL
         END)
);
CREATE INDEX partner_clients_tenant ON partner_clients (tenant, created_at, id);
