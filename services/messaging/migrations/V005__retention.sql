-- Retention: a thread is kept until its retain_until (ten years after its last message),
-- then the retention job deletes it with its messages and their files. Messages stay
-- immutable and undeletable for everything else: only a transaction that sets
-- stadtportal.retention = 'on' (the job's) may delete them.
CREATE OR REPLACE FUNCTION messages_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF current_setting('stadtportal.retention', true) = 'on' THEN
      RETURN OLD;
    END IF;
    RAISE EXCEPTION 'messages are not deleted';
  END IF;
  IF (NEW.body, NEW.subject, NEW.notice, NEW.sender_kind, NEW.thread_id)
     IS DISTINCT FROM (OLD.body, OLD.subject, OLD.notice, OLD.sender_kind, OLD.thread_id)
     OR (OLD.first_read_at IS NOT NULL AND NEW.first_read_at IS DISTINCT FROM OLD.first_read_at) THEN
    RAISE EXCEPTION 'messages are immutable';
  END IF;
  RETURN NEW;
END
$$;

-- The retention job's work list.
CREATE INDEX threads_retention ON threads (retain_until);
