-- The erasure of a person (party.erasure_requested) deletes the person's payments that
-- are no cash record (no money moved) with their history. The history stays append-only
-- for everything else: besides the retention's one change (V004), a row may be deleted
-- only in an erasure's transaction (stadtportal.erasure) and only if its payment never
-- succeeded.
CREATE OR REPLACE FUNCTION payment_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND current_setting('stadtportal.retention', true) = 'on'
     AND (NEW.payment_id, NEW.seq, NEW.state, NEW.reason, NEW.source, NEW.at)
         IS NOT DISTINCT FROM (OLD.payment_id, OLD.seq, OLD.state, OLD.reason, OLD.source, OLD.at)
     AND NEW.detail = OLD.detail - 'provider_ref' THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'DELETE' AND current_setting('stadtportal.erasure', true) = 'on'
     AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = OLD.payment_id
                     AND (p.state = 'success' OR EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = p.id))) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'payment_events is append-only';
END
$$;
