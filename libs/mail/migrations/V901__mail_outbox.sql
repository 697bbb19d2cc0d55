-- The table of libs/mail, in every service that sends mail: mails queued in the
-- transaction of a change, sent by a background relay, retried with backoff; the body is
-- cleared once sent. IF NOT EXISTS: services created it in their own migrations before
-- this one existed (docs/adr/0018-event-contracts.md).
CREATE TABLE IF NOT EXISTS mail_outbox (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant          text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  recipient       text NOT NULL,
  subject         text NOT NULL,
  body            text,
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  claimed_until   timestamptz,
  sent_at         timestamptz,
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS mail_outbox_pending ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;
