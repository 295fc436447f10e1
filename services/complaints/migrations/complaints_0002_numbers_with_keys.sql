-- A complaint's number is kept with its data key, in the transaction of its events, and given once. Numbers
-- given before were each a `ComplaintNumber` aggregate (services/complaints/domain.py), and stay so.
CREATE UNIQUE INDEX IF NOT EXISTS customer_keys_by_number ON customer_keys (number);
