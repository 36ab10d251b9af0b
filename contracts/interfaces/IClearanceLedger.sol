// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {
    Alert, AnchorKind, Batch, Declaration, PendingDecision, Stamp, SupportingDocument
} from "../LedgerTypes.sol";

/// @title Clearance ledger: declarations, amendments, channels, stamps, decisions, batches, alerts.
/// @notice A declaration version is identified by its commitment (sha256 of its canonical
/// document), a stamp by the sha256 of its report, a batch by its Merkle root: anchoring the same
/// document twice is refused by construction. Lists (stamps of a declaration, decisions, documents)
/// are carried by events, which hold everything a replay needs; storage keeps what the rules check.
/// Enum-valued arguments are passed as uint8 and validated, so bad values get a typed error.
interface IClearanceLedger {
    /// @notice An EIP-712 stamp signed by an inspector key and relayed by anyone.
    struct SignedStamp {
        bytes32 declarationId; // declaration version stamped
        uint8 stampType; // {StampType}
        uint8 result; // {StampResult}
        bytes32 reportSha256; // sha256 of the report (becomes the stamp id)
        bytes reportCid; // binary CID of the stored report envelope
        address signer; // inspector key that signed
        uint64 signedAt; // unix seconds of signing; the key must be valid then
        uint256 nonce; // the signer's next nonce ({nonces})
        uint256 deadline; // unix seconds after which the signature may not be relayed
    }

    // ------------------------------------------------------------------ errors
    /// @notice `caller` may not call a governed function.
    error ClearanceLedgerNotGovernance(address caller);
    /// @notice A bytes32 argument that must be non-zero was zero (`field` names it).
    error ClearanceLedgerZeroValue(bytes32 field);
    /// @notice A CID is empty or longer than {MAX_CID_LENGTH}.
    error ClearanceLedgerInvalidCid(uint256 length);
    /// @notice Too many supporting documents (or cited stamps).
    error ClearanceLedgerTooMany(uint256 count, uint256 max);
    /// @notice A declaration with this id (commitment) already exists.
    error ClearanceLedgerDeclarationExists(bytes32 declarationId);
    /// @notice No declaration has this id.
    error ClearanceLedgerUnknownDeclaration(bytes32 declarationId);
    /// @notice Only the declarant may amend.
    error ClearanceLedgerNotDeclarant(bytes32 declarationId, address caller);
    /// @notice The caller's agency is not the declaration's jurisdiction.
    error ClearanceLedgerNotJurisdiction(bytes32 declarationId, uint32 callerAgencyIndex);
    /// @notice The action is not allowed in the declaration's current status.
    error ClearanceLedgerInvalidStatus(bytes32 declarationId, uint8 status);
    /// @notice The MRN is zero, used by another declaration, or differs from the amended version's.
    error ClearanceLedgerInvalidMrn(bytes32 declarationId, bytes32 mrn);
    /// @notice A channel was already assigned to this declaration version.
    error ClearanceLedgerChannelAlreadySet(bytes32 declarationId);
    /// @notice The channel / required-stamps combination is invalid (YELLOW and RED need stamps).
    error ClearanceLedgerInvalidChannel(uint8 channel, uint16 requiredStamps);
    /// @notice RELEASE needs a channel first.
    error ClearanceLedgerChannelNotSet(bytes32 declarationId);
    /// @notice Unknown stamp type.
    error ClearanceLedgerInvalidStampType(uint8 stampType);
    /// @notice Unknown stamp result.
    error ClearanceLedgerInvalidStampResult(uint8 result);
    /// @notice A stamp with this id (report sha256) already exists.
    error ClearanceLedgerStampExists(bytes32 stampId);
    /// @notice No stamp has this id.
    error ClearanceLedgerUnknownStamp(bytes32 stampId);
    /// @notice The stamp was already revoked.
    error ClearanceLedgerStampAlreadyRevoked(bytes32 stampId);
    /// @notice Only the issuing agency may revoke a stamp.
    error ClearanceLedgerNotStampIssuer(bytes32 stampId, uint32 callerAgencyIndex);
    /// @notice RELEASE lacks a valid PASS stamp of a required type.
    error ClearanceLedgerStampMissing(bytes32 declarationId, uint8 stampType);
    /// @notice A cited stamp is for another declaration, not PASS, revoked, or its key was not valid.
    error ClearanceLedgerStampInvalid(bytes32 declarationId, bytes32 stampId);
    /// @notice A non-revoked FAIL / INCONCLUSIVE stamp of a required type blocks RELEASE.
    error ClearanceLedgerStampFailureOpen(bytes32 declarationId, uint8 stampType);
    /// @notice The signed stamp's deadline has passed.
    error ClearanceLedgerSignatureExpired(uint256 deadline);
    /// @notice The signed stamp claims a signing time in the future.
    error ClearanceLedgerSignedInFuture(uint64 signedAt);
    /// @notice deadline − signedAt exceeds {MAX_SIGNATURE_WINDOW}.
    error ClearanceLedgerSignatureWindowTooLong(uint64 signedAt, uint256 deadline);
    /// @notice The signature is malformed, high-s, or not by `signer` for this chain and contract.
    error ClearanceLedgerInvalidSignature(address signer);
    /// @notice The nonce is not the signer's next nonce.
    error ClearanceLedgerInvalidNonce(address signer, uint256 expected);
    /// @notice Unknown decision kind.
    error ClearanceLedgerInvalidDecisionKind(uint8 kind);
    /// @notice The decision is not allowed in the declaration's status.
    error ClearanceLedgerInvalidDecision(bytes32 declarationId, uint8 status, uint8 kind);
    /// @notice A dual-control decision is already pending on this declaration.
    error ClearanceLedgerDecisionPending(bytes32 declarationId);
    /// @notice No dual-control decision is pending on this declaration.
    error ClearanceLedgerNoPendingDecision(bytes32 declarationId);
    /// @notice `signer` already approved the pending decision.
    error ClearanceLedgerAlreadyApproved(bytes32 declarationId, address signer);
    /// @notice Approvals required must be between 1 and {MAX_APPROVALS}.
    error ClearanceLedgerInvalidApprovals(uint8 approvals);
    /// @notice A batch with this root already exists.
    error ClearanceLedgerBatchExists(bytes32 root);
    /// @notice A batch needs a non-zero root and at least one leaf.
    error ClearanceLedgerInvalidBatch(bytes32 root, uint32 leafCount);
    /// @notice Unknown alert subject kind.
    error ClearanceLedgerInvalidAlertSubject(uint8 subjectKind);
    /// @notice No active alert has this id.
    error ClearanceLedgerUnknownAlert(uint64 alertId);
    /// @notice Only the raising agency (or governance) may clear an alert.
    error ClearanceLedgerNotAlertIssuer(uint64 alertId, uint32 callerAgencyIndex);

    // ------------------------------------------------------------------ events
    /// @notice A trader submitted version 1 of a declaration.
    event DeclarationSubmitted(
        bytes32 indexed declarationId,
        address indexed declarant,
        uint32 indexed jurisdiction,
        bytes32 localReference,
        bytes cid,
        SupportingDocument[] documents
    );
    /// @notice A trader amended `previousId`; it is now SUPERSEDED by `declarationId` (SUBMITTED).
    event DeclarationAmended(
        bytes32 indexed declarationId,
        bytes32 indexed previousId,
        address indexed declarant,
        uint32 version,
        bytes cid,
        SupportingDocument[] documents
    );
    /// @notice The jurisdiction accepted a declaration and assigned its MRN; `released` when the
    /// channel was already GREEN without required stamps (automatic release).
    event DeclarationAccepted(bytes32 indexed declarationId, bytes32 indexed mrn, address signer, bool released);
    /// @notice A risk oracle assigned the channel; `released` when this made an accepted
    /// declaration automatically released.
    event ChannelAssigned(
        bytes32 indexed declarationId,
        uint32 indexed agencyIndex,
        uint8 channel,
        uint16 requiredStamps,
        bytes32 ruleSetHash,
        address signer,
        bool released
    );
    /// @notice A stamp was recorded; `relayer` is zero for a direct stamp.
    event StampRecorded(
        bytes32 indexed stampId,
        bytes32 indexed declarationId,
        uint32 indexed agencyIndex,
        address signer,
        uint8 stampType,
        uint8 result,
        uint64 signedAt,
        bytes reportCid,
        address relayer
    );
    /// @notice The issuing agency revoked a stamp.
    event StampRevoked(bytes32 indexed stampId, bytes32 indexed declarationId, address signer, uint16 reasonCode);
    /// @notice A dual-control decision was proposed (the proposer's approval counted).
    event DecisionProposed(
        bytes32 indexed declarationId,
        uint32 round,
        uint8 kind,
        uint16 reasonCode,
        bytes32 reportSha256,
        address proposer,
        uint8 approvalsRequired
    );
    /// @notice A signer approved a pending decision that still needs more approvals.
    event DecisionApproved(bytes32 indexed declarationId, uint32 round, address signer, uint8 approvals);
    /// @notice A pending decision was cancelled.
    event DecisionCancelled(bytes32 indexed declarationId, uint32 round, address signer);
    /// @notice A decision took effect; the declaration is now in `status`. `round` is 0 for a
    /// single-signer decision.
    event DecisionRecorded(
        bytes32 indexed declarationId,
        uint8 kind,
        uint8 status,
        uint16 reasonCode,
        bytes32 reportSha256,
        address signer,
        uint32 round,
        bytes32[] passStamps
    );
    /// @notice A Merkle batch was anchored.
    event BatchAnchored(
        bytes32 indexed root, uint32 indexed agencyIndex, uint32 leafCount, uint8 kind, bytes manifestCid, address signer
    );
    /// @notice An agency raised an alert.
    event AlertRaised(
        uint64 indexed alertId,
        bytes32 indexed subject,
        uint32 indexed agencyIndex,
        uint8 subjectKind,
        uint16 reasonCode,
        bytes32 evidenceSha256,
        address signer
    );
    /// @notice An alert was cleared.
    event AlertCleared(uint64 indexed alertId, bytes32 indexed subject, uint16 reasonCode, address signer);
    /// @notice Governance changed how many distinct signers a decision kind needs.
    event ApprovalsRequiredChanged(uint8 kind, uint8 approvals);

    // ------------------------------------------------------------------ traders
    /// @notice Submits version 1 of a declaration.
    /// @dev Requirements: caller is an ACTIVE trader; jurisdiction an ACTIVE customs authority;
    /// commitment, reference non-zero and never used; CIDs 1..128 bytes; ≤ 32 supporting documents
    /// with non-zero sha256. A supporting document already anchored keeps its first anchor.
    /// Emits {DeclarationSubmitted}.
    function submitDeclaration(
        bytes32 jurisdictionId,
        bytes32 localReference,
        bytes32 commitment,
        bytes calldata cid,
        SupportingDocument[] calldata documents
    ) external;

    /// @notice Amends a declaration: `commitment` becomes version n+1 (SUBMITTED) and supersedes
    /// `previousId`. Stamps, channel and acceptance do not carry over; an MRN already assigned does
    /// (the new version shows it and must be accepted under it).
    /// @dev Requirements: caller is the declarant and an ACTIVE trader; previous is SUBMITTED or
    /// ACCEPTED; same input rules as {submitDeclaration}. Emits {DeclarationAmended}.
    function amendDeclaration(
        bytes32 previousId,
        bytes32 commitment,
        bytes calldata cid,
        SupportingDocument[] calldata documents
    ) external;

    // ------------------------------------------------------------------ customs authority
    /// @notice Accepts a SUBMITTED declaration and assigns its MRN; releases it at once when its
    /// channel is already GREEN without required stamps.
    /// @dev Requirements: caller is a valid key of the jurisdiction (CUSTOMS_AUTHORITY, ACTIVE); mrn
    /// non-zero and unused, or equal to the MRN carried over from an earlier version.
    /// Emits {DeclarationAccepted}.
    function acceptDeclaration(bytes32 declarationId, bytes32 mrn) external;

    /// @notice Decides RELEASE / HOLD / REJECT / SEIZE. Takes effect at once when the kind needs one
    /// signer; otherwise opens a pending decision that {approveDecision} completes.
    /// RELEASE cites, in `passStamps`, a PASS stamp for every required type.
    /// @dev Requirements: caller is a valid key of the jurisdiction; the transition is allowed
    /// (RELEASE: ACCEPTED|HELD with a channel; HOLD: ACCEPTED; REJECT: SUBMITTED|ACCEPTED|HELD;
    /// SEIZE: HELD); no decision pending; RELEASE: each cited stamp is for this declaration, PASS,
    /// not revoked, signed by a key valid then; every required type covered with no open FAIL /
    /// INCONCLUSIVE of that type. Emits {DecisionRecorded} or {DecisionProposed}.
    function decide(
        bytes32 declarationId,
        uint8 kind,
        uint16 reasonCode,
        bytes32 reportSha256,
        bytes32[] calldata passStamps
    ) external;

    /// @notice Approves the pending decision; the approval that reaches K makes it take effect
    /// (re-checking the transition and, for RELEASE, the cited stamps).
    /// @dev Requirements: caller is a valid key of the jurisdiction that has not approved this
    /// round. Emits {DecisionApproved} or {DecisionRecorded}.
    function approveDecision(bytes32 declarationId, bytes32[] calldata passStamps) external;

    /// @notice Cancels the pending decision.
    /// @dev Requirements: caller is a valid key of the jurisdiction; a decision is pending.
    /// Emits {DecisionCancelled}.
    function cancelDecision(bytes32 declarationId) external;

    // ------------------------------------------------------------------ risk oracle
    /// @notice Assigns the selectivity channel, the required stamp types and the hash of the rule
    /// set that produced them. Releases an ACCEPTED declaration at once when GREEN without stamps.
    /// @dev Requirements: caller is a valid RISK_ORACLE key; declaration SUBMITTED or ACCEPTED with
    /// no channel yet; channel GREEN|YELLOW|RED; YELLOW/RED need ≥ 1 required stamp; known stamp
    /// bits; ruleSetHash non-zero. Emits {ChannelAssigned}.
    function assignChannel(bytes32 declarationId, uint8 channel, uint16 requiredStamps, bytes32 ruleSetHash) external;

    // ------------------------------------------------------------------ inspection agencies
    /// @notice Records a stamp signed by the caller; its id is `reportSha256`.
    /// @dev Requirements: caller is a valid key of an ACTIVE agency with INSPECTION_AGENCY
    /// (EXPORT_CLEARANCE: PARTNER_CUSTOMS); declaration ACCEPTED or HELD; known type and result;
    /// report sha256 non-zero and unused; CID 1..128 bytes. Emits {StampRecorded}.
    function recordStamp(
        bytes32 declarationId,
        uint8 stampType,
        uint8 result,
        bytes32 reportSha256,
        bytes calldata reportCid
    ) external;

    /// @notice Records an EIP-712 stamp signed off-chain by an inspector key; anyone may relay it.
    /// @dev Requirements: as {recordStamp} for the signer, plus: deadline not passed; signedAt not
    /// in the future and within {MAX_SIGNATURE_WINDOW} of the deadline; the key was valid at
    /// signedAt and has no recorded compromise; nonce is the signer's next; signature low-s and
    /// over this chain id and contract. Emits {StampRecorded}.
    function relayStamp(SignedStamp calldata stamp, bytes calldata signature) external;

    /// @notice Revokes a stamp of the caller's agency with a reason code.
    /// @dev Requirements: caller is a valid key of the issuing agency (ACTIVE); stamp not revoked.
    /// Emits {StampRevoked}.
    function revokeStamp(bytes32 stampId, uint16 reasonCode) external;

    // ------------------------------------------------------------------ any agency
    /// @notice Anchors a Merkle root of `leafCount` leaves (OpenZeppelin StandardMerkleTree).
    /// @dev Requirements: caller is a valid key of an ACTIVE agency; root non-zero and new;
    /// leafCount ≥ 1; manifest CID ≤ 128 bytes. Emits {BatchAnchored}.
    function anchorBatch(bytes32 root, uint32 leafCount, uint8 kind, bytes calldata manifestCid) external;

    /// @notice Flags a document, declaration or trader.
    /// @dev Requirements: caller is a valid key of an ACTIVE agency; known subject kind; non-zero
    /// subject. Emits {AlertRaised}.
    function raiseAlert(uint8 subjectKind, bytes32 subject, uint16 reasonCode, bytes32 evidenceSha256)
        external
        returns (uint64 alertId);

    /// @notice Clears an active alert.
    /// @dev Requirements: caller is a valid key of the raising agency, or governance.
    /// Emits {AlertCleared}.
    function clearAlert(uint64 alertId, uint16 reasonCode) external;

    // ------------------------------------------------------------------ governed
    /// @notice Sets how many distinct signers of the jurisdiction a decision kind needs (1 = single).
    /// @dev Requirements: governance (a passed registry proposal, or the bootstrapper);
    /// 1 ≤ approvals ≤ {MAX_APPROVALS}. Emits {ApprovalsRequiredChanged}.
    function setApprovalsRequired(uint8 kind, uint8 approvals) external;

    // ------------------------------------------------------------------ views
    /// @notice The registry this ledger authorizes against.
    function registry() external view returns (address);

    /// @notice A declaration version (status NONE when unknown).
    function declaration(bytes32 declarationId) external view returns (Declaration memory);

    /// @notice The declaration version that holds `mrn` now (0 when none).
    function declarationByMrn(bytes32 mrn) external view returns (bytes32);

    /// @notice A stamp (declarationId 0 when unknown).
    function stamp(bytes32 stampId) external view returns (Stamp memory);

    /// @notice Number of non-revoked FAIL / INCONCLUSIVE stamps of `stampType` on a declaration.
    function openFailures(bytes32 declarationId, uint8 stampType) external view returns (uint256);

    /// @notice The pending dual-control decision (approvals 0 when none) and the current round.
    function pendingDecision(bytes32 declarationId) external view returns (PendingDecision memory);

    /// @notice True when `signer` approved round `round` of the declaration's decisions while it was
    /// open (the proposer and intermediate approvers; the final approval closes the round and is
    /// named by {DecisionRecorded}).
    function hasApprovedDecision(bytes32 declarationId, uint32 round, address signer) external view returns (bool);

    /// @notice Distinct signers a decision kind needs.
    function approvalsRequired(uint8 kind) external view returns (uint8);

    /// @notice A batch (agencyIndex 0 when unknown).
    function batch(bytes32 root) external view returns (Batch memory);

    /// @notice True when `root` is anchored and `leaf` (keccak256(keccak256(abi.encode(values))))
    /// is in it according to `proof`.
    function isBatchLeaf(bytes32 root, bytes32[] calldata proof, bytes32 leaf) external view returns (bool);

    /// @notice Multiproof variant of {isBatchLeaf} (OpenZeppelin MerkleProof.multiProofVerify).
    function areBatchLeaves(bytes32 root, bytes32[] calldata proof, bool[] calldata proofFlags, bytes32[] calldata leaves)
        external
        view
        returns (bool);

    /// @notice An alert (agencyIndex 0 when unknown).
    function alert(uint64 alertId) external view returns (Alert memory);

    /// @notice Number of alerts ever raised (ids run from 1 to this).
    function alertCount() external view returns (uint64);

    /// @notice Number of active alerts on `subject`.
    function activeAlertCount(bytes32 subject) external view returns (uint256);

    /// @notice Where a sha256 is anchored: a declaration (ref = its id), a supporting document (ref
    /// = the first declaration that anchored it), a stamp report (ref = the stamped declaration) or
    /// a batch root (ref = the root).
    function anchorOf(bytes32 sha256Hash) external view returns (AnchorKind kind, bytes32 ref);

    /// @notice The EIP-712 digest a signer signs for `stamp`.
    function stampDigest(SignedStamp calldata stamp) external view returns (bytes32);
}
