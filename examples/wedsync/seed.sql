-- WedSync seed data: deterministic (no random(), no now()), so every load yields the same rows
-- and the same plans. Volumes: 200 suppliers, 300 venues, 5,000 weddings, 10,000 clients,
-- ~300,000 guests, 400 journeys, 2,400 journey steps, ~18,600 journey instances, 40,000 bookings.
-- Load after schema.sql. Fixed points the docs and budgets rely on: supplier 7 has more than
-- 50 clients (139, so the clients endpoint paginates), wedding 42 has 35 guests, client 8 has
-- two journeys of six steps, and supplier 7 has three bookings on Saturday 2026-06-13.

INSERT INTO suppliers (id, name, category, city, created_at)
SELECT s,
       (ARRAY['Golden', 'Willow', 'Ivory', 'Meadow', 'Silver', 'Juniper', 'Harbour', 'Bramble',
              'Linen', 'Rosewood', 'Oak', 'Velvet', 'Hazel', 'Saffron', 'Thistle', 'Amber'])
           [1 + (s * 7) % 16]
       || ' '
       || (ARRAY['Photography', 'Flowers', 'Kitchen', 'Band', 'Planning', 'Styling'])[1 + s % 6]
       || ' ' || s,
       (ARRAY['photographer', 'florist', 'caterer', 'band', 'planner', 'venue-styling'])[1 + s % 6],
       (ARRAY['London', 'Bristol', 'Leeds', 'York', 'Bath', 'Oxford', 'Cardiff', 'Edinburgh',
              'Glasgow', 'Brighton', 'Manchester', 'Norwich'])[1 + (s * 5) % 12],
       timestamptz '2019-01-01 09:00:00+00' + (s * 3) * interval '1 day'
FROM generate_series(1, 200) AS s;

INSERT INTO venues (id, name, city, capacity)
SELECT v,
       (ARRAY['Hall', 'Barn', 'Manor', 'Abbey', 'Orangery', 'Castle', 'Boathouse', 'Gardens'])
           [1 + v % 8]
       || ' at '
       || (ARRAY['Ashcombe', 'Belmont', 'Carrow', 'Dunmore', 'Elmstead', 'Fairleigh', 'Glenholm',
                 'Hartwell', 'Kelling', 'Lowther'])[1 + (v * 3) % 10]
       || ' ' || v,
       (ARRAY['London', 'Bristol', 'Leeds', 'York', 'Bath', 'Oxford', 'Cardiff', 'Edinburgh',
              'Glasgow', 'Brighton', 'Manchester', 'Norwich'])[1 + (v * 7) % 12],
       60 + (v * 37) % 241
FROM generate_series(1, 300) AS v;

-- Mostly Saturdays from 2025-04-05 over 130 weeks; every tenth wedding is on the Friday before.
INSERT INTO weddings (id, couple_name, wedding_date, venue_id)
SELECT w,
       n.first[1 + (w * 7) % 40] || ' & ' || n.first[1 + (w * 13 + 11) % 40] || ' '
       || n.last[1 + (w * 17) % 40],
       date '2025-04-05' + 7 * ((w * 37) % 130) - CASE WHEN w % 10 = 0 THEN 1 ELSE 0 END,
       1 + (w * 53) % 300
FROM generate_series(1, 5000) AS w,
     (SELECT ARRAY['Olivia', 'Amelia', 'Isla', 'Ava', 'Mia', 'Ivy', 'Lily', 'Isabella', 'Rosie',
                   'Sophia', 'Grace', 'Freya', 'Ella', 'Evie', 'Poppy', 'Chloe', 'Emily', 'Alice',
                   'Ruby', 'Harper', 'Noah', 'Oliver', 'George', 'Leo', 'Arthur', 'Muhammad',
                   'Oscar', 'Harry', 'Archie', 'Jack', 'Henry', 'Charlie', 'Freddie', 'Theo',
                   'Thomas', 'Alfie', 'Isaac', 'Lucas', 'Samuel', 'Joshua'] AS first,
             ARRAY['Smith', 'Jones', 'Taylor', 'Brown', 'Williams', 'Wilson', 'Johnson', 'Davies',
                   'Patel', 'Robinson', 'Wright', 'Thompson', 'Evans', 'Walker', 'White',
                   'Roberts', 'Green', 'Hall', 'Thomas', 'Clarke', 'Jackson', 'Wood', 'Harris',
                   'Edwards', 'Turner', 'Martin', 'Cooper', 'Hill', 'Ward', 'Hughes', 'Moore',
                   'Clark', 'King', 'Harrison', 'Lewis', 'Baker', 'Lee', 'Allen', 'Morris',
                   'Khan'] AS last) AS n;

-- Supplier popularity is skewed like real life: frac(c * golden ratio) squared puts more clients
-- on low supplier ids (supplier 1 has ~700, supplier 7 ~140, supplier 200 ~25).
INSERT INTO clients (id, supplier_id, wedding_id, name, email, phone, status, created_at)
SELECT c,
       1 + floor(200 * power(c * 0.6180339887 - floor(c * 0.6180339887), 2))::integer,
       w.id,
       w.couple_name,
       lower(split_part(w.couple_name, ' ', 1)) || '.' || c || '@example.com',
       '+44 7700 ' || lpad(((c * 7919) % 1000000)::text, 6, '0'),
       CASE WHEN w.wedding_date < date '2025-10-01' THEN 'completed'
            WHEN c % 7 = 0 THEN 'enquiry'
            ELSE 'booked' END,
       (w.wedding_date - (120 + c % 300))::timestamp AT TIME ZONE 'UTC' + interval '10 hours'
FROM generate_series(1, 10000) AS c
JOIN weddings AS w ON w.id = 1 + (c - 1) % 5000;

-- 20 to 100 guests per wedding (60 on average); ids leave room for 100 per wedding.
INSERT INTO guests (id, wedding_id, name, rsvp, table_no)
SELECT (w - 1) * 100 + g,
       w,
       n.first[1 + (w * 7 + g * 13) % 40] || ' ' || n.last[1 + (w * 11 + g * 3 + g / 40) % 40],
       CASE WHEN (w * 3 + g * 7) % 10 < 6 THEN 'yes'
            WHEN (w * 3 + g * 7) % 10 < 8 THEN 'no'
            ELSE 'pending' END,
       CASE WHEN (w * 3 + g * 7) % 10 < 6 THEN 1 + (g - 1) / 10 END
FROM generate_series(1, 5000) AS w
CROSS JOIN LATERAL generate_series(1, 20 + (w * 37) % 81) AS g,
     (SELECT ARRAY['Olivia', 'Amelia', 'Isla', 'Ava', 'Mia', 'Ivy', 'Lily', 'Isabella', 'Rosie',
                   'Sophia', 'Grace', 'Freya', 'Ella', 'Evie', 'Poppy', 'Chloe', 'Emily', 'Alice',
                   'Ruby', 'Harper', 'Noah', 'Oliver', 'George', 'Leo', 'Arthur', 'Muhammad',
                   'Oscar', 'Harry', 'Archie', 'Jack', 'Henry', 'Charlie', 'Freddie', 'Theo',
                   'Thomas', 'Alfie', 'Isaac', 'Lucas', 'Samuel', 'Joshua'] AS first,
             ARRAY['Smith', 'Jones', 'Taylor', 'Brown', 'Williams', 'Wilson', 'Johnson', 'Davies',
                   'Patel', 'Robinson', 'Wright', 'Thompson', 'Evans', 'Walker', 'White',
                   'Roberts', 'Green', 'Hall', 'Thomas', 'Clarke', 'Jackson', 'Wood', 'Harris',
                   'Edwards', 'Turner', 'Martin', 'Cooper', 'Hill', 'Ward', 'Hughes', 'Moore',
                   'Clark', 'King', 'Harrison', 'Lewis', 'Baker', 'Lee', 'Allen', 'Morris',
                   'Khan'] AS last) AS n;

-- Two journey templates per supplier, six steps each.
INSERT INTO journeys (id, supplier_id, name)
SELECT (s - 1) * 2 + k, s, (ARRAY['Enquiry to booking', 'Planning to wedding day'])[k]
FROM generate_series(1, 200) AS s, generate_series(1, 2) AS k;

INSERT INTO journey_steps (id, journey_id, position, title, offset_days)
SELECT (j - 1) * 6 + p,
       j,
       p,
       CASE WHEN j % 2 = 1
            THEN (ARRAY['Reply to enquiry', 'Send brochure', 'Book a call', 'Send quote',
                        'Send contract', 'Deposit received'])[p]
            ELSE (ARRAY['Planning questionnaire', 'Mood board', 'Final numbers',
                        'Timeline confirmed', 'Final payment', 'Wedding day'])[p] END,
       (ARRAY[0, 2, 7, 10, 14, 21])[p] * CASE WHEN j % 2 = 1 THEN 1 ELSE 6 END
FROM generate_series(1, 400) AS j, generate_series(1, 6) AS p;

-- Every client runs the enquiry journey; booked and completed clients also run the planning one.
-- current_step 7 means all six steps are done.
INSERT INTO journey_instances (id, client_id, journey_id, started_on, current_step)
SELECT (c.id - 1) * 2 + k,
       c.id,
       (c.supplier_id - 1) * 2 + k,
       c.created_at::date + CASE WHEN k = 2 THEN 30 ELSE 0 END,
       CASE WHEN c.status = 'completed' THEN 7
            WHEN k = 1 AND c.status = 'enquiry' THEN 1 + c.id % 5
            WHEN k = 1 THEN 7
            ELSE 1 + c.id % 6 END
FROM clients AS c, generate_series(1, 2) AS k
WHERE k = 1 OR c.status <> 'enquiry';

-- Per client: the wedding day itself plus a consultation, a tasting or site visit, and a
-- rehearsal the day before.
INSERT INTO bookings (id, supplier_id, wedding_id, date, starts_at, ends_at, kind)
SELECT (c.id - 1) * 4 + b,
       c.supplier_id,
       c.wedding_id,
       CASE b WHEN 1 THEN w.wedding_date
              WHEN 2 THEN w.wedding_date - (150 + c.id % 60)
              WHEN 3 THEN w.wedding_date - (40 + c.id % 30)
              ELSE w.wedding_date - 1 END,
       CASE b WHEN 1 THEN time '10:00' + (c.id % 5) * interval '30 minutes'
              WHEN 4 THEN time '16:00' + (c.id % 3) * interval '30 minutes'
              ELSE time '09:00' + (c.id % 16) * interval '30 minutes' END,
       CASE b WHEN 1 THEN time '22:00' + (c.id % 3) * interval '30 minutes'
              WHEN 4 THEN time '18:00' + (c.id % 3) * interval '30 minutes'
              ELSE time '10:00' + (c.id % 16) * interval '30 minutes' END,
       CASE b WHEN 1 THEN 'wedding-day'
              WHEN 2 THEN 'consultation'
              WHEN 3 THEN CASE WHEN c.id % 2 = 0 THEN 'tasting' ELSE 'site-visit' END
              ELSE 'rehearsal' END
FROM clients AS c
JOIN weddings AS w ON w.id = c.wedding_id
CROSS JOIN generate_series(1, 4) AS b;

-- Explicit ids above bypass the identity sequences; move them past the seeded rows so inserts
-- from the API (POST /api/guest-lists/{id}/guests) get fresh ids.
SELECT setval(pg_get_serial_sequence('suppliers', 'id'), (SELECT max(id) FROM suppliers));
SELECT setval(pg_get_serial_sequence('venues', 'id'), (SELECT max(id) FROM venues));
SELECT setval(pg_get_serial_sequence('weddings', 'id'), (SELECT max(id) FROM weddings));
SELECT setval(pg_get_serial_sequence('clients', 'id'), (SELECT max(id) FROM clients));
SELECT setval(pg_get_serial_sequence('guests', 'id'), (SELECT max(id) FROM guests));
SELECT setval(pg_get_serial_sequence('journeys', 'id'), (SELECT max(id) FROM journeys));
SELECT setval(pg_get_serial_sequence('journey_steps', 'id'), (SELECT max(id) FROM journey_steps));
SELECT setval(pg_get_serial_sequence('journey_instances', 'id'),
              (SELECT max(id) FROM journey_instances));
SELECT setval(pg_get_serial_sequence('bookings', 'id'), (SELECT max(id) FROM bookings));

-- Post-data, as pg_dump orders it: each constraint and index is built once over the loaded rows.
ALTER TABLE weddings ADD CONSTRAINT weddings_venue_id_fkey
    FOREIGN KEY (venue_id) REFERENCES venues (id);
ALTER TABLE clients ADD CONSTRAINT clients_supplier_id_fkey
    FOREIGN KEY (supplier_id) REFERENCES suppliers (id);
ALTER TABLE clients ADD CONSTRAINT clients_wedding_id_fkey
    FOREIGN KEY (wedding_id) REFERENCES weddings (id);
ALTER TABLE guests ADD CONSTRAINT guests_wedding_id_fkey
    FOREIGN KEY (wedding_id) REFERENCES weddings (id);
ALTER TABLE journeys ADD CONSTRAINT journeys_supplier_id_fkey
    FOREIGN KEY (supplier_id) REFERENCES suppliers (id);
ALTER TABLE journey_steps ADD CONSTRAINT journey_steps_journey_id_fkey
    FOREIGN KEY (journey_id) REFERENCES journeys (id);
ALTER TABLE journey_instances ADD CONSTRAINT journey_instances_client_id_fkey
    FOREIGN KEY (client_id) REFERENCES clients (id);
ALTER TABLE journey_instances ADD CONSTRAINT journey_instances_journey_id_fkey
    FOREIGN KEY (journey_id) REFERENCES journeys (id);
ALTER TABLE bookings ADD CONSTRAINT bookings_supplier_id_fkey
    FOREIGN KEY (supplier_id) REFERENCES suppliers (id);
ALTER TABLE bookings ADD CONSTRAINT bookings_wedding_id_fkey
    FOREIGN KEY (wedding_id) REFERENCES weddings (id);

-- One index per access path the API uses; the (..., id) tails give a stable order and keyset
-- pagination without a sort. migrations/drop_guest_index.sql removes the guests one on purpose.
CREATE INDEX clients_supplier_id_idx ON clients (supplier_id, id);
CREATE INDEX clients_wedding_id_idx ON clients (wedding_id);
CREATE INDEX guests_wedding_name_idx ON guests (wedding_id, name, id);
CREATE INDEX journey_instances_client_id_idx ON journey_instances (client_id);
CREATE INDEX bookings_supplier_date_idx ON bookings (supplier_id, date, starts_at);
CREATE INDEX bookings_wedding_id_idx ON bookings (wedding_id);
CREATE INDEX weddings_venue_id_idx ON weddings (venue_id);

-- Fresh statistics so the first EXPLAIN after loading already shows the intended plans.
ANALYZE;
