-- Gatehouse fleet audit store (PostgreSQL), schema version 1.
--
-- Every gateway of a fleet keeps its own SQLite audit log (audit/schema.sql), the source of truth,
-- and ships each committed entry and each checkpoint of it here (src/fleet/ship.rs). Each
-- gateway's entries form a chain of their own, keyed by (gateway_id, seq), with the columns exactly
-- as in its local log: the canonical bytes and the Merkle tree `audit verify --postgres` rebuilds
-- are byte for byte those of the file (audit/VERIFY.md, "The fleet's store").
--
-- Applied once, in one transaction, by `gatehouse fleet init` (as the database's owner) or by the
-- first gateway that connects with a role allowed to create tables. Gateways log in as roles that
-- are members of `gatehouse_gateway`: they may INSERT entries and checkpoints and SELECT them, and
-- never UPDATE or DELETE them (no grant, and triggers refuse it even to the owner). Auditors log in
-- as members of `gatehouse_auditor`: SELECT only.

CREATE TABLE gatehouse_schema (
    version integer PRIMARY KEY,
    applied timestamptz NOT NULL DEFAULT now()
);
INSERT INTO gatehouse_schema (version) VALUES (1);

-- One row per gateway, written by its shipper: which log it ships (the origin its checkpoints
-- name), its checkpoint key as it reported it (informational: verify with your own copy), and how
-- far its shipping is (`local_seq`: the last entry its local log held at `heartbeat`).
CREATE TABLE gateways (
    gateway_id  text PRIMARY KEY CHECK (gateway_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    origin      text NOT NULL,
    public_key  text,
    local_seq   bigint NOT NULL DEFAULT 0,
    heartbeat   timestamptz,
    registered  timestamptz NOT NULL DEFAULT now()
);

-- The columns of audit/schema.sql's `entries`, as text exactly as the gateway stored them (not
-- jsonb, which would not keep the bytes the entry hash covers).
CREATE TABLE entries (
    gateway_id       text NOT NULL REFERENCES gateways,
    seq              bigint NOT NULL CHECK (seq >= 1),
    time             text NOT NULL,
    decision_id      text NOT NULL,
    call_id          text,
    phase            text NOT NULL,
    caller           text NOT NULL,
    tool             text,
    component_digest text,
    policy_revision  text,
    input            text NOT NULL,
    verdict          text NOT NULL,
    reasons          text NOT NULL,
    obligations      text NOT NULL,
    metrics          text NOT NULL,
    entry_hash       bytea NOT NULL,
    shipped          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, seq)
);
CREATE INDEX entries_time ON entries (time);
CREATE INDEX entries_call ON entries (call_id) WHERE call_id IS NOT NULL;
CREATE INDEX entries_phase_verdict ON entries (phase, verdict);

-- The gateway's checkpoints, `id` as in its local log; `note` (the C2SP signed note) is the
-- authority, the other columns repeat it.
CREATE TABLE checkpoints (
    gateway_id text NOT NULL REFERENCES gateways,
    id         bigint NOT NULL,
    tree_size  bigint NOT NULL CHECK (tree_size >= 0),
    root_hash  bytea NOT NULL,
    note       text NOT NULL,
    PRIMARY KEY (gateway_id, id)
);

CREATE FUNCTION gatehouse_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'gatehouse fleet audit store is append-only (% on %)', TG_OP, TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION gatehouse_append_only();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION gatehouse_append_only();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION gatehouse_append_only();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION gatehouse_append_only();
-- A gateway's registration may only move its heartbeat forward, never change which log it is.
CREATE FUNCTION gatehouse_gateway_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.gateway_id <> OLD.gateway_id OR NEW.origin <> OLD.origin
       OR NEW.registered <> OLD.registered THEN
        RAISE EXCEPTION 'gatehouse fleet audit store: a gateway''s registration cannot be changed or removed';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER gateways_fixed BEFORE UPDATE OR DELETE ON gateways
    FOR EACH ROW EXECUTE FUNCTION gatehouse_gateway_fixed();

-- The roles: created here when missing (NOLOGIN; grant them to login roles).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gatehouse_gateway') THEN
        CREATE ROLE gatehouse_gateway NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gatehouse_auditor') THEN
        CREATE ROLE gatehouse_auditor NOLOGIN;
    END IF;
END;
$$;
REVOKE ALL ON gatehouse_schema, gateways, entries, checkpoints FROM PUBLIC;
GRANT SELECT ON gatehouse_schema TO gatehouse_gateway, gatehouse_auditor;
GRANT SELECT, INSERT ON entries, checkpoints TO gatehouse_gateway;
GRANT SELECT, INSERT ON gateways TO gatehouse_gateway;
GRANT UPDATE (public_key, local_seq, heartbeat) ON gateways TO gatehouse_gateway;
GRANT SELECT ON gateways, entries, checkpoints TO gatehouse_auditor;

-- Views for auditors: those of audit/schema.sql, across the fleet, with the gateway's id.

CREATE VIEW calls AS
SELECT gateway_id, seq, time, call_id, caller::jsonb ->> 'principal' AS principal,
       caller::jsonb ->> 'transport' AS transport, caller::jsonb ->> 'client' AS client,
       tool, component_digest, policy_revision, verdict, reasons,
       metrics::jsonb -> 'duration_us' AS policy_duration_us, input
FROM entries WHERE phase = 'call';

CREATE VIEW denials AS
SELECT gateway_id, seq, time, call_id, phase, caller::jsonb ->> 'principal' AS principal, tool,
       verdict, reasons, input
FROM entries WHERE verdict IN ('deny', 'denied');

CREATE VIEW egress AS
SELECT gateway_id, seq, time, call_id, caller::jsonb ->> 'principal' AS principal, tool, phase,
       verdict, reasons,
       coalesce(input::jsonb #>> '{request,method}', input::jsonb #>> '{socket,operation}') AS method,
       coalesce(input::jsonb #>> '{request,scheme}', input::jsonb #>> '{socket,protocol}') AS scheme,
       coalesce(input::jsonb #>> '{request,host}', input::jsonb #>> '{socket,address}') AS host,
       coalesce(input::jsonb #> '{request,port}', input::jsonb #> '{socket,port}') AS port,
       input::jsonb #>> '{request,path}' AS path,
       input::jsonb #> '{request,resolved_ips}' AS resolved_ips,
       input
FROM entries WHERE phase IN ('http', 'socket');

CREATE VIEW file_access AS
SELECT gateway_id, seq, time, call_id, caller::jsonb ->> 'principal' AS principal, tool, verdict,
       reasons,
       input::jsonb #>> '{fs,operation}' AS operation,
       input::jsonb #>> '{fs,path}' AS path,
       input::jsonb #>> '{fs,access}' AS access,
       input::jsonb #>> '{fs,mount}' AS mount,
       input::jsonb #>> '{fs,target}' AS target,
       input
FROM entries WHERE phase = 'fs';

GRANT SELECT ON calls, denials, egress, file_access TO gatehouse_auditor, gatehouse_gateway;
