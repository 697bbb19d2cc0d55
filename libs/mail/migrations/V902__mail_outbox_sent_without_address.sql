-- A mail sent (or refused for good) keeps no address: the address is the person's, and
-- the row outlives the need for it (libs/mail clears it when it marks the row). Rows
-- marked before that lose theirs here.
UPDATE mail_outbox SET recipient = '' WHERE sent_at IS NOT NULL OR next_attempt_at = 'infinity';
