-- node_snapshots: every node capture as rows, as schema 1-2 stored them (one full copy per
-- capture), rebuilt from the history: a node's row of a capture with its `expires` then; `raw`
-- is the resource as first captured in its interval (later captures differ in heartbeat fields).
-- grain: one row per node per capture (captured_at). inputs: node_expiry, node_history.
CREATE OR REPLACE VIEW node_snapshots AS
SELECT e.captured_at, h.name, h.hostname, h.cloud, h.instance_key, h.instance_id, h.vm_id,
       h.account_id, h.region, h.resource_group,
       make_timestamp_ns(epoch_ns(e.captured_at) + e.expires_offset) AS expires, h.raw,
       e.capture_date
FROM node_expiry e
JOIN node_history h
  ON h.period = CAST(date_trunc('month', e.captured_at) AS DATE) AND h.interval_id = e.interval_id;
