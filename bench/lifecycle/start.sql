-- StartSession for a new user, as src/service/session-service.ts runs it:
-- lock the user; pipeline the reads (idempotency record: event and request
-- record; latest session; clock); one CTE inserts the session, upserts the
-- user and inserts the session.started event. Simplified: times from now()
-- instead of bound parameters, static hashes and payload.
\set uid random(1, 999999999999999)
begin;
select pg_advisory_xact_lock(hashtextextended('pgb-s-' || :uid, 0));
\startpipeline
select * from session_events where user_id = 'pgb-s-' || :uid and record_id = 'start-' || :uid;
select record_id, request_hash from request_records where user_id = 'pgb-s-' || :uid and record_id = 'start-' || :uid;
select sessions.* from users join sessions on sessions.user_id = users.user_id and sessions.session_id = users.last_session_id where users.user_id = 'pgb-s-' || :uid;
select clock_timestamp() as now;
\endpipeline
with new_session as (
  insert into sessions (
    user_id, session_id, session_index, previous_session_id, state, start_time, end_time,
    last_activity_time, expire_time, idle_timeout_ms, max_duration_ms, max_end_time, end_reason,
    performer_id, is_training_data, metadata, last_seq, last_hash
  )
  values (
    'pgb-s-' || :uid, 'sess_S' || lpad(:uid::text, 25, '0'), 1, '', 'active', now(), null,
    now(), now() + interval '1800 s', 1800000, null, null, null,
    '', false, '{"channel": "voice"}'::jsonb, 1, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
  )
  returning user_id, session_id
),
latest as (
  insert into users (user_id, last_session_index, last_session_id)
  select user_id, 1, session_id
  from new_session
  on conflict (user_id) do update
    set last_session_index = excluded.last_session_index,
        last_session_id = excluded.last_session_id
  returning user_id
)
insert into session_events (
  user_id, session_id, seq, event_id, record_id, request_hash, type,
  event_time, receive_time, source, performer_id, payload, hash
)
select
  new_session.user_id, new_session.session_id, 1, 'evt_S' || lpad(:uid::text, 25, '0'), 'start-' || :uid,
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'session.started', now(), now(), 'session_manager',
  '', '{"idle_timeout": "1800s", "metadata": {"channel": "voice"}, "is_training_data": false, "previous_session_id": ""}'::jsonb,
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
from new_session
join latest on latest.user_id = new_session.user_id
returning tx_id, id;
commit;
