-- AppendSessionEvent on one of :sessions seeded sessions (setup.sql), as
-- src/service/session-service.ts runs it: one pipeline with the lock of the
-- session's user and the reads (session, idempotency record: event and
-- request record, clock);
-- then applyChanges' CTE (jsonb_to_recordset input, guarded update, event
-- insert). Simplification: pgbench cannot \gset inside a pipeline, so the
-- input record takes user_id and last_seq from the (locked) session row
-- instead of from bound parameters; times from now(); static hashes.
\set n random(1, :sessions)
\set rid random(1, 999999999999999)
begin;
\startpipeline
select pg_advisory_xact_lock(hashtextextended(user_id, 0)) from sessions where session_id = 'sess_A' || lpad(:n::text, 25, '0');
select * from sessions where session_id = 'sess_A' || lpad(:n::text, 25, '0');
select * from session_events where user_id = (select user_id from sessions where session_id = 'sess_A' || lpad(:n::text, 25, '0') limit 1) and record_id = 'evt-' || :rid;
select record_id, request_hash from request_records where user_id = (select user_id from sessions where session_id = 'sess_A' || lpad(:n::text, 25, '0') limit 1) and record_id = 'evt-' || :rid;
select clock_timestamp() as now;
\endpipeline
with input as (
  select *
  from jsonb_to_recordset((
    select jsonb_build_array(jsonb_build_object(
      'ord', 0, 'user_id', s.user_id, 'session_id', s.session_id, 'previous_seq', s.last_seq, 'state', 'active',
      'end_time', null, 'last_activity_time', now(), 'expire_time', now() + interval '1 day', 'end_reason', null,
      'metadata', null, 'is_training_data', false, 'last_seq', s.last_seq + 1,
      'last_hash', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      'event_id', 'evt_E' || lpad(:rid::text, 25, '0'), 'record_id', 'evt-' || :rid,
      'request_hash', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      'type', 'care.input.received', 'event_time', now(), 'receive_time', now(), 'source', 'speech-worker',
      'performer_id', '', 'payload', '{"text": "hello"}'::jsonb,
      'hash', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'))
    from sessions s
    where s.session_id = 'sess_A' || lpad(:n::text, 25, '0')
  )) as t(
    ord int, user_id text, session_id text, previous_seq bigint, state text, end_time timestamptz,
    last_activity_time timestamptz, expire_time timestamptz, end_reason text, metadata jsonb,
    is_training_data boolean, last_seq bigint, last_hash text, event_id text, record_id text,
    request_hash text, type text, event_time timestamptz, receive_time timestamptz, source text,
    performer_id text, payload jsonb, hash text
  )
),
updated as (
  update sessions
  set state = input.state,
      end_time = input.end_time,
      last_activity_time = input.last_activity_time,
      expire_time = input.expire_time,
      end_reason = input.end_reason,
      metadata = coalesce(input.metadata, sessions.metadata),
      is_training_data = input.is_training_data,
      last_seq = input.last_seq,
      last_hash = input.last_hash
  from input
  where sessions.user_id = input.user_id
    and sessions.session_id = input.session_id
    and sessions.last_seq = input.previous_seq
  returning sessions.user_id, sessions.session_id
),
inserted as (
  insert into session_events (
    user_id, session_id, seq, event_id, record_id, request_hash, type,
    event_time, receive_time, source, performer_id, payload, hash
  )
  select
    input.user_id, input.session_id, input.last_seq, input.event_id, input.record_id, input.request_hash,
    input.type, input.event_time, input.receive_time, input.source, input.performer_id, input.payload, input.hash
  from input
  join updated using (user_id, session_id)
  order by input.ord
  returning event_id, tx_id, id
)
select input.ord, inserted.tx_id, inserted.id
from inserted
join input using (event_id)
order by input.ord;
commit;
