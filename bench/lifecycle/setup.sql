-- Seeds the sessions the pgbench append/get floors use: :sessions users, each
-- with one ACTIVE session (ids 'sess_A' + 25 digits, valid session ids) and its
-- session.started event. Run with psql -v sessions=N. Hashes are static: the
-- chain is not verified by the load, only its cost matters.
\set ON_ERROR_STOP on
insert into users (user_id, last_session_index, last_session_id)
select 'pgb-a-' || n, 1, 'sess_A' || lpad(n::text, 25, '0')
from generate_series(1, :sessions) as n;

insert into sessions (
  user_id, session_id, session_index, previous_session_id, state, start_time, end_time,
  last_activity_time, expire_time, idle_timeout_ms, max_duration_ms, max_end_time, end_reason,
  performer_id, is_training_data, metadata, last_seq, last_hash
)
select 'pgb-a-' || n, 'sess_A' || lpad(n::text, 25, '0'), 1, '', 'active', now(), null,
       now(), now() + interval '1 day', 86400000, null, null, null,
       '', false, '{"channel": "voice"}', 1, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
from generate_series(1, :sessions) as n;

insert into session_events (
  user_id, session_id, seq, event_id, record_id, request_hash, type,
  event_time, receive_time, source, performer_id, payload, hash
)
select 'pgb-a-' || n, 'sess_A' || lpad(n::text, 25, '0'), 1, 'evt_A' || lpad(n::text, 25, '0'), 'start-' || n,
       'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'session.started', now(), now(),
       'session_manager', '', '{"idle_timeout": "86400s", "metadata": {"channel": "voice"}, "is_training_data": false, "previous_session_id": ""}',
       'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
from generate_series(1, :sessions) as n;

vacuum analyze users, sessions, session_events;
