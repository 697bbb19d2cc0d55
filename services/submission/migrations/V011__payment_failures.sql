-- Payments that ended without money (payment.failed), for the KPIs' payment success rate
-- and provider errors (docs/adr/0027-kpis-precomputed.md). No ids: the consumer's inbox
-- keeps each event once, and a row names neither the person nor the submission.
CREATE TABLE payment_failures (
  id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant      text        NOT NULL,
  service_id  text        NOT NULL,
  provider    text        NOT NULL,
  outcome     text        NOT NULL CHECK (outcome IN ('declined', 'cancelled', 'expired', 'provider_error')),
  occurred_at timestamptz NOT NULL
);
CREATE INDEX payment_failures_service ON payment_failures (tenant, service_id, occurred_at);

CREATE FUNCTION kpi_mark_payment_failure() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM kpi_mark(NEW.tenant, NEW.service_id, (NEW.occurred_at AT TIME ZONE 'UTC')::date);
  RETURN NULL;
END
$$;
CREATE TRIGGER payment_failures_kpi AFTER INSERT ON payment_failures FOR EACH ROW
  EXECUTE FUNCTION kpi_mark_payment_failure();
