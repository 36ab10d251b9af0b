"""The SQLite schema of the read model.

Rule that keeps reorg rollback a one-liner per table: every row carries the ``block_number`` (and
``log_index``) of the event that created it, and mutable state is never updated in place — each
change appends a full snapshot row to a ``*_states`` history table (or a fact row such as a
revocation). Rolling back to block ``B`` is ``DELETE FROM t WHERE block_number > B`` on every
table, and "state as of block B" is the latest snapshot with ``block_number <= B``.

Indexes serve queries only: a rollback scans each table (a few hundred ms per million rows), which
is the right trade for an event that is rare on a consortium chain, while every index costs a
B-tree insert per row during catch-up.
"""

from __future__ import annotations

SCHEMA_VERSION = 2

#: Tables whose rows are derived from events; all have a ``block_number`` column.
DERIVED_TABLES: tuple[str, ...] = (
    "blocks",
    "events",
    "declaration_events",
    "agencies",
    "agency_states",
    "key_states",
    "trader_states",
    "declarations",
    "declaration_states",
    "supporting_documents",
    "anchors",
    "stamps",
    "stamp_revocations",
    "decision_events",
    "batches",
    "alerts",
    "alert_clearings",
    "proposals",
    "proposal_actions",
    "governor_changes",
)

DDL = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    block_number INTEGER NOT NULL,   -- last block fully processed
    block_hash TEXT                  -- its hash (NULL before the deployment block)
);
-- Blocks the index remembers: every block that carried events, and every cursor position.
CREATE TABLE IF NOT EXISTS blocks (
    block_number INTEGER PRIMARY KEY,
    block_hash TEXT NOT NULL,
    timestamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS blocks_by_time ON blocks (timestamp, block_number);
-- Every decoded event, raw (JSON args, bytes as 0x-hex): timelines and audit.
-- position = block_number * 2^20 + log_index: the rowid itself, so appends need no extra index.
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    tx_hash TEXT NOT NULL,
    block_hash TEXT NOT NULL,
    contract TEXT NOT NULL,
    name TEXT NOT NULL,
    args TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS declaration_events (
    declaration_id TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    PRIMARY KEY (declaration_id, block_number, log_index)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS agencies (
    agency_id TEXT PRIMARY KEY,
    agency_index INTEGER NOT NULL UNIQUE,
    country TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agency_states (
    agency_id TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    change TEXT NOT NULL,
    name TEXT NOT NULL,
    roles INTEGER NOT NULL,
    status INTEGER NOT NULL,
    encryption_key TEXT NOT NULL,
    ipfs_endpoint TEXT NOT NULL,
    PRIMARY KEY (agency_id, block_number, log_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS key_states (
    signer TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    change TEXT NOT NULL,
    agency_id TEXT NOT NULL,
    agency_index INTEGER NOT NULL,
    valid_from INTEGER NOT NULL,
    valid_until INTEGER NOT NULL,
    compromised_at INTEGER NOT NULL,
    reported_by TEXT,
    PRIMARY KEY (signer, block_number, log_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trader_states (
    trader TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    change TEXT NOT NULL,
    registrar_index INTEGER NOT NULL,
    status INTEGER NOT NULL,
    aeo INTEGER NOT NULL,
    PRIMARY KEY (trader, block_number, log_index)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS declarations (
    declaration_id TEXT PRIMARY KEY,
    declarant TEXT NOT NULL,
    jurisdiction INTEGER NOT NULL,
    version INTEGER NOT NULL,
    previous_id TEXT,
    local_reference TEXT NOT NULL,
    cid TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    timestamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS declarations_by_declarant ON declarations (declarant, block_number);
CREATE TABLE IF NOT EXISTS declaration_states (
    declaration_id TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    change TEXT NOT NULL,
    status INTEGER NOT NULL,
    channel INTEGER NOT NULL,
    required_stamps INTEGER NOT NULL,
    mrn TEXT,
    rule_set_hash TEXT,
    superseded_by TEXT,
    PRIMARY KEY (declaration_id, block_number, log_index)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS declaration_states_by_mrn ON declaration_states (mrn);
CREATE TABLE IF NOT EXISTS supporting_documents (
    declaration_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    document_type INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    cid TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    PRIMARY KEY (declaration_id, position)
);
-- Where a sha256 is anchored: declaration / supporting document / stamp report / batch root.
CREATE TABLE IF NOT EXISTS anchors (
    sha256 TEXT NOT NULL,
    kind INTEGER NOT NULL,
    ref TEXT NOT NULL,
    cid TEXT,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS anchors_by_sha256 ON anchors (sha256, block_number, log_index);
CREATE INDEX IF NOT EXISTS anchors_by_cid ON anchors (cid);

CREATE TABLE IF NOT EXISTS stamps (
    stamp_id TEXT PRIMARY KEY,
    declaration_id TEXT NOT NULL,
    agency_index INTEGER NOT NULL,
    signer TEXT NOT NULL,
    stamp_type INTEGER NOT NULL,
    result INTEGER NOT NULL,
    signed_at INTEGER NOT NULL,
    report_cid TEXT NOT NULL,
    relayer TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    timestamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS stamps_by_declaration ON stamps (declaration_id, block_number, log_index);
CREATE TABLE IF NOT EXISTS stamp_revocations (
    stamp_id TEXT PRIMARY KEY,
    declaration_id TEXT NOT NULL,
    signer TEXT NOT NULL,
    reason_code INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    timestamp INTEGER NOT NULL
);
-- Decisions: single-control RECORDED rows, and dual-control rounds (PROPOSED, APPROVED, CANCELLED, RECORDED).
CREATE TABLE IF NOT EXISTS decision_events (
    declaration_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    action TEXT NOT NULL,
    kind INTEGER,
    status INTEGER,
    reason_code INTEGER,
    report_sha256 TEXT,
    signer TEXT NOT NULL,
    approvals INTEGER,
    approvals_required INTEGER,
    pass_stamps TEXT,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    PRIMARY KEY (declaration_id, block_number, log_index)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS batches (
    root TEXT PRIMARY KEY,
    agency_index INTEGER NOT NULL,
    leaf_count INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    manifest_cid TEXT NOT NULL,
    signer TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    timestamp INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    subject_kind INTEGER NOT NULL,
    agency_index INTEGER NOT NULL,
    reason_code INTEGER NOT NULL,
    evidence_sha256 TEXT NOT NULL,
    signer TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    timestamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_subject ON alerts (subject);
CREATE TABLE IF NOT EXISTS alert_clearings (
    alert_id INTEGER PRIMARY KEY,
    reason_code INTEGER NOT NULL,
    signer TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    timestamp INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS proposals (
    proposal_id INTEGER PRIMARY KEY,
    proposer TEXT NOT NULL,
    target TEXT NOT NULL,
    call_data TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    timestamp INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS proposal_actions (
    proposal_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    actor TEXT,
    approvals INTEGER,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    PRIMARY KEY (proposal_id, block_number, log_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS governor_changes (
    governor TEXT NOT NULL,
    added INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    PRIMARY KEY (governor, block_number, log_index)
) WITHOUT ROWID;
"""
