-- The connector reports delivery problems; the citizen sees "delivery delayed".
ALTER TABLE submissions ADD COLUMN delivery_delayed boolean NOT NULL DEFAULT false;
