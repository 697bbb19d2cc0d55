-- A year of KPI figures for 360 online services (docs/adr/0027-kpis-precomputed.md):
-- 60 figures a day each, 7.9 million rows, written day by day as the KPI job writes them
-- (so one service's year is spread over the table, as in production). The table is the
-- submission service's kpi_daily, in a schema of its own.
DROP SCHEMA IF EXISTS bench_kpis CASCADE;
CREATE SCHEMA bench_kpis;
CREATE TABLE bench_kpis.kpi_daily (
  tenant text NOT NULL, service_id text NOT NULL, day date NOT NULL, metric text NOT NULL,
  dim text NOT NULL DEFAULT '', value double precision NOT NULL, citizens bigint NOT NULL,
  PRIMARY KEY (tenant, service_id, day, metric, dim));
INSERT INTO bench_kpis.kpi_daily
  SELECT '09564000', 'service-' || s, d::date, 'figure_' || m, '', m * 3, 10
  FROM generate_series('2025-01-01'::date, '2025-12-31', '1 day') d, generate_series(1, 360) s,
       generate_series(1, 60) m
  ORDER BY d, s, m;
ANALYZE bench_kpis.kpi_daily;
