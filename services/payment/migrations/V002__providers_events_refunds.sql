-- applied as f387ce2f1bb506c0
-- (with outbox and inbox, which libs/events/migrations now creates)
-- Provider data, the append-only event history, webhook dedupe, refunds, and the
-- outbox/inbox of events between services.
ALTER TABLE payments
  ADD COLUMN reference          text        NOT NULL DEFAULT '',
  ADD COLUMN provider           text        NOT NULL DEFAULT 'testpay',
  ADD COLUMN provider_ref       text        NOT NULL DEFAULT '',
  ADD COLUMN next_url           text        NOT NULL DEFAULT '',
  ADD COLUMN finished           boolean     NOT NULL DEFAULT false,
  ADD COLUMN reason             text        NOT NULL DEFAULT '',
  ADD COLUMN refunded_minor     bigint      NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
  ADD COLUMN updated_at         timestamptz NOT NULL DEFAULT now(),
  ADD CONSTRAINT payments_refund_bound CHECK (refunded_minor <= amount_minor),
  ADD CONSTRAINT payments_finished CHECK (finished = (state IN ('success', 'failed', 'cancelled', 'error')));

-- The reconciliation job's work list.
CREATE INDEX payments_unfinished ON payments (updated_at) WHERE NOT finished;
CREATE INDEX payments_provider_ref ON payments (provider, provider_ref);
-- Never two successful payments for one submission.
CREATE UNIQUE INDEX payments_one_success ON payments (tenant, submission_id)
  WHERE state = 'success' AND reason <> 'duplicate_refunded';

CREATE TABLE payment_events (
  payment_id uuid        NOT NULL REFERENCES payments (id),
  seq        bigint      GENERATED ALWAYS AS IDENTITY,
  state      text        NOT NULL,
  reason     text        NOT NULL DEFAULT '',
  source     text        NOT NULL,
  detail     jsonb       NOT NULL DEFAULT '{}',
  at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (payment_id, seq)
);
-- History is append-only.
CREATE FUNCTION payment_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'payment_events is append-only';
END
$$;
CREATE TRIGGER payment_events_no_change BEFORE UPDATE OR DELETE ON payment_events
  FOR EACH ROW EXECUTE FUNCTION payment_events_append_only();

CREATE TABLE webhook_events (
  provider    text        NOT NULL,
  event_id    text        NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (provider, event_id)
);

CREATE TABLE refunds (
  id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  payment_id   uuid        NOT NULL REFERENCES payments (id),
  amount_minor bigint      NOT NULL CHECK (amount_minor > 0),
  state        text        NOT NULL CHECK (state IN ('submitted', 'success', 'error')),
  reason       text        NOT NULL DEFAULT '',
  provider_ref text        NOT NULL DEFAULT '',
  requested_by text        NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_payment ON refunds (payment_id);
