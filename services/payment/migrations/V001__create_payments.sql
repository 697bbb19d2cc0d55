-- Payments. Provider data, event history and refunds follow.
CREATE TABLE payments (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant          text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  party_id        uuid NOT NULL,
  party_kind      text NOT NULL CHECK (party_kind IN ('person', 'organisation')),
  submission_id   text NOT NULL,
  amount_minor    bigint NOT NULL CHECK (amount_minor > 0),
  currency        text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  description     text NOT NULL,
  state           text NOT NULL DEFAULT 'created'
                  CHECK (state IN ('created', 'started', 'submitted', 'success', 'failed', 'cancelled', 'error')),
  idempotency_key text NOT NULL,
  -- What the first request asked for: a repeat with the same key must ask the same.
  request_fingerprint text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT payments_idempotency UNIQUE (tenant, idempotency_key)
);

CREATE INDEX payments_by_submission ON payments (tenant, submission_id);
