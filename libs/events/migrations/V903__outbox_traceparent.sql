-- The W3C traceparent of the request (or event) that made the change: the relay passes it
-- on with the event, and its consumers continue the same trace (docs/operations.md,
-- "Tracing a request").
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS traceparent text;
