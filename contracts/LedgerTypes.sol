// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Shared types of the customs document-provenance ledger.
/// @notice Enums and structs used by {AgencyRegistry} and {ClearanceLedger}. Enum values are part of
/// the ABI (events carry them as uint8): append new members, never reorder.

/// @notice Roles an agency can hold; stored as a bit mask `1 << uint8(role)`.
enum Role {
    CUSTOMS_AUTHORITY, // accepts declarations of its jurisdiction and decides on them
    INSPECTION_AGENCY, // stamps declarations with inspection results
    PARTNER_CUSTOMS, // foreign administration: verifies and attests (export clearance)
    RISK_ORACLE, // assigns selectivity channels from a published rule set
    AUDITOR, // replays and checks; may raise alerts
    TRADER_REGISTRAR // registers trader accounts
}

/// @notice Membership status of an agency. REMOVED is final.
enum AgencyStatus {
    NONE,
    ACTIVE,
    SUSPENDED,
    REMOVED
}

/// @notice Status of a trader account.
enum TraderStatus {
    NONE,
    ACTIVE,
    SUSPENDED
}

/// @notice Lifecycle of one declaration version.
/// SUBMITTED → ACCEPTED → RELEASED | HELD | REJECTED; HELD → RELEASED | REJECTED | SEIZED;
/// SUBMITTED → REJECTED; SUBMITTED | ACCEPTED → SUPERSEDED (by an amendment).
enum DeclarationStatus {
    NONE,
    SUBMITTED,
    ACCEPTED,
    RELEASED,
    HELD,
    REJECTED,
    SEIZED,
    SUPERSEDED
}

/// @notice Selectivity channel set by a risk oracle.
enum Channel {
    NONE,
    GREEN,
    YELLOW,
    RED
}

/// @notice Kinds of stamp; required stamps are a bit mask `1 << uint8(type)` (at most 16 kinds).
enum StampType {
    DOCUMENT_CHECK,
    PHYSICAL_EXAM,
    XRAY_SCAN,
    LAB_TEST,
    QUARANTINE,
    EXPORT_CLEARANCE,
    ORIGIN_VERIFICATION,
    SANITARY_CHECK
}

/// @notice Result carried by a stamp.
enum StampResult {
    NONE,
    PASS,
    FAIL,
    INCONCLUSIVE
}

/// @notice Decisions a customs authority records on a declaration of its jurisdiction.
enum DecisionKind {
    RELEASE,
    HOLD,
    REJECT,
    SEIZE
}

/// @notice What a document hash is anchored as (see {IClearanceLedger-anchorOf}).
enum AnchorKind {
    NONE,
    DECLARATION,
    SUPPORTING_DOCUMENT,
    STAMP_REPORT,
    BATCH_ROOT
}

/// @notice What an alert is about.
enum AlertSubject {
    DOCUMENT, // a document sha256
    DECLARATION, // a declaration id
    TRADER // a trader address, left-padded to bytes32
}

/// @notice A supporting document of a declaration.
struct SupportingDocument {
    uint8 documentType; // application-defined type code (invoice, packing list, certificate of origin, …)
    bytes32 sha256; // sha256 of the exact document bytes (the plaintext)
    bytes cid; // binary CID of the stored (encrypted) envelope, at most 128 bytes
}

/// @notice Registry facts about an agency.
struct Agency {
    bytes32 id; // agency code, e.g. "CN-TJ-CUSTOMS" right-padded with zeros
    uint32 index; // 1-based registration order; ledger storage refers to agencies by index
    AgencyStatus status; // membership status
    uint16 roles; // bit mask of {Role}
    bytes2 country; // ISO 3166-1 alpha-2 code, e.g. "CN"
    bytes32 encryptionKey; // X25519 public key documents are wrapped for
    string name; // human-readable name
    string ipfsEndpoint; // IPFS peer id or multiaddr of the agency's node
}

/// @notice A signer key of an agency with its validity window (unix seconds).
struct SignerKey {
    uint32 agencyIndex; // owning agency; 0 when the key is unknown
    uint64 validFrom; // first second the key may sign
    uint64 validUntil; // first second the key may no longer sign (exclusive)
    uint64 compromisedAt; // 0, or the time from which its signatures are void
}

/// @notice A trader account as registered by a TRADER_REGISTRAR agency.
struct Trader {
    uint32 registrarIndex; // agency that registered it (and may update it)
    TraderStatus status; // ACTIVE traders may submit declarations
    bool aeo; // Authorised Economic Operator certification
}

/// @notice On-chain state of one declaration version. Supporting documents, references and CIDs
/// live in the events (see {IClearanceLedger-DeclarationSubmitted}).
struct Declaration {
    address declarant; // trader account that submitted it
    uint32 jurisdiction; // index of the customs authority agency
    DeclarationStatus status; // lifecycle status
    Channel channel; // NONE until a risk oracle assigns one
    uint16 requiredStamps; // bit mask of {StampType} that RELEASE needs a PASS for
    uint32 version; // 1 for an original submission, +1 per amendment
    bytes32 mrn; // Movement Reference Number: assigned on acceptance, carried over by amendments (0 before)
    bytes32 ruleSetHash; // sha256 of the rule set that produced the channel (0 before)
    bytes32 previousId; // declaration this one amends (0 for version 1)
    bytes32 supersededBy; // amendment that superseded this one (0 if none)
}

/// @notice One stamp. Its id is the sha256 of its report.
struct Stamp {
    bytes32 declarationId; // the declaration version stamped
    address signer; // key that signed it (directly or by EIP-712)
    uint32 agencyIndex; // agency of the signer
    StampType stampType; // kind of inspection
    StampResult result; // PASS / FAIL / INCONCLUSIVE
    bool revoked; // revoked by its issuing agency
    uint40 signedAt; // unix seconds the signer signed (block time for direct stamps)
}

/// @notice A dual-control decision waiting for more approvals.
struct PendingDecision {
    DecisionKind kind; // what will take effect
    uint8 approvals; // distinct approving signers so far (the proposer included)
    uint8 approvalsRequired; // K, fixed when proposed
    uint16 reasonCode; // application-defined reason
    uint32 round; // increments per proposal on a declaration; approvals are per round
    address proposer; // first signer
    bytes32 reportSha256; // sha256 of the decision report (0 if none)
}

/// @notice An alert raised by an agency on a document, declaration or trader.
struct Alert {
    bytes32 subject; // what is flagged (see {AlertSubject})
    AlertSubject subjectKind; // how to read `subject`
    uint32 agencyIndex; // agency that raised it (and may clear it)
    uint16 reasonCode; // application-defined reason
    bool active; // false once cleared
    uint40 raisedAt; // unix seconds
    bytes32 evidenceSha256; // sha256 of the evidence document (0 if none)
}

/// @notice A Merkle batch anchor.
struct Batch {
    uint32 agencyIndex; // agency that anchored it; 0 when unknown
    uint32 leafCount; // number of leaves in the tree
    uint8 kind; // application-defined batch kind (parcel manifests, seal readings, …)
    uint40 anchoredAt; // unix seconds
}
