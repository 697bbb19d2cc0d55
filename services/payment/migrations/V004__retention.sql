-- Retention of cash records: a payment is kept ten years after the end of the year of its
-- last change (its payment, or a later refund; Europe/Berlin), then anonymised: the party
-- and the provider's references go, amounts and states stay. retain_until is the last day
-- it is kept, kept current by the trigger below on every change.
ALTER TABLE payments
  ADD COLUMN retain_until  date,
  ADD COLUMN anonymised_at timestamptz,
  ALTER COLUMN party_id DROP NOT NULL,
  ADD CONSTRAINT payments_anonymised CHECK (anonymised_at IS NULL OR party_id IS NULL);

CREATE FUNCTION payments_retain_until() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.anonymised_at IS NULL THEN
    NEW.retain_until := make_date(extract(year FROM NEW.updated_at AT TIME ZONE 'Europe/Berlin')::int + 10, 12, 31);
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER payments_retention BEFORE INSERT OR UPDATE ON payments
  FOR EACH ROW EXECUTE FUNCTION payments_retain_until();

UPDATE payments SET retain_until =
  make_date(extract(year FROM updated_at AT TIME ZONE 'Europe/Berlin')::int + 10, 12, 31);
ALTER TABLE payments ALTER COLUMN retain_until SET NOT NULL;

-- The retention job's work list.
CREATE INDEX payments_retention ON payments (retain_until) WHERE anonymised_at IS NULL;
-- The party's retained records.
CREATE INDEX payments_party ON payments (tenant, party_id) WHERE anonymised_at IS NULL;

-- The history stays append-only, with one exception: the retention job, marked by the
-- transaction's setting stadtportal.retention = 'on', removes the provider's reference
-- from an event's detail; nothing else of it changes.
CREATE OR REPLACE FUNCTION payment_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND current_setting('stadtportal.retention', true) = 'on'
     AND (NEW.payment_id, NEW.seq, NEW.state, NEW.reason, NEW.source, NEW.at)
         IS NOT DISTINCT FROM (OLD.payment_id, OLD.seq, OLD.state, OLD.reason, OLD.source, OLD.at)
     AND NEW.detail = OLD.detail - 'provider_ref' THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'payment_events is append-only';
END
$$;
