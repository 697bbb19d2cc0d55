-- 1,000,000 submissions over 50,000 parties (20 each), for bench/my-submissions.
-- Party n has the id 00000000-0000-4000-8000-<n as 12 digits>; statuses spread like a
-- city's year. Run in the submission schema; idempotent (skips when already seeded).
DO $$
BEGIN
  IF (SELECT count(*) FROM submissions WHERE idempotency_key LIKE 'bench-%') >= 1000000 THEN
    RAISE NOTICE 'bench data already seeded';
    RETURN;
  END IF;
  DELETE FROM submission_history WHERE submission_id IN (SELECT id FROM submissions WHERE idempotency_key LIKE 'bench-%');
  DELETE FROM submissions WHERE idempotency_key LIKE 'bench-%';
  INSERT INTO submissions (id, tenant, party_id, account_id, service_id, form_version, reference, status, data,
                           fee_minor, fee_currency, draft_id, idempotency_key, submitted_at)
  SELECT gen_random_uuid(), '09564000',
         ('00000000-0000-4000-8000-' || lpad(((i % 50000) + 1)::text, 12, '0'))::uuid,
         ('00000000-0000-4000-8000-' || lpad(((i % 50000) + 1)::text, 12, '0'))::uuid,
         (ARRAY['civil-registry-certificate', 'residential-parking-permit', 'library-fee-payment',
                'dog-tax-registration', 'change-of-address', 'contact-person-report'])[1 + i % 6],
         1, 'BENCH-' || i,
         (ARRAY['submitted', 'delivered', 'received_by_department', 'in_progress', 'approved', 'approved',
                'rejected', 'closed', 'closed', 'withdrawn'])[1 + i % 10],
         '{"note": "bench"}', 0, 'EUR', gen_random_uuid(), 'bench-' || i,
         now() - make_interval(mins => i % 525600)
  FROM generate_series(1, 1000000) AS i;
  ANALYZE submissions;
END
$$;
