-- GetSession on one of :sessions seeded sessions (setup.sql): the one
-- statement of findSessionWithClock, outside a transaction.
\set n random(1, :sessions)
select *, now() as db_now from sessions where session_id = 'sess_A' || lpad(:n::text, 25, '0');
