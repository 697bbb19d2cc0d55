-- Mailbox messages. Threads, notices, attachments and read receipts follow.
CREATE TABLE messages (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- Insertion order, the stable sort key for paging.
  seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  tenant      text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  party_id    uuid NOT NULL,
  party_kind  text NOT NULL CHECK (party_kind IN ('person', 'organisation')),
  sender_kind text NOT NULL CHECK (sender_kind IN ('citizen', 'department', 'system')),
  subject     text NOT NULL,
  body        text NOT NULL,
  message_key text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT messages_key_unique UNIQUE (tenant, message_key)
);

CREATE INDEX messages_by_party ON messages (tenant, party_id, seq DESC);
