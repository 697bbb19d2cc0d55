-- applied as 4e8a33b47cf76769
-- (with mail_outbox, which libs/mail/migrations now creates)
-- Organisations (details of parties of kind organisation), memberships with roles,
-- invitations by e-mail, and the mail outbox.
CREATE TABLE organisations (
  party_id        uuid PRIMARY KEY REFERENCES parties (id) ON DELETE CASCADE,
  tenant          text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  legal_form      text NOT NULL CHECK (legal_form IN ('company', 'association', 'authority')),
  register_number text NOT NULL DEFAULT '',
  street          text NOT NULL,
  house_number    text NOT NULL,
  postcode        text NOT NULL,
  city            text NOT NULL,
  country         text NOT NULL CHECK (country ~ '^[A-Z]{2}$')
);

CREATE TABLE memberships (
  tenant          text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  organisation_id uuid NOT NULL REFERENCES parties (id) ON DELETE CASCADE,
  person_id       uuid NOT NULL REFERENCES parties (id) ON DELETE CASCADE,
  role            text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
  since           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (organisation_id, person_id)
);
CREATE INDEX memberships_by_person ON memberships (tenant, person_id);

CREATE TABLE invitations (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant          text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  organisation_id uuid NOT NULL REFERENCES parties (id) ON DELETE CASCADE,
  email           text NOT NULL,
  role            text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
  token_hash      bytea NOT NULL UNIQUE,
  invited_by      uuid NOT NULL REFERENCES parties (id),
  expires_at      timestamptz NOT NULL,
  answered_at     timestamptz,
  answer          text CHECK (answer IN ('accepted', 'declined')),
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invitations_by_organisation ON invitations (organisation_id);
