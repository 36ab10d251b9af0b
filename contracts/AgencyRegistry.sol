// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {IAgencyRegistry} from "./interfaces/IAgencyRegistry.sol";
import {Agency, AgencyStatus, Role, SignerKey, Trader, TraderStatus} from "./LedgerTypes.sol";

/// @title AgencyRegistry
/// @notice Consortium members, their roles and signer keys, trader accounts, and the M-of-N
/// governance that changes them. See {IAgencyRegistry}.
contract AgencyRegistry is IAgencyRegistry {
    /// @notice Bit mask of every defined role.
    uint16 public constant ALL_ROLES = uint16((1 << (uint8(type(Role).max) + 1)) - 1);
    /// @notice Longest proposal call data accepted.
    uint256 public constant MAX_CALLDATA = 4096;
    /// @notice Longest name / endpoint string accepted.
    uint256 public constant MAX_TEXT = 256;

    struct Proposal {
        address proposer; // governor who proposed it
        uint64 expiresAt; // unix seconds after which it can no longer be approved or executed
        uint32 approvals; // distinct governor approvals, proposer included
        bool executed; // executed successfully
        bool cancelled; // cancelled by the proposer
        address target; // contract called on execution
        uint64 epoch; // governor-set epoch when proposed
        bytes callData; // call executed on target
    }

    mapping(bytes32 agencyId => uint32 agencyIndex) private _indexOf;
    mapping(uint32 agencyIndex => Agency) private _agencies;
    uint32 private _agencyCount;

    mapping(address signer => SignerKey) private _keys;
    mapping(address account => Trader) private _traders;

    mapping(address account => bool) private _governors;
    uint32 private _governorCount;
    uint32 private _threshold;
    uint64 private _epoch;
    uint64 private _lifetime;
    address private _bootstrapper;

    mapping(address target => bool) private _governedTargets;
    mapping(uint256 proposalId => Proposal) private _proposals;
    mapping(uint256 proposalId => mapping(address governor => bool)) private _approved;
    uint256 private _proposalCount;

    /// @notice Deploys the registry with the caller as bootstrapper, `initialGovernors` as governors
    /// and `threshold` approvals required once bootstrap is finished.
    /// @dev Emits {GovernorAdded} per governor, {ThresholdChanged} and {ProposalLifetimeChanged}.
    constructor(address[] memory initialGovernors, uint32 threshold_, uint64 lifetime_) {
        _bootstrapper = msg.sender;
        for (uint256 i = 0; i < initialGovernors.length; ++i) {
            _addGovernor(initialGovernors[i]);
        }
        _setThreshold(threshold_);
        _setLifetime(lifetime_);
    }

    // ------------------------------------------------------------------ modifiers

    modifier onlyGovernance() {
        _checkGovernance();
        _;
    }

    modifier onlyGovernor() {
        if (!_governors[msg.sender]) revert AgencyRegistryNotGovernor(msg.sender);
        _;
    }

    function _checkGovernance() private view {
        // msg.sender is never the zero address, so a finished bootstrap (zero bootstrapper) never matches.
        if (msg.sender != address(this) && msg.sender != _bootstrapper) revert AgencyRegistryNotGovernance(msg.sender);
    }

    // ------------------------------------------------------------------ governed: agencies

    /// @inheritdoc IAgencyRegistry
    function addAgency(
        bytes32 agencyId,
        string calldata name,
        bytes2 country,
        uint16 roles,
        bytes32 encryptionKey,
        string calldata ipfsEndpoint
    ) external onlyGovernance {
        if (_indexOf[agencyId] != 0) revert AgencyRegistryAgencyExists(agencyId);
        if (
            agencyId == bytes32(0) || bytes(name).length == 0 || bytes(name).length > MAX_TEXT
                || bytes(ipfsEndpoint).length > MAX_TEXT || !_isCountry(country) || roles & ~ALL_ROLES != 0
        ) revert AgencyRegistryInvalidAgency(agencyId);
        uint32 index = ++_agencyCount;
        _indexOf[agencyId] = index;
        _agencies[index] = Agency({
            id: agencyId,
            index: index,
            status: AgencyStatus.ACTIVE,
            roles: roles,
            country: country,
            encryptionKey: encryptionKey,
            name: name,
            ipfsEndpoint: ipfsEndpoint
        });
        emit AgencyAdded(agencyId, index, name, country, roles, encryptionKey, ipfsEndpoint);
    }

    /// @inheritdoc IAgencyRegistry
    function setAgencyRoles(bytes32 agencyId, uint16 roles) external onlyGovernance {
        Agency storage a = _liveAgency(agencyId);
        if (roles & ~ALL_ROLES != 0) revert AgencyRegistryInvalidAgency(agencyId);
        a.roles = roles;
        emit AgencyRolesChanged(agencyId, roles);
    }

    /// @inheritdoc IAgencyRegistry
    function setAgencyStatus(bytes32 agencyId, uint8 status) external onlyGovernance {
        Agency storage a = _liveAgency(agencyId);
        uint8 from = uint8(a.status);
        bool allowed = status == uint8(AgencyStatus.REMOVED)
            || (from == uint8(AgencyStatus.ACTIVE) && status == uint8(AgencyStatus.SUSPENDED))
            || (from == uint8(AgencyStatus.SUSPENDED) && status == uint8(AgencyStatus.ACTIVE));
        if (!allowed) revert AgencyRegistryInvalidStatusChange(agencyId, from, status);
        a.status = AgencyStatus(status);
        emit AgencyStatusChanged(agencyId, AgencyStatus(status));
    }

    /// @inheritdoc IAgencyRegistry
    function updateAgencyProfile(
        bytes32 agencyId,
        string calldata name,
        bytes32 encryptionKey,
        string calldata ipfsEndpoint
    ) external onlyGovernance {
        Agency storage a = _liveAgency(agencyId);
        if (bytes(name).length == 0 || bytes(name).length > MAX_TEXT || bytes(ipfsEndpoint).length > MAX_TEXT) {
            revert AgencyRegistryInvalidAgency(agencyId);
        }
        a.name = name;
        a.encryptionKey = encryptionKey;
        a.ipfsEndpoint = ipfsEndpoint;
        emit AgencyProfileUpdated(agencyId, name, encryptionKey, ipfsEndpoint);
    }

    // ------------------------------------------------------------------ governed: keys

    /// @inheritdoc IAgencyRegistry
    function addSignerKey(bytes32 agencyId, address signer, uint64 validFrom, uint64 validUntil)
        external
        onlyGovernance
    {
        Agency storage a = _liveAgency(agencyId);
        if (signer == address(0)) revert AgencyRegistryZeroAddress();
        if (_keys[signer].agencyIndex != 0) revert AgencyRegistryKeyExists(signer);
        if (_traders[signer].status != TraderStatus.NONE) revert AgencyRegistryRoleConflict(signer);
        if (validFrom >= validUntil || validUntil <= block.timestamp) {
            revert AgencyRegistryInvalidValidity(validFrom, validUntil);
        }
        _keys[signer] = SignerKey({agencyIndex: a.index, validFrom: validFrom, validUntil: validUntil, compromisedAt: 0});
        emit SignerKeyAdded(agencyId, signer, validFrom, validUntil);
    }

    /// @inheritdoc IAgencyRegistry
    function setSignerKeyExpiry(address signer, uint64 validUntil) external onlyGovernance {
        SignerKey storage k = _knownKey(signer);
        if (validUntil <= k.validFrom || validUntil < block.timestamp) {
            revert AgencyRegistryInvalidValidity(k.validFrom, validUntil);
        }
        k.validUntil = validUntil;
        emit SignerKeyExpiryChanged(signer, validUntil);
    }

    /// @inheritdoc IAgencyRegistry
    function reportKeyCompromised(address signer, uint64 compromisedAt) external {
        SignerKey storage k = _knownKey(signer);
        if (msg.sender != address(this) && msg.sender != _bootstrapper) {
            // Any other currently valid key of the same agency may report it at once.
            SignerKey storage peer = _keys[msg.sender];
            if (msg.sender == signer || peer.agencyIndex != k.agencyIndex || !_validAt(peer, uint64(block.timestamp))) {
                revert AgencyRegistryNotKeyPeer(msg.sender, signer);
            }
        }
        if (
            compromisedAt < k.validFrom || compromisedAt > block.timestamp
                || (k.compromisedAt != 0 && compromisedAt >= k.compromisedAt)
        ) revert AgencyRegistryInvalidCompromiseTime(signer, compromisedAt);
        k.compromisedAt = compromisedAt;
        emit SignerKeyCompromised(signer, compromisedAt, msg.sender);
    }

    // ------------------------------------------------------------------ governed: governance

    /// @inheritdoc IAgencyRegistry
    function addGovernor(address governor) external onlyGovernance {
        _addGovernor(governor);
        ++_epoch;
    }

    /// @inheritdoc IAgencyRegistry
    function removeGovernor(address governor) external onlyGovernance {
        if (!_governors[governor]) revert AgencyRegistryUnknownGovernor(governor);
        if (_governorCount - 1 < _threshold) revert AgencyRegistryInvalidThreshold(_threshold, _governorCount - 1);
        _governors[governor] = false;
        --_governorCount;
        ++_epoch;
        emit GovernorRemoved(governor);
    }

    /// @inheritdoc IAgencyRegistry
    function setThreshold(uint32 threshold_) external onlyGovernance {
        _setThreshold(threshold_);
        ++_epoch;
    }

    /// @inheritdoc IAgencyRegistry
    function setProposalLifetime(uint64 lifetime_) external onlyGovernance {
        _setLifetime(lifetime_);
    }

    /// @inheritdoc IAgencyRegistry
    function setGovernedTarget(address target, bool allowed) external onlyGovernance {
        if (target == address(this) || target.code.length == 0) revert AgencyRegistryInvalidTarget(target);
        _governedTargets[target] = allowed;
        emit GovernedTargetSet(target, allowed);
    }

    // ------------------------------------------------------------------ bootstrap & proposals

    /// @inheritdoc IAgencyRegistry
    function finishBootstrap() external {
        if (msg.sender != _bootstrapper) revert AgencyRegistryNotBootstrapper(msg.sender);
        if (_threshold < 2 || _threshold > _governorCount) revert AgencyRegistryInvalidThreshold(_threshold, _governorCount);
        _bootstrapper = address(0);
        emit BootstrapFinished(_governorCount, _threshold);
    }

    /// @inheritdoc IAgencyRegistry
    function propose(address target, bytes calldata callData) external onlyGovernor returns (uint256 proposalId) {
        if (target != address(this) && !_governedTargets[target]) revert AgencyRegistryInvalidTarget(target);
        if (callData.length < 4 || callData.length > MAX_CALLDATA) revert AgencyRegistryInvalidCallData(callData.length);
        proposalId = ++_proposalCount;
        uint64 expiresAt = uint64(block.timestamp) + _lifetime;
        _proposals[proposalId] = Proposal({
            proposer: msg.sender,
            expiresAt: expiresAt,
            approvals: 1,
            executed: false,
            cancelled: false,
            target: target,
            epoch: _epoch,
            callData: callData
        });
        _approved[proposalId][msg.sender] = true;
        emit ProposalCreated(proposalId, msg.sender, target, callData, expiresAt, _epoch);
    }

    /// @inheritdoc IAgencyRegistry
    function approve(uint256 proposalId) external onlyGovernor {
        Proposal storage p = _openProposal(proposalId);
        if (_approved[proposalId][msg.sender]) revert AgencyRegistryAlreadyApproved(proposalId, msg.sender);
        _approved[proposalId][msg.sender] = true;
        uint32 approvals = ++p.approvals;
        emit ProposalApproved(proposalId, msg.sender, approvals);
    }

    /// @inheritdoc IAgencyRegistry
    function execute(uint256 proposalId) external onlyGovernor {
        Proposal storage p = _openProposal(proposalId);
        if (p.approvals < _threshold) revert AgencyRegistryInsufficientApprovals(proposalId, p.approvals, _threshold);
        p.executed = true; // before the call: no re-entry can execute it twice
        emit ProposalExecuted(proposalId, msg.sender);
        Address.functionCall(p.target, p.callData); // bubbles the target's custom error
    }

    /// @inheritdoc IAgencyRegistry
    function cancel(uint256 proposalId) external {
        Proposal storage p = _proposals[proposalId];
        if (p.proposer == address(0)) revert AgencyRegistryUnknownProposal(proposalId);
        if (p.proposer != msg.sender) revert AgencyRegistryNotProposer(proposalId, msg.sender);
        if (p.executed || p.cancelled) revert AgencyRegistryProposalClosed(proposalId);
        p.cancelled = true;
        emit ProposalCancelled(proposalId);
    }

    // ------------------------------------------------------------------ traders

    /// @inheritdoc IAgencyRegistry
    function registerTrader(address account, bool aeo) external {
        uint32 registrar = _authorize(msg.sender, _roleBit(Role.TRADER_REGISTRAR));
        if (account == address(0)) revert AgencyRegistryZeroAddress();
        if (_traders[account].status != TraderStatus.NONE) revert AgencyRegistryTraderExists(account);
        if (_keys[account].agencyIndex != 0) revert AgencyRegistryRoleConflict(account);
        _traders[account] = Trader({registrarIndex: registrar, status: TraderStatus.ACTIVE, aeo: aeo});
        emit TraderRegistered(account, registrar, aeo);
    }

    /// @inheritdoc IAgencyRegistry
    function updateTrader(address account, uint8 status, bool aeo) external {
        uint32 registrar = _authorize(msg.sender, _roleBit(Role.TRADER_REGISTRAR));
        Trader storage t = _traders[account];
        if (t.status == TraderStatus.NONE) revert AgencyRegistryUnknownTrader(account);
        if (t.registrarIndex != registrar) revert AgencyRegistryNotTraderRegistrar(account, registrar);
        if (status == uint8(TraderStatus.NONE) || status > uint8(type(TraderStatus).max)) {
            revert AgencyRegistryInvalidTraderStatus(status);
        }
        t.status = TraderStatus(status);
        t.aeo = aeo;
        emit TraderUpdated(account, TraderStatus(status), aeo);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IAgencyRegistry
    function authorize(address signer, uint16 roleMask) external view returns (uint32 agencyIndex) {
        return _authorize(signer, roleMask);
    }

    /// @inheritdoc IAgencyRegistry
    function authorizeSigned(address signer, uint16 roleMask, uint64 signedAt) external view returns (uint32 agencyIndex) {
        SignerKey storage k = _keys[signer];
        agencyIndex = k.agencyIndex;
        if (agencyIndex == 0) revert AgencyRegistryNotASigner(signer);
        if (k.compromisedAt != 0 || !_validAt(k, signedAt)) revert AgencyRegistryKeyNotValid(signer, signedAt);
        _requireActiveWithRole(_agencies[agencyIndex], roleMask);
    }

    /// @inheritdoc IAgencyRegistry
    function authorizeSubmission(address account, bytes32 jurisdictionId) external view returns (uint32 jurisdictionIndex) {
        Trader storage t = _traders[account];
        if (t.status != TraderStatus.ACTIVE) {
            if (t.status == TraderStatus.NONE) revert AgencyRegistryUnknownTrader(account);
            revert AgencyRegistryTraderNotActive(account, t.status);
        }
        jurisdictionIndex = _indexOf[jurisdictionId];
        if (jurisdictionIndex == 0) revert AgencyRegistryUnknownAgency(jurisdictionId);
        _requireActiveWithRole(_agencies[jurisdictionIndex], _roleBit(Role.CUSTOMS_AUTHORITY));
    }

    /// @inheritdoc IAgencyRegistry
    function wasValidSigner(address signer, uint32 agencyIndex, uint64 time) external view returns (bool) {
        SignerKey storage k = _keys[signer];
        return agencyIndex != 0 && k.agencyIndex == agencyIndex && _validAt(k, time);
    }

    /// @inheritdoc IAgencyRegistry
    function agency(bytes32 agencyId) external view returns (Agency memory) {
        uint32 index = _indexOf[agencyId];
        if (index == 0) revert AgencyRegistryUnknownAgency(agencyId);
        return _agencies[index];
    }

    /// @inheritdoc IAgencyRegistry
    function agencyByIndex(uint32 agencyIndex) external view returns (Agency memory) {
        if (agencyIndex == 0 || agencyIndex > _agencyCount) revert AgencyRegistryUnknownAgencyIndex(agencyIndex);
        return _agencies[agencyIndex];
    }

    /// @inheritdoc IAgencyRegistry
    function agencyCount() external view returns (uint32) {
        return _agencyCount;
    }

    /// @inheritdoc IAgencyRegistry
    function signerKey(address signer) external view returns (SignerKey memory) {
        return _keys[signer];
    }

    /// @inheritdoc IAgencyRegistry
    function trader(address account) external view returns (Trader memory) {
        return _traders[account];
    }

    /// @inheritdoc IAgencyRegistry
    function isGovernor(address account) external view returns (bool) {
        return _governors[account];
    }

    /// @inheritdoc IAgencyRegistry
    function governance() external view returns (uint32, uint32, uint64, uint64) {
        return (_governorCount, _threshold, _epoch, _lifetime);
    }

    /// @inheritdoc IAgencyRegistry
    function bootstrapping() external view returns (bool) {
        return _bootstrapper != address(0);
    }

    /// @inheritdoc IAgencyRegistry
    function bootstrapper() external view returns (address) {
        return _bootstrapper;
    }

    /// @inheritdoc IAgencyRegistry
    function isGovernedTarget(address target) external view returns (bool) {
        return _governedTargets[target];
    }

    /// @inheritdoc IAgencyRegistry
    function proposal(uint256 proposalId)
        external
        view
        returns (address, address, uint64, uint64, uint32, bool, bool, bytes memory)
    {
        Proposal storage p = _proposals[proposalId];
        if (p.proposer == address(0)) revert AgencyRegistryUnknownProposal(proposalId);
        return (p.proposer, p.target, p.expiresAt, p.epoch, p.approvals, p.executed, p.cancelled, p.callData);
    }

    /// @inheritdoc IAgencyRegistry
    function hasApproved(uint256 proposalId, address governor) external view returns (bool) {
        return _approved[proposalId][governor];
    }

    /// @inheritdoc IAgencyRegistry
    function proposalCount() external view returns (uint256) {
        return _proposalCount;
    }

    // ------------------------------------------------------------------ internals

    function _authorize(address signer, uint16 roleMask) private view returns (uint32 agencyIndex) {
        SignerKey storage k = _keys[signer];
        agencyIndex = k.agencyIndex;
        if (agencyIndex == 0) revert AgencyRegistryNotASigner(signer);
        if (!_validAt(k, uint64(block.timestamp))) revert AgencyRegistryKeyNotValid(signer, uint64(block.timestamp));
        _requireActiveWithRole(_agencies[agencyIndex], roleMask);
    }

    function _requireActiveWithRole(Agency storage a, uint16 roleMask) private view {
        if (a.status != AgencyStatus.ACTIVE) revert AgencyRegistryAgencyNotActive(a.id, a.status);
        if (a.roles & roleMask == 0) revert AgencyRegistryMissingRole(a.id, roleMask);
    }

    function _validAt(SignerKey storage k, uint64 time) private view returns (bool) {
        return k.validFrom <= time && time < k.validUntil && (k.compromisedAt == 0 || time < k.compromisedAt);
    }

    function _liveAgency(bytes32 agencyId) private view returns (Agency storage a) {
        uint32 index = _indexOf[agencyId];
        if (index == 0) revert AgencyRegistryUnknownAgency(agencyId);
        a = _agencies[index];
        if (a.status == AgencyStatus.REMOVED) revert AgencyRegistryAgencyNotActive(agencyId, a.status);
    }

    function _knownKey(address signer) private view returns (SignerKey storage k) {
        k = _keys[signer];
        if (k.agencyIndex == 0) revert AgencyRegistryNotASigner(signer);
    }

    function _openProposal(uint256 proposalId) private view returns (Proposal storage p) {
        p = _proposals[proposalId];
        if (p.proposer == address(0)) revert AgencyRegistryUnknownProposal(proposalId);
        if (p.executed || p.cancelled) revert AgencyRegistryProposalClosed(proposalId);
        if (block.timestamp >= p.expiresAt) revert AgencyRegistryProposalExpired(proposalId, p.expiresAt);
        if (p.epoch != _epoch) revert AgencyRegistryProposalStale(proposalId, p.epoch, _epoch);
    }

    function _addGovernor(address governor) private {
        if (governor == address(0)) revert AgencyRegistryZeroAddress();
        if (_governors[governor]) revert AgencyRegistryGovernorExists(governor);
        _governors[governor] = true;
        ++_governorCount;
        emit GovernorAdded(governor);
    }

    function _setThreshold(uint32 threshold_) private {
        if (threshold_ < 2 || threshold_ > _governorCount) revert AgencyRegistryInvalidThreshold(threshold_, _governorCount);
        _threshold = threshold_;
        emit ThresholdChanged(threshold_);
    }

    function _setLifetime(uint64 lifetime_) private {
        if (lifetime_ < 1 hours || lifetime_ > 90 days) revert AgencyRegistryInvalidLifetime(lifetime_);
        _lifetime = lifetime_;
        emit ProposalLifetimeChanged(lifetime_);
    }

    function _roleBit(Role role) private pure returns (uint16) {
        return uint16(1) << uint8(role);
    }

    function _isCountry(bytes2 country) private pure returns (bool) {
        return country[0] >= "A" && country[0] <= "Z" && country[1] >= "A" && country[1] <= "Z";
    }
}
