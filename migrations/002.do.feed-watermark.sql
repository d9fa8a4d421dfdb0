-- The feed's retention watermark: events at or before this position may have
-- been removed (by `session-manager prune`). A WatchSessionEvents cursor
-- before it is OUT_OF_RANGE; from_beginning starts here. One row.
create table feed_watermark (
  singleton boolean primary key default true check (singleton),
  tx_id     xid8    not null,
  id        bigint  not null
);

insert into feed_watermark (tx_id, id) values ('0', 0);
