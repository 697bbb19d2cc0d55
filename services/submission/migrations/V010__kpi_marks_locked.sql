-- The KPI marks (V009) made safe against the job: V009's triggers inserted a mark with ON
-- CONFLICT DO NOTHING, so a writer could find a mark the job was about to take and commit
-- its row after the job had computed the day, leaving it uncounted until the day's next
-- event. Now every writer holds the mark until it commits (kpi_mark below).

-- Marks a day stale so that the job cannot take the mark before the writer commits: the
-- writer holds a key-share lock on an existing mark (the job takes marks FOR UPDATE SKIP
-- LOCKED), or inserts its own, which the job sees only once the writer committed.
CREATE OR REPLACE FUNCTION kpi_mark(p_tenant text, p_service_id text, p_day date) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  LOOP
    PERFORM 1 FROM kpi_dirty_days WHERE tenant = p_tenant AND service_id = p_service_id AND day = p_day
      FOR KEY SHARE;
    EXIT WHEN FOUND;
    INSERT INTO kpi_dirty_days (tenant, service_id, day) VALUES (p_tenant, p_service_id, p_day)
      ON CONFLICT DO NOTHING;
    EXIT WHEN FOUND;
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION kpi_mark_funnel() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM kpi_mark(NEW.tenant, NEW.service_id, (NEW.occurred_at AT TIME ZONE 'UTC')::date);
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION kpi_mark_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status IN ('paid', 'received_by_department', 'approved', 'rejected') THEN
    PERFORM kpi_mark(s.tenant, s.service_id, (NEW.at AT TIME ZONE 'UTC')::date) FROM submissions s
      WHERE s.id = NEW.submission_id;
  END IF;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION kpi_mark_feedback() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM kpi_mark(s.tenant, s.service_id, (NEW.given_at AT TIME ZONE 'UTC')::date) FROM submissions s
    WHERE s.id = NEW.submission_id;
  RETURN NULL;
END
$$;
