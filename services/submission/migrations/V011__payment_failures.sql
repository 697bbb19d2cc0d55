-- Payments that ended without money (payment.failed), for the KPIs' payment success rate
-- and provider errors (docs/adr/0027-kpis-precomputed.md). A row keeps the submission's
-- id (its citizens are distinct submissions: one person failing five times is one
-- citizen, as with the funnel's draft ids) and only the UTC day, never the moment, so it
-- cannot be matched against the payment service's records. The consumer's inbox keeps
-- each event once.
CREATE TABLE payment_failures (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant        text   NOT NULL,
  service_id    text   NOT NULL,
  submission_id uuid   NOT NULL,
  provider      text   NOT NULL,
  outcome       text   NOT NULL CHECK (outcome IN ('declined', 'cancelled', 'expired', 'provider_error')),
  day           date   NOT NULL
);
CREATE INDEX payment_failures_service ON payment_failures (tenant, service_id, day);

CREATE FUNCTION kpi_mark_payment_failure() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM kpi_mark(NEW.tenant, NEW.service_id, NEW.day);
  RETURN NULL;
END
$$;
CREATE TRIGGER payment_failures_kpi AFTER INSERT ON payment_failures FOR EACH ROW
  EXECUTE FUNCTION kpi_mark_payment_failure();
