-- Business KPIs (docs/operations.md, "KPIs"; docs/adr/0027-kpis-precomputed.md): daily
-- figures per tenant, online service and UTC day, precomputed by the KPI job from the
-- funnel events, the status history and the feedback. No personal data: counts only.
CREATE TABLE kpi_daily (
  tenant     text             NOT NULL,
  service_id text             NOT NULL,
  day        date             NOT NULL,
  metric     text             NOT NULL,
  dim        text             NOT NULL DEFAULT '',  -- a step, field, rating, decision or bucket bound
  value      double precision NOT NULL,
  -- How many drafts or submissions (each a citizen's) the value stands for: the
  -- small-number protection suppresses a range's cell below the threshold.
  citizens   bigint           NOT NULL,
  PRIMARY KEY (tenant, service_id, day, metric, dim)
);

-- The days whose figures are stale: every new source row marks its day in its own
-- transaction, so no row is missed whatever the order in which transactions commit; the
-- job takes the marks and computes those days anew. Late events mark their own day.
CREATE TABLE kpi_dirty_days (
  tenant     text        NOT NULL,
  service_id text        NOT NULL,
  day        date        NOT NULL,
  marked_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, service_id, day)
);

CREATE FUNCTION kpi_mark_funnel() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO kpi_dirty_days (tenant, service_id, day)
    VALUES (NEW.tenant, NEW.service_id, (NEW.occurred_at AT TIME ZONE 'UTC')::date) ON CONFLICT DO NOTHING;
  RETURN NULL;
END
$$;
CREATE TRIGGER funnel_events_kpi AFTER INSERT ON funnel_events FOR EACH ROW EXECUTE FUNCTION kpi_mark_funnel();

CREATE FUNCTION kpi_mark_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status IN ('paid', 'received_by_department', 'approved', 'rejected') THEN
    INSERT INTO kpi_dirty_days (tenant, service_id, day)
      SELECT s.tenant, s.service_id, (NEW.at AT TIME ZONE 'UTC')::date FROM submissions s WHERE s.id = NEW.submission_id
      ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER submission_history_kpi AFTER INSERT ON submission_history FOR EACH ROW
  EXECUTE FUNCTION kpi_mark_history();

CREATE FUNCTION kpi_mark_feedback() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO kpi_dirty_days (tenant, service_id, day)
    SELECT s.tenant, s.service_id, (NEW.given_at AT TIME ZONE 'UTC')::date FROM submissions s
    WHERE s.id = NEW.submission_id
    ON CONFLICT DO NOTHING;
  RETURN NULL;
END
$$;
CREATE TRIGGER feedback_kpi AFTER INSERT ON feedback FOR EACH ROW EXECUTE FUNCTION kpi_mark_feedback();

-- What computing one day reads: a draft's earlier events, and the history and feedback
-- of a day.
CREATE INDEX funnel_events_draft ON funnel_events (draft_id, event, occurred_at) WHERE draft_id IS NOT NULL;
CREATE INDEX submission_history_at ON submission_history (at);
CREATE INDEX feedback_given_at ON feedback (given_at);

-- Every day with data before this release is computed once.
INSERT INTO kpi_dirty_days (tenant, service_id, day)
  SELECT DISTINCT tenant, service_id, (occurred_at AT TIME ZONE 'UTC')::date FROM funnel_events
  UNION SELECT s.tenant, s.service_id, (h.at AT TIME ZONE 'UTC')::date FROM submission_history h
    JOIN submissions s ON s.id = h.submission_id
  UNION SELECT s.tenant, s.service_id, (f.given_at AT TIME ZONE 'UTC')::date FROM feedback f
    JOIN submissions s ON s.id = f.submission_id;
