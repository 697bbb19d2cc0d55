-- Parties: persons and organisations. Members, roles, profiles and consents follow.
CREATE TABLE parties (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant              text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  kind                text NOT NULL CHECK (kind IN ('person', 'organisation')),
  display_name        text NOT NULL,
  identity_account_id uuid,
  created_at          timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT person_has_account CHECK (kind <> 'person' OR identity_account_id IS NOT NULL),
  CONSTRAINT one_person_per_account UNIQUE (tenant, identity_account_id)
);
