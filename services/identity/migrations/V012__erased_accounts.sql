-- Accounts erased (DELETE /api/v1/me), remembered without their id: privacy::Tombstone
-- (SHA-256 of tenant and account id). The operator's publish-erasure republishes an
-- erasure only for an account found here — never for an organisation's or any other id.
CREATE TABLE erased_accounts (
  tombstone  text        PRIMARY KEY CHECK (tombstone ~ '^[0-9a-f]{64}$'),
  erased_at  timestamptz NOT NULL DEFAULT now()
);
