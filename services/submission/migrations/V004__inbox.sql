-- Events this service consumed (payment.succeeded), for exactly-once effects.
CREATE TABLE inbox (
  event_id    text        PRIMARY KEY,
  topic       text        NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
