-- applied as 21dde8cdf93b6ef9
-- (with inbox and mail_outbox, which libs/events/migrations and libs/mail/migrations now create)
-- Threads, notices, read receipts, attachments, notification contacts and mail.
CREATE TABLE threads (
  id              uuid        PRIMARY KEY,
  seq             bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
  tenant          text        NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  party_id        uuid        NOT NULL,
  party_kind      text        NOT NULL CHECK (party_kind IN ('person', 'organisation')),
  subject         text        NOT NULL,
  submission_id   text        NOT NULL DEFAULT '',
  department      text        NOT NULL DEFAULT '',
  archived_at     timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  last_message_at timestamptz NOT NULL DEFAULT now(),
  -- Nothing is deleted before this (archiving only hides).
  retain_until    timestamptz NOT NULL DEFAULT now() + interval '10 years'
);
CREATE INDEX threads_mailbox ON threads (tenant, party_id, last_message_at DESC, id);

-- Messages written before threads existed become threads of their own.
INSERT INTO threads (id, tenant, party_id, party_kind, subject, created_at, last_message_at)
SELECT id, tenant, party_id, party_kind, subject, created_at, created_at FROM messages;

ALTER TABLE messages
  ADD COLUMN thread_id     uuid REFERENCES threads (id),
  ADD COLUMN sender_name   text        NOT NULL DEFAULT '',
  ADD COLUMN notice        boolean     NOT NULL DEFAULT false,
  ADD COLUMN first_read_at timestamptz;
UPDATE messages SET thread_id = id;
ALTER TABLE messages ALTER COLUMN thread_id SET NOT NULL;
CREATE INDEX messages_thread ON messages (thread_id, seq);
-- Department inboxes read citizen replies in order.
CREATE INDEX messages_replies ON messages (tenant, seq) WHERE sender_kind = 'citizen';

-- Messages are immutable except for the first read.
CREATE FUNCTION messages_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'messages are not deleted';
  END IF;
  IF (NEW.body, NEW.subject, NEW.notice, NEW.sender_kind, NEW.thread_id)
     IS DISTINCT FROM (OLD.body, OLD.subject, OLD.notice, OLD.sender_kind, OLD.thread_id)
     OR (OLD.first_read_at IS NOT NULL AND NEW.first_read_at IS DISTINCT FROM OLD.first_read_at) THEN
    RAISE EXCEPTION 'messages are immutable';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER messages_no_change BEFORE UPDATE OR DELETE ON messages
  FOR EACH ROW EXECUTE FUNCTION messages_immutable();

CREATE TABLE message_attachments (
  id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  message_id uuid        NOT NULL REFERENCES messages (id),
  tenant     text        NOT NULL,
  party_id   uuid        NOT NULL,
  filename   text        NOT NULL,
  media_type text        NOT NULL,
  size       bigint      NOT NULL,
  sha256     text        NOT NULL,
  content    bytea       NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_attachments_message ON message_attachments (message_id);

-- Where and whether to tell a party that something arrived, from identity
-- (account.verified) and accounts (preferences.changed) events.
CREATE TABLE contacts (
  party_id        uuid        PRIMARY KEY,
  tenant          text        NOT NULL,
  email           text        NOT NULL DEFAULT '',
  language        text        NOT NULL DEFAULT 'de',
  notify_messages boolean     NOT NULL DEFAULT true,
  updated_at      timestamptz NOT NULL DEFAULT now()
);
