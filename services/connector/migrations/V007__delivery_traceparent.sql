-- The W3C traceparent of the change that created the delivery (the citizen's submit): the
-- delivery worker continues that trace, and the department's webhook receives it.
ALTER TABLE deliveries ADD COLUMN traceparent text;
