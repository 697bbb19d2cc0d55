-- The tables of libs/events, in every service that publishes or consumes events:
-- `outbox`, the events written in the transaction of a change, moved to their streams by
-- the relay; `inbox`, the ids of the events consumed, for their exactly-once effect.
-- IF NOT EXISTS: services created them in their own migrations before this one existed
-- (docs/adr/0018-event-contracts.md); a database that has them keeps them as they are.
CREATE TABLE IF NOT EXISTS outbox (
  id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  topic        text        NOT NULL,
  key          text        NOT NULL,
  payload      jsonb       NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE IF NOT EXISTS inbox (
  event_id    text        PRIMARY KEY,
  topic       text        NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
