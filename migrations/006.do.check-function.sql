-- session_manager_check(ok, message): true when ok; otherwise raises
-- serialization_failure (SQLSTATE 40001) with the message. A write whose
-- guard can only be judged from the statement's own result (an update that
-- must match every row it was given) calls it in the same statement, so the
-- transaction aborts there, whatever is sent after it (the write batch's
-- session update, src/db/batch-repository.ts). 40001 because the cause is a
-- concurrent change: the service retries the transaction. Without table
-- data, it is created on every node under Citus.
create function session_manager_check(ok boolean, message text) returns boolean
language plpgsql
as $$
begin
  if not ok then
    raise exception using errcode = 'serialization_failure', message = message;
  end if;
  return true;
end
$$;
