-- Idempotency records of requests that wrote no event: a PauseSession on a
-- paused session or a ResumeSession on an active one changes nothing, yet a
-- retry of it after a later change must not act (AIP-155). Every other
-- request's record is its event in session_events.
create table request_records (
  user_id      text        not null,
  record_id    text        not null,
  request_hash text        not null,
  session_id   text        not null,
  record_time  timestamptz not null default now(),
  primary key (user_id, record_id)
);
