-- The erasure of a person (party.erasure_requested) keeps this tombstone, so that a late
-- event about the person (a verified address, preferences, a reminder) does not bring a
-- contact or a thread back. Not the party's id: hex SHA-256 of "<tenant>/<party id>"
-- (libs/privacy, privacy::Tombstone).
CREATE TABLE erased_parties (
  tombstone text        PRIMARY KEY CHECK (tombstone ~ '^[0-9a-f]{64}$'),
  erased_at timestamptz NOT NULL DEFAULT now()
);
