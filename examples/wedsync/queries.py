"""The exact SQL each endpoint runs, kept here so budgets.yaml `queries:` can copy it verbatim."""

from __future__ import annotations

from datetime import date
from typing import Final

# GET /api/clients?supplier_id=&after=&limit= : keyset pagination on clients(supplier_id, id).
CLIENTS_BY_SUPPLIER: Final = """\
SELECT id, name, email, phone, status, wedding_id
FROM clients
WHERE supplier_id = $1 AND id > $2
ORDER BY id
LIMIT $3"""

# GET /api/guest-lists/{wedding_id} : served by guests(wedding_id, name, id) without a sort.
GUESTS_BY_WEDDING: Final = """\
SELECT id, name, rsvp, table_no
FROM guests
WHERE wedding_id = $1
ORDER BY name, id"""

# Tells an empty guest list apart from a wedding that does not exist (runs only when empty).
WEDDING_EXISTS: Final = "SELECT EXISTS (SELECT 1 FROM weddings WHERE id = $1)"

# POST /api/guest-lists/{wedding_id}/guests
INSERT_GUEST: Final = """\
INSERT INTO guests (wedding_id, name, rsvp, table_no)
VALUES ($1, $2, $3, $4)
RETURNING id, name, rsvp, table_no"""

# GET /api/journey-instances?client_id= : each step's status derives from the instance's cursor.
JOURNEY_STEPS_BY_CLIENT: Final = """\
SELECT ji.id AS instance_id,
       j.name AS journey,
       s.position,
       s.title,
       ji.started_on + s.offset_days AS due_on,
       CASE WHEN s.position < ji.current_step THEN 'done'
            WHEN s.position = ji.current_step THEN 'current'
            ELSE 'pending' END AS status
FROM journey_instances AS ji
JOIN journeys AS j ON j.id = ji.journey_id
JOIN journey_steps AS s ON s.journey_id = ji.journey_id
WHERE ji.client_id = $1
ORDER BY ji.id, s.position"""

# GET /api/supplier-schedules?supplier_id=&date= : one day's bookings with wedding and venue.
SUPPLIER_SCHEDULE: Final = """\
SELECT b.id,
       b.kind,
       b.starts_at,
       b.ends_at,
       w.id AS wedding_id,
       w.couple_name,
       v.name AS venue,
       v.city
FROM bookings AS b
JOIN weddings AS w ON w.id = b.wedding_id
JOIN venues AS v ON v.id = w.venue_id
WHERE b.supplier_id = $1 AND b.date = $2
ORDER BY b.starts_at, b.id"""

HEALTH_CHECK: Final = "SELECT 1"

# Parameters that hit the seed data (see seed.sql), for EXPLAIN budgets and docs.
EXAMPLE_PARAMS: Final[dict[str, tuple[object, ...]]] = {
    "CLIENTS_BY_SUPPLIER": (7, 0, 50),
    "GUESTS_BY_WEDDING": (42,),
    "JOURNEY_STEPS_BY_CLIENT": (8,),
    "SUPPLIER_SCHEDULE": (7, date(2026, 6, 13)),
}
