// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {IAgencyRegistry} from "./interfaces/IAgencyRegistry.sol";
import {IClearanceLedger} from "./interfaces/IClearanceLedger.sol";
import {
    Alert,
    AlertSubject,
    AnchorKind,
    Batch,
    Channel,
    Declaration,
    DeclarationStatus,
    DecisionKind,
    PendingDecision,
    Role,
    Stamp,
    StampResult,
    StampType,
    SupportingDocument
} from "./LedgerTypes.sol";

/// @title ClearanceLedger
/// @notice Declarations, amendments, selectivity channels, inspection stamps, customs decisions,
/// Merkle batch anchors and alerts, authorized against an {AgencyRegistry}. See {IClearanceLedger}.
contract ClearanceLedger is IClearanceLedger, EIP712, Nonces {
    /// @notice Longest binary CID accepted.
    uint256 public constant MAX_CID_LENGTH = 128;
    /// @notice Most supporting documents per declaration version.
    uint256 public constant MAX_DOCUMENTS = 32;
    /// @notice Most stamps a RELEASE may cite.
    uint256 public constant MAX_CITED_STAMPS = 16;
    /// @notice Most distinct signers a decision kind may require.
    uint8 public constant MAX_APPROVALS = 5;
    /// @notice Longest time between a signed stamp's signing time and its deadline.
    uint256 public constant MAX_SIGNATURE_WINDOW = 30 days;
    /// @notice Bit mask of every defined stamp type.
    uint16 public constant ALL_STAMP_TYPES = uint16((1 << (uint8(type(StampType).max) + 1)) - 1);

    bytes32 private constant _STAMP_TYPEHASH = keccak256(
        "Stamp(bytes32 declarationId,uint8 stampType,uint8 result,bytes32 reportSha256,bytes reportCid,address signer,uint64 signedAt,uint256 nonce,uint256 deadline)"
    );
    uint16 private constant _ANY_ROLE = uint16((1 << (uint8(type(Role).max) + 1)) - 1);

    IAgencyRegistry private immutable _registry;

    mapping(bytes32 declarationId => Declaration) private _declarations;
    mapping(bytes32 mrn => bytes32 declarationId) private _byMrn;
    mapping(bytes32 documentSha256 => bytes32 declarationId) private _supportingOwner;
    mapping(bytes32 stampId => Stamp) private _stamps;
    mapping(bytes32 declarationId => mapping(uint8 stampType => uint256)) private _openFailures;
    mapping(bytes32 declarationId => PendingDecision) private _pending;
    mapping(bytes32 declarationId => uint32) private _decisionRound;
    mapping(bytes32 declarationId => mapping(uint32 round => mapping(address signer => bool))) private _decisionApprovals;
    mapping(uint8 decisionKind => uint8) private _approvalsRequired;
    mapping(bytes32 root => Batch) private _batches;
    mapping(uint64 alertId => Alert) private _alerts;
    mapping(bytes32 subject => uint256) private _activeAlerts;
    uint64 private _alertCount;

    /// @notice Deploys a ledger that authorizes every caller against `registry_`.
    constructor(IAgencyRegistry registry_) EIP712("ClearanceLedger", "1") {
        _registry = registry_;
    }

    // ------------------------------------------------------------------ traders

    /// @inheritdoc IClearanceLedger
    function submitDeclaration(
        bytes32 jurisdictionId,
        bytes32 localReference,
        bytes32 commitment,
        bytes calldata cid,
        SupportingDocument[] calldata documents
    ) external {
        uint32 jurisdiction = _registry.authorizeSubmission(msg.sender, jurisdictionId);
        if (localReference == bytes32(0)) revert ClearanceLedgerZeroValue("localReference");
        _storeDeclaration(commitment, cid, documents, jurisdiction, 1, bytes32(0));
        emit DeclarationSubmitted(commitment, msg.sender, jurisdiction, localReference, cid, documents);
    }

    /// @inheritdoc IClearanceLedger
    function amendDeclaration(
        bytes32 previousId,
        bytes32 commitment,
        bytes calldata cid,
        SupportingDocument[] calldata documents
    ) external {
        Declaration storage previous = _known(previousId);
        if (previous.declarant != msg.sender) revert ClearanceLedgerNotDeclarant(previousId, msg.sender);
        if (previous.status != DeclarationStatus.SUBMITTED && previous.status != DeclarationStatus.ACCEPTED) {
            revert ClearanceLedgerInvalidStatus(previousId, uint8(previous.status));
        }
        // The trader must still be active; the jurisdiction is re-checked too.
        uint32 jurisdiction = _registry.authorizeSubmission(msg.sender, _registry.agencyByIndex(previous.jurisdiction).id);
        uint32 version = previous.version + 1;
        _storeDeclaration(commitment, cid, documents, jurisdiction, version, previousId);
        // The MRN stays with the declaration across any chain of amendments.
        if (previous.mrn != bytes32(0)) _declarations[commitment].mrn = previous.mrn;
        previous.status = DeclarationStatus.SUPERSEDED;
        previous.supersededBy = commitment;
        emit DeclarationAmended(commitment, previousId, msg.sender, version, cid, documents);
    }

    // ------------------------------------------------------------------ customs authority

    /// @inheritdoc IClearanceLedger
    function acceptDeclaration(bytes32 declarationId, bytes32 mrn) external {
        Declaration storage d = _known(declarationId);
        _authorizeJurisdiction(declarationId, d);
        if (d.status != DeclarationStatus.SUBMITTED) revert ClearanceLedgerInvalidStatus(declarationId, uint8(d.status));
        bytes32 kept = d.mrn; // carried over from an accepted earlier version, if any
        if (mrn == bytes32(0) || (kept != bytes32(0) ? mrn != kept : _byMrn[mrn] != bytes32(0))) {
            revert ClearanceLedgerInvalidMrn(declarationId, mrn);
        }
        d.mrn = mrn;
        _byMrn[mrn] = declarationId;
        bool released = d.channel == Channel.GREEN && d.requiredStamps == 0;
        d.status = released ? DeclarationStatus.RELEASED : DeclarationStatus.ACCEPTED;
        emit DeclarationAccepted(declarationId, mrn, msg.sender, released);
    }

    /// @inheritdoc IClearanceLedger
    function decide(
        bytes32 declarationId,
        uint8 kind,
        uint16 reasonCode,
        bytes32 reportSha256,
        bytes32[] calldata passStamps
    ) external {
        Declaration storage d = _known(declarationId);
        _authorizeJurisdiction(declarationId, d);
        if (kind > uint8(type(DecisionKind).max)) revert ClearanceLedgerInvalidDecisionKind(kind);
        if (_pending[declarationId].approvals != 0) revert ClearanceLedgerDecisionPending(declarationId);
        DeclarationStatus next = _checkDecision(declarationId, d, DecisionKind(kind), passStamps);
        uint8 required = _required(kind);
        if (required <= 1) {
            d.status = next;
            emit DecisionRecorded(declarationId, kind, uint8(next), reasonCode, reportSha256, msg.sender, 0, passStamps);
            return;
        }
        uint32 round = ++_decisionRound[declarationId];
        _decisionApprovals[declarationId][round][msg.sender] = true;
        _pending[declarationId] = PendingDecision({
            kind: DecisionKind(kind),
            approvals: 1,
            approvalsRequired: required,
            reasonCode: reasonCode,
            round: round,
            proposer: msg.sender,
            reportSha256: reportSha256
        });
        emit DecisionProposed(declarationId, round, kind, reasonCode, reportSha256, msg.sender, required);
    }

    /// @inheritdoc IClearanceLedger
    function approveDecision(bytes32 declarationId, bytes32[] calldata passStamps) external {
        Declaration storage d = _known(declarationId);
        _authorizeJurisdiction(declarationId, d);
        PendingDecision storage p = _pending[declarationId];
        if (p.approvals == 0) revert ClearanceLedgerNoPendingDecision(declarationId);
        uint32 round = p.round;
        if (_decisionApprovals[declarationId][round][msg.sender]) {
            revert ClearanceLedgerAlreadyApproved(declarationId, msg.sender);
        }
        uint8 approvals = ++p.approvals;
        if (approvals < p.approvalsRequired) {
            _decisionApprovals[declarationId][round][msg.sender] = true;
            emit DecisionApproved(declarationId, round, msg.sender, approvals);
            return;
        }
        // The final approval closes the round in this call: no flag to store (DecisionRecorded names it).
        DecisionKind kind = p.kind;
        DeclarationStatus next = _checkDecision(declarationId, d, kind, passStamps);
        uint16 reasonCode = p.reasonCode;
        bytes32 reportSha256 = p.reportSha256;
        delete _pending[declarationId];
        d.status = next;
        emit DecisionRecorded(
            declarationId, uint8(kind), uint8(next), reasonCode, reportSha256, msg.sender, round, passStamps
        );
    }

    /// @inheritdoc IClearanceLedger
    function cancelDecision(bytes32 declarationId) external {
        Declaration storage d = _known(declarationId);
        _authorizeJurisdiction(declarationId, d);
        PendingDecision storage p = _pending[declarationId];
        if (p.approvals == 0) revert ClearanceLedgerNoPendingDecision(declarationId);
        uint32 round = p.round;
        delete _pending[declarationId];
        emit DecisionCancelled(declarationId, round, msg.sender);
    }

    // ------------------------------------------------------------------ risk oracle

    /// @inheritdoc IClearanceLedger
    function assignChannel(bytes32 declarationId, uint8 channel, uint16 requiredStamps, bytes32 ruleSetHash)
        external
    {
        Declaration storage d = _known(declarationId);
        uint32 agencyIndex = _registry.authorize(msg.sender, _roleBit(Role.RISK_ORACLE));
        if (d.status != DeclarationStatus.SUBMITTED && d.status != DeclarationStatus.ACCEPTED) {
            revert ClearanceLedgerInvalidStatus(declarationId, uint8(d.status));
        }
        if (d.channel != Channel.NONE) revert ClearanceLedgerChannelAlreadySet(declarationId);
        if (
            channel == uint8(Channel.NONE) || channel > uint8(type(Channel).max)
                || requiredStamps & ~ALL_STAMP_TYPES != 0
                || (channel != uint8(Channel.GREEN) && requiredStamps == 0)
        ) revert ClearanceLedgerInvalidChannel(channel, requiredStamps);
        if (ruleSetHash == bytes32(0)) revert ClearanceLedgerZeroValue("ruleSetHash");
        d.channel = Channel(channel);
        d.requiredStamps = requiredStamps;
        d.ruleSetHash = ruleSetHash;
        bool released = d.status == DeclarationStatus.ACCEPTED && channel == uint8(Channel.GREEN) && requiredStamps == 0;
        if (released) d.status = DeclarationStatus.RELEASED;
        emit ChannelAssigned(declarationId, agencyIndex, channel, requiredStamps, ruleSetHash, msg.sender, released);
    }

    // ------------------------------------------------------------------ inspection agencies

    /// @inheritdoc IClearanceLedger
    function recordStamp(
        bytes32 declarationId,
        uint8 stampType,
        uint8 result,
        bytes32 reportSha256,
        bytes calldata reportCid
    ) external {
        _checkStampValues(stampType, result);
        uint32 agencyIndex = _registry.authorize(msg.sender, _stampRole(stampType));
        _storeStamp(declarationId, stampType, result, reportSha256, reportCid, msg.sender, agencyIndex, uint64(block.timestamp));
        emit StampRecorded(
            reportSha256, declarationId, agencyIndex, msg.sender, stampType, result, uint64(block.timestamp), reportCid, address(0)
        );
    }

    /// @inheritdoc IClearanceLedger
    function relayStamp(SignedStamp calldata s, bytes calldata signature) external {
        if (block.timestamp > s.deadline) revert ClearanceLedgerSignatureExpired(s.deadline);
        if (s.signedAt > block.timestamp) revert ClearanceLedgerSignedInFuture(s.signedAt);
        if (s.deadline - s.signedAt > MAX_SIGNATURE_WINDOW) revert ClearanceLedgerSignatureWindowTooLong(s.signedAt, s.deadline);
        _checkStampValues(s.stampType, s.result);
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(_hashTypedDataV4(_stampStructHash(s)), signature);
        if (err != ECDSA.RecoverError.NoError || recovered != s.signer) revert ClearanceLedgerInvalidSignature(s.signer);
        uint256 expected = _useNonce(s.signer);
        if (s.nonce != expected) revert ClearanceLedgerInvalidNonce(s.signer, expected);
        // The agency must hold the role now; the key must have been valid when it signed and must
        // have no recorded compromise (a compromised key could back-date signedAt).
        uint32 agencyIndex = _registry.authorizeSigned(s.signer, _stampRole(s.stampType), s.signedAt);
        _storeStamp(s.declarationId, s.stampType, s.result, s.reportSha256, s.reportCid, s.signer, agencyIndex, s.signedAt);
        emit StampRecorded(
            s.reportSha256, s.declarationId, agencyIndex, s.signer, s.stampType, s.result, s.signedAt, s.reportCid, msg.sender
        );
    }

    /// @inheritdoc IClearanceLedger
    function revokeStamp(bytes32 stampId, uint16 reasonCode) external {
        Stamp storage s = _stamps[stampId];
        if (s.declarationId == bytes32(0)) revert ClearanceLedgerUnknownStamp(stampId);
        uint32 caller = _registry.authorize(msg.sender, _ANY_ROLE);
        if (caller != s.agencyIndex) revert ClearanceLedgerNotStampIssuer(stampId, caller);
        if (s.revoked) revert ClearanceLedgerStampAlreadyRevoked(stampId);
        s.revoked = true;
        if (s.result != StampResult.PASS) --_openFailures[s.declarationId][uint8(s.stampType)];
        emit StampRevoked(stampId, s.declarationId, msg.sender, reasonCode);
    }

    // ------------------------------------------------------------------ any agency

    /// @inheritdoc IClearanceLedger
    function anchorBatch(bytes32 root, uint32 leafCount, uint8 kind, bytes calldata manifestCid) external {
        uint32 agencyIndex = _registry.authorize(msg.sender, _ANY_ROLE);
        if (root == bytes32(0) || leafCount == 0) revert ClearanceLedgerInvalidBatch(root, leafCount);
        if (manifestCid.length > MAX_CID_LENGTH) revert ClearanceLedgerInvalidCid(manifestCid.length);
        Batch storage b = _batches[root];
        if (b.agencyIndex != 0) revert ClearanceLedgerBatchExists(root);
        b.agencyIndex = agencyIndex;
        b.leafCount = leafCount;
        b.kind = kind;
        b.anchoredAt = uint40(block.timestamp);
        emit BatchAnchored(root, agencyIndex, leafCount, kind, manifestCid, msg.sender);
    }

    /// @inheritdoc IClearanceLedger
    function raiseAlert(uint8 subjectKind, bytes32 subject, uint16 reasonCode, bytes32 evidenceSha256)
        external
        returns (uint64 alertId)
    {
        uint32 agencyIndex = _registry.authorize(msg.sender, _ANY_ROLE);
        if (subjectKind > uint8(type(AlertSubject).max)) revert ClearanceLedgerInvalidAlertSubject(subjectKind);
        if (subject == bytes32(0)) revert ClearanceLedgerZeroValue("subject");
        alertId = ++_alertCount;
        _alerts[alertId] = Alert({
            subject: subject,
            subjectKind: AlertSubject(subjectKind),
            agencyIndex: agencyIndex,
            reasonCode: reasonCode,
            active: true,
            raisedAt: uint40(block.timestamp),
            evidenceSha256: evidenceSha256
        });
        ++_activeAlerts[subject];
        emit AlertRaised(alertId, subject, agencyIndex, subjectKind, reasonCode, evidenceSha256, msg.sender);
    }

    /// @inheritdoc IClearanceLedger
    function clearAlert(uint64 alertId, uint16 reasonCode) external {
        Alert storage a = _alerts[alertId];
        if (!a.active) revert ClearanceLedgerUnknownAlert(alertId);
        if (!_isGovernance()) {
            uint32 caller = _registry.authorize(msg.sender, _ANY_ROLE);
            if (caller != a.agencyIndex) revert ClearanceLedgerNotAlertIssuer(alertId, caller);
        }
        a.active = false;
        --_activeAlerts[a.subject];
        emit AlertCleared(alertId, a.subject, reasonCode, msg.sender);
    }

    // ------------------------------------------------------------------ governed

    /// @inheritdoc IClearanceLedger
    function setApprovalsRequired(uint8 kind, uint8 approvals) external {
        if (!_isGovernance()) revert ClearanceLedgerNotGovernance(msg.sender);
        if (kind > uint8(type(DecisionKind).max)) revert ClearanceLedgerInvalidDecisionKind(kind);
        if (approvals == 0 || approvals > MAX_APPROVALS) revert ClearanceLedgerInvalidApprovals(approvals);
        _approvalsRequired[kind] = approvals;
        emit ApprovalsRequiredChanged(kind, approvals);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IClearanceLedger
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @inheritdoc IClearanceLedger
    function declaration(bytes32 declarationId) external view returns (Declaration memory) {
        return _declarations[declarationId];
    }

    /// @inheritdoc IClearanceLedger
    function declarationByMrn(bytes32 mrn) external view returns (bytes32) {
        return _byMrn[mrn];
    }

    /// @inheritdoc IClearanceLedger
    function stamp(bytes32 stampId) external view returns (Stamp memory) {
        return _stamps[stampId];
    }

    /// @inheritdoc IClearanceLedger
    function openFailures(bytes32 declarationId, uint8 stampType) external view returns (uint256) {
        return _openFailures[declarationId][stampType];
    }

    /// @inheritdoc IClearanceLedger
    function pendingDecision(bytes32 declarationId) external view returns (PendingDecision memory p) {
        p = _pending[declarationId];
        p.round = _decisionRound[declarationId];
    }

    /// @inheritdoc IClearanceLedger
    function hasApprovedDecision(bytes32 declarationId, uint32 round, address signer) external view returns (bool) {
        return _decisionApprovals[declarationId][round][signer];
    }

    /// @inheritdoc IClearanceLedger
    function approvalsRequired(uint8 kind) external view returns (uint8) {
        return _required(kind);
    }

    /// @inheritdoc IClearanceLedger
    function batch(bytes32 root) external view returns (Batch memory) {
        return _batches[root];
    }

    /// @inheritdoc IClearanceLedger
    function isBatchLeaf(bytes32 root, bytes32[] calldata proof, bytes32 leaf) external view returns (bool) {
        return _batches[root].agencyIndex != 0 && MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @inheritdoc IClearanceLedger
    function areBatchLeaves(bytes32 root, bytes32[] calldata proof, bool[] calldata proofFlags, bytes32[] calldata leaves)
        external
        view
        returns (bool)
    {
        if (_batches[root].agencyIndex == 0) return false;
        try this.multiProofVerifyExternal(proof, proofFlags, root, leaves) returns (bool ok) {
            return ok;
        } catch {
            return false; // malformed multiproof
        }
    }

    /// @notice Helper for {areBatchLeaves}: OpenZeppelin multiProofVerify, external so a malformed
    /// proof's revert can be caught. Pure; callable by anyone.
    function multiProofVerifyExternal(
        bytes32[] calldata proof,
        bool[] calldata proofFlags,
        bytes32 root,
        bytes32[] calldata leaves
    ) external pure returns (bool) {
        return MerkleProof.multiProofVerifyCalldata(proof, proofFlags, root, leaves);
    }

    /// @inheritdoc IClearanceLedger
    function alert(uint64 alertId) external view returns (Alert memory) {
        return _alerts[alertId];
    }

    /// @inheritdoc IClearanceLedger
    function alertCount() external view returns (uint64) {
        return _alertCount;
    }

    /// @inheritdoc IClearanceLedger
    function activeAlertCount(bytes32 subject) external view returns (uint256) {
        return _activeAlerts[subject];
    }

    /// @inheritdoc IClearanceLedger
    function anchorOf(bytes32 sha256Hash) external view returns (AnchorKind, bytes32) {
        if (sha256Hash == bytes32(0)) return (AnchorKind.NONE, bytes32(0));
        if (_declarations[sha256Hash].status != DeclarationStatus.NONE) return (AnchorKind.DECLARATION, sha256Hash);
        bytes32 owner = _supportingOwner[sha256Hash];
        if (owner != bytes32(0)) return (AnchorKind.SUPPORTING_DOCUMENT, owner);
        bytes32 stamped = _stamps[sha256Hash].declarationId;
        if (stamped != bytes32(0)) return (AnchorKind.STAMP_REPORT, stamped);
        if (_batches[sha256Hash].agencyIndex != 0) return (AnchorKind.BATCH_ROOT, sha256Hash);
        return (AnchorKind.NONE, bytes32(0));
    }

    /// @inheritdoc IClearanceLedger
    function stampDigest(SignedStamp calldata s) external view returns (bytes32) {
        return _hashTypedDataV4(_stampStructHash(s));
    }

    // ------------------------------------------------------------------ internals

    function _storeDeclaration(
        bytes32 commitment,
        bytes calldata cid,
        SupportingDocument[] calldata documents,
        uint32 jurisdiction,
        uint32 version,
        bytes32 previousId
    ) private {
        if (commitment == bytes32(0)) revert ClearanceLedgerZeroValue("commitment");
        if (cid.length == 0 || cid.length > MAX_CID_LENGTH) revert ClearanceLedgerInvalidCid(cid.length);
        if (documents.length > MAX_DOCUMENTS) revert ClearanceLedgerTooMany(documents.length, MAX_DOCUMENTS);
        Declaration storage d = _declarations[commitment];
        if (d.status != DeclarationStatus.NONE) revert ClearanceLedgerDeclarationExists(commitment);
        d.declarant = msg.sender;
        d.jurisdiction = jurisdiction;
        d.status = DeclarationStatus.SUBMITTED;
        d.version = version;
        if (previousId != bytes32(0)) d.previousId = previousId;
        for (uint256 i = 0; i < documents.length; ++i) {
            bytes32 sha = documents[i].sha256;
            uint256 cidLength = documents[i].cid.length;
            if (sha == bytes32(0)) revert ClearanceLedgerZeroValue("documentSha256");
            if (cidLength == 0 || cidLength > MAX_CID_LENGTH) revert ClearanceLedgerInvalidCid(cidLength);
            if (_supportingOwner[sha] == bytes32(0)) _supportingOwner[sha] = commitment; // first anchor wins
        }
    }

    function _storeStamp(
        bytes32 declarationId,
        uint8 stampType,
        uint8 result,
        bytes32 reportSha256,
        bytes calldata reportCid,
        address signer,
        uint32 agencyIndex,
        uint64 signedAt
    ) private {
        Declaration storage d = _known(declarationId);
        if (d.status != DeclarationStatus.ACCEPTED && d.status != DeclarationStatus.HELD) {
            revert ClearanceLedgerInvalidStatus(declarationId, uint8(d.status));
        }
        if (reportSha256 == bytes32(0)) revert ClearanceLedgerZeroValue("reportSha256");
        if (reportCid.length == 0 || reportCid.length > MAX_CID_LENGTH) revert ClearanceLedgerInvalidCid(reportCid.length);
        Stamp storage s = _stamps[reportSha256];
        if (s.declarationId != bytes32(0)) revert ClearanceLedgerStampExists(reportSha256);
        s.declarationId = declarationId;
        s.signer = signer;
        s.agencyIndex = agencyIndex;
        s.stampType = StampType(stampType);
        s.result = StampResult(result);
        s.signedAt = uint40(signedAt);
        if (result != uint8(StampResult.PASS)) ++_openFailures[declarationId][stampType];
    }

    function _checkDecision(bytes32 declarationId, Declaration storage d, DecisionKind kind, bytes32[] calldata passStamps)
        private
        view
        returns (DeclarationStatus next)
    {
        DeclarationStatus status = d.status;
        bool allowed;
        if (kind == DecisionKind.RELEASE) {
            allowed = status == DeclarationStatus.ACCEPTED || status == DeclarationStatus.HELD;
            next = DeclarationStatus.RELEASED;
        } else if (kind == DecisionKind.HOLD) {
            allowed = status == DeclarationStatus.ACCEPTED;
            next = DeclarationStatus.HELD;
        } else if (kind == DecisionKind.REJECT) {
            allowed = status == DeclarationStatus.SUBMITTED || status == DeclarationStatus.ACCEPTED
                || status == DeclarationStatus.HELD;
            next = DeclarationStatus.REJECTED;
        } else {
            allowed = status == DeclarationStatus.HELD;
            next = DeclarationStatus.SEIZED;
        }
        if (!allowed) revert ClearanceLedgerInvalidDecision(declarationId, uint8(status), uint8(kind));
        if (kind == DecisionKind.RELEASE) _checkReleaseStamps(declarationId, d, passStamps);
    }

    function _checkReleaseStamps(bytes32 declarationId, Declaration storage d, bytes32[] calldata passStamps)
        private
        view
    {
        if (d.channel == Channel.NONE) revert ClearanceLedgerChannelNotSet(declarationId);
        if (passStamps.length > MAX_CITED_STAMPS) revert ClearanceLedgerTooMany(passStamps.length, MAX_CITED_STAMPS);
        uint16 covered;
        for (uint256 i = 0; i < passStamps.length; ++i) {
            Stamp storage s = _stamps[passStamps[i]];
            if (
                s.declarationId != declarationId || s.result != StampResult.PASS || s.revoked
                    || !_registry.wasValidSigner(s.signer, s.agencyIndex, s.signedAt)
            ) revert ClearanceLedgerStampInvalid(declarationId, passStamps[i]);
            covered |= uint16(1) << uint8(s.stampType);
        }
        uint16 required = d.requiredStamps;
        for (uint8 t = 0; required >> t != 0; ++t) {
            if ((required >> t) & 1 == 0) continue;
            if ((covered >> t) & 1 == 0) revert ClearanceLedgerStampMissing(declarationId, t);
            if (_openFailures[declarationId][t] != 0) revert ClearanceLedgerStampFailureOpen(declarationId, t);
        }
    }

    function _authorizeJurisdiction(bytes32 declarationId, Declaration storage d) private view {
        uint32 caller = _registry.authorize(msg.sender, _roleBit(Role.CUSTOMS_AUTHORITY));
        if (caller != d.jurisdiction) revert ClearanceLedgerNotJurisdiction(declarationId, caller);
    }

    function _known(bytes32 declarationId) private view returns (Declaration storage d) {
        d = _declarations[declarationId];
        if (d.status == DeclarationStatus.NONE) revert ClearanceLedgerUnknownDeclaration(declarationId);
    }

    function _checkStampValues(uint8 stampType, uint8 result) private pure {
        if (stampType > uint8(type(StampType).max)) revert ClearanceLedgerInvalidStampType(stampType);
        if (result == uint8(StampResult.NONE) || result > uint8(type(StampResult).max)) {
            revert ClearanceLedgerInvalidStampResult(result);
        }
    }

    function _stampRole(uint8 stampType) private pure returns (uint16) {
        return stampType == uint8(StampType.EXPORT_CLEARANCE) ? _roleBit(Role.PARTNER_CUSTOMS) : _roleBit(Role.INSPECTION_AGENCY);
    }

    function _stampStructHash(SignedStamp calldata s) private pure returns (bytes32) {
        return keccak256(
            abi.encode(
                _STAMP_TYPEHASH,
                s.declarationId,
                s.stampType,
                s.result,
                s.reportSha256,
                keccak256(s.reportCid),
                s.signer,
                s.signedAt,
                s.nonce,
                s.deadline
            )
        );
    }

    function _isGovernance() private view returns (bool) {
        return msg.sender == address(_registry) || msg.sender == _registry.bootstrapper();
    }

    function _required(uint8 kind) private view returns (uint8) {
        uint8 k = _approvalsRequired[kind];
        return k == 0 ? 1 : k;
    }

    function _roleBit(Role role) private pure returns (uint16) {
        return uint16(1) << uint8(role);
    }
}
