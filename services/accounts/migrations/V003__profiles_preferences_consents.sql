-- Profile attributes with their provenance, notification preferences and consents.
CREATE TABLE profile_attributes (
  tenant     text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  party_id   uuid NOT NULL REFERENCES parties (id) ON DELETE CASCADE,
  name       text NOT NULL,
  value      text NOT NULL,
  source     text NOT NULL CHECK (source IN ('self', 'provider')),
  provider   text NOT NULL DEFAULT '',
  assurance  text NOT NULL DEFAULT '' CHECK (assurance IN ('', 'low', 'substantial', 'high')),
  vouched_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (party_id, name),
  CONSTRAINT provider_vouches CHECK (source = 'self' OR (provider <> '' AND vouched_at IS NOT NULL))
);

CREATE TABLE preferences (
  party_id        uuid PRIMARY KEY REFERENCES parties (id) ON DELETE CASCADE,
  tenant          text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  language        text NOT NULL DEFAULT 'de' CHECK (language IN ('de', 'en')),
  email_messages  boolean NOT NULL DEFAULT true,
  email_status    boolean NOT NULL DEFAULT true,
  email_reminders boolean NOT NULL DEFAULT true,
  updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consents (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant       text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  party_id     uuid NOT NULL REFERENCES parties (id) ON DELETE CASCADE,
  purpose      text NOT NULL CHECK (purpose ~ '^[a-z][a-z0-9-]{0,63}$'),
  text_version text NOT NULL,
  given_at     timestamptz NOT NULL DEFAULT now(),
  withdrawn_at timestamptz
);
CREATE INDEX consents_by_party ON consents (party_id, given_at);
