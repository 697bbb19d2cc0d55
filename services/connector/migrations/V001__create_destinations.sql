-- Delivery destinations (the departments' back-office systems). Deliveries, attempts
-- and dead letters follow.
CREATE TABLE destinations (
  tenant       text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  id           text NOT NULL CHECK (id ~ '^[a-z][a-z0-9-]{0,63}$'),
  name         text NOT NULL,
  mode         text NOT NULL CHECK (mode IN ('push', 'pull')),
  endpoint_url text NOT NULL DEFAULT '',
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, id),
  CONSTRAINT push_needs_https CHECK (mode <> 'push' OR endpoint_url LIKE 'https://%')
);
