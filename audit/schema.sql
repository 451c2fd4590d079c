-- Gatehouse audit log, schema version 2.
--
-- Applied once, in one transaction, when Gatehouse creates a new log file. The file is identified
-- by PRAGMA application_id = 0x47484155 ('GHAU') and PRAGMA user_version = schema version.
-- Every entry is one row of `entries`; its leaf hash (`entry_hash`) feeds an RFC 6962 Merkle tree
-- whose signed roots are the rows of `checkpoints` (format and checks: audit/VERIFY.md).
-- Rows of entries, entry_blocks, checkpoints and meta are never updated or deleted (triggers below).

PRAGMA application_id = 1195917653;
PRAGMA user_version = 2;

-- Facts about the log itself, written at creation: format, schema_version, origin, created,
-- entries_per_block.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE entries (
    seq              INTEGER PRIMARY KEY CHECK (seq >= 1),
    time             TEXT NOT NULL,          -- RFC 3339 UTC with milliseconds, e.g. 2026-11-22T03:10:06.123Z
    decision_id      TEXT NOT NULL,          -- UUID of this decision / outcome
    call_id          TEXT,                   -- groups the entries of one tool call
    phase            TEXT NOT NULL,          -- list|call|http|fs|socket|config|result|auth|outcome|lifecycle|supply|log
    caller           TEXT NOT NULL,          -- JSON {principal, transport, client, authenticated}
    principal        TEXT GENERATED ALWAYS AS (json_extract(caller, '$.principal')) VIRTUAL,
    transport        TEXT GENERATED ALWAYS AS (json_extract(caller, '$.transport')) VIRTUAL,
    client           TEXT GENERATED ALWAYS AS (json_extract(caller, '$.client')) VIRTUAL,
    tool             TEXT,
    component_digest TEXT,
    policy_revision  TEXT,
    input            TEXT NOT NULL,          -- JSON, redacted values as {"redacted":"hmac-sha256:…"}
    verdict          TEXT NOT NULL,          -- allow|deny|ask, approve|deny, or ok|tool_error|trap|limit|denied|error|input_required
    reasons          TEXT NOT NULL,          -- JSON array of strings
    obligations      TEXT NOT NULL,          -- JSON
    metrics          TEXT NOT NULL,          -- JSON: duration_us, fuel, memory, …
    entry_hash       BLOB NOT NULL           -- SHA-256(0x00 ‖ canonical entry bytes)
);

-- Every index implicitly ends with seq (the rowid), and time grows with seq, so "newest N with
-- phase = X" walks one index backwards without sorting, and a time range becomes a seq range
-- (found through entries_time) that any of them can use.
CREATE INDEX entries_time ON entries (time);
CREATE INDEX entries_call ON entries (call_id) WHERE call_id IS NOT NULL;
CREATE INDEX entries_phase_verdict ON entries (phase, verdict);

-- Which callers and tools occur in which block of entries: block b holds seq
-- b * entries_per_block + 1 ..= (b + 1) * entries_per_block (meta row entries_per_block, 1024).
-- It stands in for indexes on principal and tool (schema version 1 had them): an index row per
-- entry made every commit rewrite one index page per distinct caller and tool in its batch, most
-- of the writer's WAL traffic; a row here is written once per key and block. `gatehouse audit
-- query --caller/--tool` reads the blocks listed for the key, each a rowid range of `entries`.
-- Derived data, written in the same transaction as the entries; `verify` checks that it lists
-- exactly the (key, block) pairs the entries hold (audit/VERIFY.md).
CREATE TABLE entry_blocks (
    kind  TEXT NOT NULL CHECK (kind IN ('principal', 'tool')),
    key   TEXT NOT NULL,
    block INTEGER NOT NULL CHECK (block >= 0),
    PRIMARY KEY (kind, key, block)
) STRICT, WITHOUT ROWID;

-- Signed tree heads. `note` is the complete C2SP signed note (the authority); the other columns
-- repeat what it says, for queries.
CREATE TABLE checkpoints (
    id        INTEGER PRIMARY KEY,
    tree_size INTEGER NOT NULL CHECK (tree_size >= 0),
    root_hash BLOB NOT NULL,
    time      TEXT NOT NULL,
    signed    INTEGER NOT NULL CHECK (signed IN (0, 1)),
    note      TEXT NOT NULL
);

-- The writer's resumable state: the right edge of the Merkle tree after `tree_size` entries, so a
-- restart does not rehash the log. Derived data, saved with every checkpoint (a restart appends
-- the stored entry_hash of the entries after it); `verify` never trusts it.
CREATE TABLE writer_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    tree_size     INTEGER NOT NULL,
    compact_range BLOB NOT NULL
);
INSERT INTO writer_state (id, tree_size, compact_range) VALUES (1, 0, X'');

CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER meta_no_update BEFORE UPDATE ON meta
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER meta_no_delete BEFORE DELETE ON meta
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER entry_blocks_no_update BEFORE UPDATE ON entry_blocks
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER entry_blocks_no_delete BEFORE DELETE ON entry_blocks
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;

-- Views for auditors (see audit/queries/ for canned queries).

-- One row per tool-call decision.
CREATE VIEW calls AS
SELECT seq, time, call_id, principal, transport, client, tool, component_digest, policy_revision,
       verdict, reasons, json_extract(metrics, '$.duration_us') AS policy_duration_us, input
FROM entries WHERE phase = 'call';

-- Everything that was refused: denied decisions and calls that ended as denied.
CREATE VIEW denials AS
SELECT seq, time, call_id, phase, principal, tool, verdict, reasons, input
FROM entries WHERE verdict IN ('deny', 'denied');

-- Outgoing network decisions. The host fills `input` with the request; the view reads the common
-- field spellings (input.request.* as the gateway writes it, or flat input.*).
CREATE VIEW egress AS
SELECT seq, time, call_id, principal, tool, phase, verdict, reasons,
       coalesce(json_extract(input, '$.request.method'), json_extract(input, '$.socket.operation')) AS method,
       coalesce(json_extract(input, '$.request.scheme'), json_extract(input, '$.socket.protocol')) AS scheme,
       coalesce(json_extract(input, '$.request.host'), json_extract(input, '$.socket.address')) AS host,
       coalesce(json_extract(input, '$.request.port'), json_extract(input, '$.socket.port')) AS port,
       json_extract(input, '$.request.path') AS path,
       json_extract(input, '$.request.resolved_ips') AS resolved_ips,
       input
FROM entries WHERE phase IN ('http', 'socket');

-- Filesystem decisions.
CREATE VIEW file_access AS
SELECT seq, time, call_id, principal, tool, verdict, reasons,
       json_extract(input, '$.fs.operation') AS operation,
       json_extract(input, '$.fs.path') AS path,
       json_extract(input, '$.fs.access') AS access,
       json_extract(input, '$.fs.mount') AS mount,
       json_extract(input, '$.fs.target') AS target,
       input
FROM entries WHERE phase = 'fs';
