-- applied as ce4017e2bc16c9e6
-- (with outbox and inbox, which libs/events/migrations now creates)
-- Deliveries with their attempts and dead letters, per-destination circuit breakers,
-- signing secrets, the access log of back-office reads, and the event tables.
ALTER TABLE destinations DROP CONSTRAINT push_needs_https;  -- Enforced by the service (http only for loopback tests).
ALTER TABLE destinations
  ADD COLUMN secret          text NOT NULL DEFAULT '',
  ADD COLUMN previous_secret text NOT NULL DEFAULT '';

CREATE TABLE deliveries (
  submission_id   uuid        PRIMARY KEY,
  tenant          text        NOT NULL,
  destination     text        NOT NULL,
  party_id        uuid        NOT NULL,
  reference       text        NOT NULL,
  service_id      text        NOT NULL,
  state           text        NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'delivered', 'acknowledged', 'dead')),
  attempts        integer     NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error      text        NOT NULL DEFAULT '',
  delayed_reported boolean    NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  delivered_at    timestamptz,
  acknowledged_at timestamptz
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_destination ON deliveries (tenant, destination, state, created_at);

CREATE TABLE delivery_attempts (
  id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  submission_id uuid        NOT NULL REFERENCES deliveries (submission_id),
  at            timestamptz NOT NULL DEFAULT now(),
  http_status   integer     NOT NULL DEFAULT 0,
  error         text        NOT NULL DEFAULT '',
  duration_ms   integer     NOT NULL DEFAULT 0
);
CREATE INDEX delivery_attempts_submission ON delivery_attempts (submission_id, id);

CREATE TABLE breakers (
  tenant               text        NOT NULL,
  destination          text        NOT NULL,
  consecutive_failures integer     NOT NULL DEFAULT 0,
  open_until           timestamptz,
  PRIMARY KEY (tenant, destination)
);

-- Every read of personal data by a back office, for the citizen's access log.
CREATE TABLE access_log (
  id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant        text        NOT NULL,
  party_id      uuid        NOT NULL,
  submission_id uuid        NOT NULL,
  client_id     text        NOT NULL,
  action        text        NOT NULL,
  at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX access_log_party ON access_log (tenant, party_id, at);
