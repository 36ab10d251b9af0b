// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Agency, AgencyStatus, SignerKey, Trader, TraderStatus} from "../LedgerTypes.sol";

/// @title Consortium registry: agencies, roles, signer keys, traders and M-of-N governance.
/// @notice After bootstrap, every membership, role, key or governor change is a proposal that needs
/// `threshold` distinct governor approvals before it can be executed, and expires otherwise.
/// Governed functions may only be called by the registry itself (i.e. through {execute}) or, while
/// bootstrapping, by the bootstrapper.
interface IAgencyRegistry {
    // ------------------------------------------------------------------ errors
    /// @notice `caller` may not call a governed function (not a passed proposal, not bootstrapping).
    error AgencyRegistryNotGovernance(address caller);
    /// @notice `caller` is not a governor.
    error AgencyRegistryNotGovernor(address caller);
    /// @notice `caller` is not the bootstrapper, or bootstrap is over.
    error AgencyRegistryNotBootstrapper(address caller);
    /// @notice An address argument was zero.
    error AgencyRegistryZeroAddress();
    /// @notice An agency with `agencyId` already exists (ids are never reused).
    error AgencyRegistryAgencyExists(bytes32 agencyId);
    /// @notice No agency has this id.
    error AgencyRegistryUnknownAgency(bytes32 agencyId);
    /// @notice No agency has this index.
    error AgencyRegistryUnknownAgencyIndex(uint32 agencyIndex);
    /// @notice The agency fields are invalid (empty id or name, bad country, unknown role bits, …).
    error AgencyRegistryInvalidAgency(bytes32 agencyId);
    /// @notice `from` → `to` is not a permitted status change.
    error AgencyRegistryInvalidStatusChange(bytes32 agencyId, uint8 from, uint8 to);
    /// @notice The agency exists but is not ACTIVE.
    error AgencyRegistryAgencyNotActive(bytes32 agencyId, AgencyStatus status);
    /// @notice The agency lacks every role in `roleMask`.
    error AgencyRegistryMissingRole(bytes32 agencyId, uint16 roleMask);
    /// @notice `account` is not a registered signer key of any agency.
    error AgencyRegistryNotASigner(address account);
    /// @notice The key is registered but not valid at time `at` (outside its window or compromised).
    error AgencyRegistryKeyNotValid(address signer, uint64 time);
    /// @notice `signer` is already registered (keys are never reused, not even across agencies).
    error AgencyRegistryKeyExists(address signer);
    /// @notice The validity window is empty or ends in the past.
    error AgencyRegistryInvalidValidity(uint64 validFrom, uint64 validUntil);
    /// @notice The compromise time is before the key's validity, in the future, or not earlier
    /// than an already recorded compromise time.
    error AgencyRegistryInvalidCompromiseTime(address signer, uint64 compromisedAt);
    /// @notice `caller` may not report `signer` compromised (not a valid key of the same agency).
    error AgencyRegistryNotKeyPeer(address caller, address signer);
    /// @notice A trader account is already registered.
    error AgencyRegistryTraderExists(address trader);
    /// @notice Separation of duties: an account cannot be both a trader and an agency signer key.
    error AgencyRegistryRoleConflict(address account);
    /// @notice No trader has this account.
    error AgencyRegistryUnknownTrader(address trader);
    /// @notice The trader is registered but not ACTIVE.
    error AgencyRegistryTraderNotActive(address trader, TraderStatus status);
    /// @notice Only the registering agency may update a trader.
    error AgencyRegistryNotTraderRegistrar(address trader, uint32 callerAgencyIndex);
    /// @notice The trader status argument is invalid.
    error AgencyRegistryInvalidTraderStatus(uint8 status);
    /// @notice `governor` is already a governor.
    error AgencyRegistryGovernorExists(address governor);
    /// @notice `governor` is not a governor.
    error AgencyRegistryUnknownGovernor(address governor);
    /// @notice The threshold would be below 2 or above the number of governors.
    error AgencyRegistryInvalidThreshold(uint32 threshold, uint32 governorCount);
    /// @notice The proposal lifetime is outside [1 hour, 90 days].
    error AgencyRegistryInvalidLifetime(uint64 lifetime);
    /// @notice `target` is not a contract governed by this registry.
    error AgencyRegistryInvalidTarget(address target);
    /// @notice The proposal's call data is empty or longer than the limit.
    error AgencyRegistryInvalidCallData(uint256 length);
    /// @notice No proposal has this id.
    error AgencyRegistryUnknownProposal(uint256 proposalId);
    /// @notice The proposal expired at `expiresAt`.
    error AgencyRegistryProposalExpired(uint256 proposalId, uint64 expiresAt);
    /// @notice The proposal was already executed or cancelled.
    error AgencyRegistryProposalClosed(uint256 proposalId);
    /// @notice The governor set changed since the proposal was made; it must be proposed again.
    error AgencyRegistryProposalStale(uint256 proposalId, uint64 proposalEpoch, uint64 currentEpoch);
    /// @notice `governor` already approved this proposal.
    error AgencyRegistryAlreadyApproved(uint256 proposalId, address governor);
    /// @notice Not enough approvals to execute.
    error AgencyRegistryInsufficientApprovals(uint256 proposalId, uint32 approvals, uint32 threshold);
    /// @notice Only the proposer may cancel a proposal.
    error AgencyRegistryNotProposer(uint256 proposalId, address caller);

    // ------------------------------------------------------------------ events
    /// @notice An agency joined the consortium.
    event AgencyAdded(
        bytes32 indexed agencyId,
        uint32 indexed agencyIndex,
        string name,
        bytes2 country,
        uint16 roles,
        bytes32 encryptionKey,
        string ipfsEndpoint
    );
    /// @notice An agency's role mask changed.
    event AgencyRolesChanged(bytes32 indexed agencyId, uint16 roles);
    /// @notice An agency was suspended, reactivated or removed.
    event AgencyStatusChanged(bytes32 indexed agencyId, AgencyStatus status);
    /// @notice An agency's name, encryption key or IPFS endpoint changed.
    event AgencyProfileUpdated(bytes32 indexed agencyId, string name, bytes32 encryptionKey, string ipfsEndpoint);
    /// @notice A signer key was added to an agency.
    event SignerKeyAdded(bytes32 indexed agencyId, address indexed signer, uint64 validFrom, uint64 validUntil);
    /// @notice A key's end of validity changed (rotation).
    event SignerKeyExpiryChanged(address indexed signer, uint64 validUntil);
    /// @notice A key was reported compromised; its signatures from `compromisedAt` on are void.
    event SignerKeyCompromised(address indexed signer, uint64 compromisedAt, address reportedBy);
    /// @notice A trader account was registered.
    event TraderRegistered(address indexed trader, uint32 indexed registrarIndex, bool aeo);
    /// @notice A trader's status or AEO flag changed.
    event TraderUpdated(address indexed trader, TraderStatus status, bool aeo);
    /// @notice A governor was added.
    event GovernorAdded(address indexed governor);
    /// @notice A governor was removed.
    event GovernorRemoved(address indexed governor);
    /// @notice The approval threshold changed.
    event ThresholdChanged(uint32 threshold);
    /// @notice The proposal lifetime changed.
    event ProposalLifetimeChanged(uint64 lifetime);
    /// @notice A contract was allowed (or disallowed) as a proposal target.
    event GovernedTargetSet(address indexed target, bool allowed);
    /// @notice Bootstrap ended; from now on only proposals change governed state.
    event BootstrapFinished(uint32 governorCount, uint32 threshold);
    /// @notice A governor proposed a call; the proposer's approval is counted.
    event ProposalCreated(
        uint256 indexed proposalId,
        address indexed proposer,
        address target,
        bytes callData,
        uint64 expiresAt,
        uint64 epoch
    );
    /// @notice A governor approved a proposal.
    event ProposalApproved(uint256 indexed proposalId, address indexed governor, uint32 approvals);
    /// @notice A proposal was executed.
    event ProposalExecuted(uint256 indexed proposalId, address indexed executor);
    /// @notice A proposal was cancelled by its proposer.
    event ProposalCancelled(uint256 indexed proposalId);

    // ------------------------------------------------------------------ governed
    /// @notice Adds an agency.
    /// @dev Requirements: governance; id and name non-empty; country two upper-case letters; only
    /// known role bits; the id was never used. Emits {AgencyAdded}.
    function addAgency(
        bytes32 agencyId,
        string calldata name,
        bytes2 country,
        uint16 roles,
        bytes32 encryptionKey,
        string calldata ipfsEndpoint
    ) external;

    /// @notice Replaces an agency's role mask.
    /// @dev Requirements: governance; agency exists and is not REMOVED; only known role bits.
    /// Emits {AgencyRolesChanged}.
    function setAgencyRoles(bytes32 agencyId, uint16 roles) external;

    /// @notice Suspends, reactivates or removes an agency.
    /// `status` is an {AgencyStatus} value passed as uint8 so that any other value gets a typed error.
    /// @dev Requirements: governance; ACTIVE ↔ SUSPENDED, or either → REMOVED (final).
    /// Emits {AgencyStatusChanged}.
    function setAgencyStatus(bytes32 agencyId, uint8 status) external;

    /// @notice Updates an agency's name, X25519 encryption key and IPFS endpoint.
    /// @dev Requirements: governance; agency exists and is not REMOVED. Emits {AgencyProfileUpdated}.
    function updateAgencyProfile(
        bytes32 agencyId,
        string calldata name,
        bytes32 encryptionKey,
        string calldata ipfsEndpoint
    ) external;

    /// @notice Adds a signer key to an agency with validity window [validFrom, validUntil).
    /// @dev Requirements: governance; agency exists and is not REMOVED; key never registered and
    /// not a trader account; validFrom < validUntil and validUntil in the future. Emits {SignerKeyAdded}.
    function addSignerKey(bytes32 agencyId, address signer, uint64 validFrom, uint64 validUntil) external;

    /// @notice Moves a key's end of validity (rotation: old signatures stay valid).
    /// @dev Requirements: governance; key known; validUntil > validFrom and not in the past (use
    /// {reportKeyCompromised} to void past signatures). Emits {SignerKeyExpiryChanged}.
    function setSignerKeyExpiry(address signer, uint64 validUntil) external;

    /// @notice Adds a governor.
    /// @dev Requirements: governance; not already a governor; non-zero. Emits {GovernorAdded}.
    function addGovernor(address governor) external;

    /// @notice Removes a governor.
    /// @dev Requirements: governance; a governor; the remaining count stays ≥ threshold.
    /// Emits {GovernorRemoved}.
    function removeGovernor(address governor) external;

    /// @notice Sets the number of approvals a proposal needs.
    /// @dev Requirements: governance; 2 ≤ threshold ≤ governor count. Emits {ThresholdChanged}.
    function setThreshold(uint32 threshold) external;

    /// @notice Sets how long a proposal stays open.
    /// @dev Requirements: governance; 1 hour ≤ lifetime ≤ 90 days. Emits {ProposalLifetimeChanged}.
    function setProposalLifetime(uint64 lifetime) external;

    /// @notice Allows or disallows a contract as a proposal target (e.g. the ClearanceLedger).
    /// @dev Requirements: governance; target is a contract and not this registry.
    /// Emits {GovernedTargetSet}.
    function setGovernedTarget(address target, bool allowed) external;

    // ------------------------------------------------------------------ bootstrap & proposals
    /// @notice Ends bootstrap: the bootstrapper loses its powers for good.
    /// @dev Requirements: caller is the bootstrapper; bootstrapping; 2 ≤ threshold ≤ governors.
    /// Emits {BootstrapFinished}.
    function finishBootstrap() external;

    /// @notice Proposes a call of a governed function on `target` (this registry or a governed
    /// target); the proposer's approval is counted.
    /// @dev Requirements: caller is a governor; target allowed; 4 ≤ callData length ≤ 4096.
    /// Emits {ProposalCreated}.
    function propose(address target, bytes calldata callData) external returns (uint256 proposalId);

    /// @notice Approves an open proposal.
    /// @dev Requirements: caller is a governor; proposal open, not expired, not stale; not yet
    /// approved by the caller. Emits {ProposalApproved}.
    function approve(uint256 proposalId) external;

    /// @notice Executes a proposal that has enough approvals; reverts with the target's error if
    /// the call fails (the proposal then stays open).
    /// @dev Requirements: caller is a governor; proposal open, not expired, not stale; approvals ≥
    /// threshold. Emits {ProposalExecuted} (and the target's own event).
    function execute(uint256 proposalId) external;

    /// @notice Cancels an open proposal.
    /// @dev Requirements: caller is its proposer; proposal open. Emits {ProposalCancelled}.
    function cancel(uint256 proposalId) external;

    // ------------------------------------------------------------------ agency-operated
    /// @notice Reports a key compromised; its signatures from `compromisedAt` on are void. Callable
    /// by governance or, so that an agency can react at once, by another valid key of the same agency.
    /// @dev Requirements: key known; validFrom ≤ compromisedAt ≤ now; earlier than any recorded
    /// compromise time. Emits {SignerKeyCompromised}.
    function reportKeyCompromised(address signer, uint64 compromisedAt) external;

    /// @notice Registers a trader account.
    /// @dev Requirements: caller is a valid key of an ACTIVE agency with TRADER_REGISTRAR; trader not
    /// registered and not an agency signer key; non-zero. Emits {TraderRegistered}.
    function registerTrader(address trader, bool aeo) external;

    /// @notice Updates a trader's status (ACTIVE / SUSPENDED, a {TraderStatus} as uint8) and AEO flag.
    /// @dev Requirements: caller is a valid key of the registering agency, which is ACTIVE and holds
    /// TRADER_REGISTRAR. Emits {TraderUpdated}.
    function updateTrader(address trader, uint8 status, bool aeo) external;

    // ------------------------------------------------------------------ views
    /// @notice Checks that `signer` is a currently valid key of an ACTIVE agency holding at least
    /// one role of `roleMask`, and returns that agency's index. Reverts with the reason otherwise.
    function authorize(address signer, uint16 roleMask) external view returns (uint32 agencyIndex);

    /// @notice Like {authorize}, for a signature made at `signedAt`: the key must have been valid at
    /// `signedAt` and have no recorded compromise (whose holder could back-date signatures); the
    /// agency must be ACTIVE with a role of `roleMask` now.
    function authorizeSigned(address signer, uint16 roleMask, uint64 signedAt) external view returns (uint32 agencyIndex);

    /// @notice Checks that `trader` is ACTIVE and `jurisdictionId` an ACTIVE customs authority;
    /// returns the jurisdiction's index. Reverts with the reason otherwise.
    function authorizeSubmission(address trader, bytes32 jurisdictionId) external view returns (uint32 jurisdictionIndex);

    /// @notice True when `signer` was a valid key of agency `agencyIndex` at time `at` (inside its
    /// window and before any compromise time).
    function wasValidSigner(address signer, uint32 agencyIndex, uint64 time) external view returns (bool);

    /// @notice The agency with id `agencyId` (reverts if unknown).
    function agency(bytes32 agencyId) external view returns (Agency memory);

    /// @notice The agency with index `agencyIndex` (reverts if unknown).
    function agencyByIndex(uint32 agencyIndex) external view returns (Agency memory);

    /// @notice Number of agencies ever added (indices run from 1 to this).
    function agencyCount() external view returns (uint32);

    /// @notice The registered signer key (agencyIndex 0 when unknown).
    function signerKey(address signer) external view returns (SignerKey memory);

    /// @notice The registered trader (status NONE when unknown).
    function trader(address account) external view returns (Trader memory);

    /// @notice True for a current governor.
    function isGovernor(address account) external view returns (bool);

    /// @notice Number of governors, approval threshold, governor-set epoch and proposal lifetime.
    function governance() external view returns (uint32 governorCount, uint32 threshold, uint64 epoch, uint64 lifetime);

    /// @notice True while the bootstrapper may still act alone.
    function bootstrapping() external view returns (bool);

    /// @notice The bootstrapper account (zero once bootstrap is over).
    function bootstrapper() external view returns (address);

    /// @notice True when `target` is an allowed proposal target.
    function isGovernedTarget(address target) external view returns (bool);

    /// @notice A proposal's state.
    function proposal(uint256 proposalId)
        external
        view
        returns (
            address proposer,
            address target,
            uint64 expiresAt,
            uint64 epoch,
            uint32 approvals,
            bool executed,
            bool cancelled,
            bytes memory callData
        );

    /// @notice True when `governor` approved proposal `proposalId`.
    function hasApproved(uint256 proposalId, address governor) external view returns (bool);

    /// @notice Number of proposals ever made (ids run from 1 to this).
    function proposalCount() external view returns (uint256);
}
