-- The erasure of a person (party.erasure_requested): every row of the party goes, and
-- this tombstone stays, so that a late event about the party (or a call with a token
-- issued before the erasure) cannot make it again. Not the party's id: hex SHA-256 of
-- "<tenant>/<party id>" (libs/privacy, privacy::Tombstone).
CREATE TABLE erased_parties (
  tombstone text        PRIMARY KEY CHECK (tombstone ~ '^[0-9a-f]{64}$'),
  erased_at timestamptz NOT NULL DEFAULT now()
);
-- An invitation an erased person sent stays the organisation's (its addressee may still
-- answer it); it no longer names who sent it.
ALTER TABLE invitations ALTER COLUMN invited_by DROP NOT NULL;
