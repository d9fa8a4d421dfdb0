-- Sessions and their append-only event log.
--
-- Every table leads with user_id so it can be distributed by user (Citus):
-- each write touches one user's rows only. session_id alone is found through
-- a plain (non-unique) index; ULIDs make collisions practically impossible.

-- One row per user: the session counter survives pruning of old sessions.
create table users (
  user_id            text   primary key,
  last_session_index bigint not null check (last_session_index > 0),
  last_session_id    text   not null
);

create table sessions (
  user_id             text        not null,
  session_id          text        not null,
  session_index       bigint      not null check (session_index > 0),
  previous_session_id text        not null default '',
  state               text        not null check (state in ('active', 'paused', 'ended')),
  start_time          timestamptz not null,
  end_time            timestamptz,
  last_activity_time  timestamptz not null,
  -- The idle deadline; null while paused and once ended.
  expire_time         timestamptz,
  idle_timeout_ms     bigint      not null check (idle_timeout_ms > 0),
  max_duration_ms     bigint      check (max_duration_ms > 0),
  -- start_time + max_duration; null without a limit.
  max_end_time        timestamptz,
  -- When the session ends by itself unless something happens first.
  deadline            timestamptz generated always as (least(expire_time, max_end_time)) stored,
  end_reason          text        check (end_reason in ('client', 'idle_timeout', 'superseded', 'max_duration')),
  performer_id        text        not null default '',
  is_training_data    boolean     not null default false,
  metadata            jsonb       not null default '{}',
  last_seq            bigint      not null,
  -- The hash of the event at last_seq (the head of the session's chain).
  last_hash           text        not null,
  primary key (user_id, session_id),
  check ((state = 'ended') = (end_time is not null)),
  check ((state = 'ended') = (end_reason is not null)),
  check (state = 'active' or expire_time is null)
);

-- At most one open (active or paused) session per user, across all replicas.
create unique index sessions_one_open_per_user
  on sessions (user_id)
  where state <> 'ended';

create index sessions_by_session_id on sessions (session_id);
create index sessions_newest on sessions (start_time desc, session_id desc);
create index sessions_by_user_newest on sessions (user_id, start_time desc, session_id desc);
-- The sweeper's work list: open sessions by deadline.
create index sessions_open_by_deadline on sessions (deadline) where state <> 'ended';
-- Retention: ended sessions by end time.
create index sessions_ended_by_end_time on sessions (end_time) where state = 'ended';

-- The event log is also the idempotency ledger: each mutating request writes
-- exactly one event that carries its record_id and a fingerprint of the
-- request, in the same transaction as the state change.
--
-- Feed order (see src/db/feed-repository.ts): rows are read below the
-- transaction-visibility horizon and ordered by (tx_id, id). tx_id is the
-- writing transaction's id; id only orders rows within one transaction.
create table session_events (
  user_id        text        not null,
  session_id     text        not null,
  seq            bigint      not null check (seq > 0),
  id             bigint      generated always as identity,
  tx_id          xid8        not null default pg_current_xact_id(),
  event_id       text        not null,
  record_id      text        not null,
  request_hash   text        not null,
  type           text        not null,
  event_time     timestamptz not null,
  receive_time   timestamptz not null,
  source         text        not null,
  performer_id   text        not null default '',
  payload        jsonb       not null default '{}',
  -- SHA-256 (hex) over the previous event's hash and this event's canonical encoding.
  hash           text        not null,
  primary key (user_id, session_id, seq),
  foreign key (user_id, session_id) references sessions (user_id, session_id)
);

create unique index session_events_record_id on session_events (user_id, record_id);
create index session_events_feed on session_events (tx_id, id);
create index session_events_feed_by_user on session_events (user_id, tx_id, id);
