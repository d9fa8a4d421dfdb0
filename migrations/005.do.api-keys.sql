-- API keys of workers, services and operators (README, "Credentials").
-- Only the SHA-256 of the secret is stored: the secret has 256 random bits,
-- so a fast hash is enough, and `session-manager keys create` prints it once.
-- Every replica reads this table (through a cache of a few seconds), so a
-- revocation reaches all of them. A small table without user_id: under Citus
-- it is a reference table, copied to every node.
create table api_keys (
  key_id        text        primary key,
  name          text        not null check (length(name) between 1 and 200),
  role          text        not null check (role in ('reader', 'writer', 'admin')),
  secret_hash   bytea       not null check (length(secret_hash) = 32),
  create_time   timestamptz not null default now(),
  last_use_time timestamptz,
  revoke_time   timestamptz
);
