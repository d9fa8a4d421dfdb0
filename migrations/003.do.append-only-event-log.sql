-- The event log is append-only, enforced by the database for every role,
-- superusers included (row and statement triggers fire for them too):
-- UPDATE and TRUNCATE are always rejected; DELETE only inside a transaction
-- that set `session_manager.prune = on` (what `session-manager prune` does
-- to remove whole ended sessions). Deliberate tampering needs a superuser
-- disabling the triggers; the hash chain (`session-manager verify`) then
-- shows it.

create function session_events_append_only() returns trigger
language plpgsql as $$
begin
  if tg_op = 'DELETE' and current_setting('session_manager.prune', true) = 'on' then
    return old;
  end if;
  raise exception 'session_events is append-only: % is not allowed', tg_op
    using errcode = 'insufficient_privilege';
end;
$$;

create trigger session_events_no_update_or_delete
  before update or delete on session_events
  for each row execute function session_events_append_only();

create trigger session_events_no_truncate
  before truncate on session_events
  for each statement execute function session_events_append_only();
