"""One exception root for the whole library.

Every error raised on purpose by ``ledger_api`` derives from :class:`LedgerError`; foreign
exceptions are wrapped at the boundary (``raise ChainUnavailable(url) from exc``). Each error says
what happened (``str(err)``) and what a person should do next (``err.diagnostics()``).

The tree::

    LedgerError
    ├── ConfigurationError            settings missing, malformed or unsafe
    ├── ToolchainError                compiler / node executable missing or misbehaving
    │   └── ArtifactMismatch          committed ABI/bytecode differ from a fresh compile
    ├── ChainError                    anything that went wrong talking to the EVM node
    │   ├── ChainUnavailable          the JSON-RPC endpoint cannot be reached
    │   ├── DeploymentError           a deployment or bootstrap step failed
    │   ├── ContractRevert            a transaction reverted with a known custom error
    │   ├── TransactionError          a transaction could not be sent / mined as asked (chain.client)
    │   │   ├── GasLimitExceeded      the gas estimate is above the configured cap
    │   │   ├── TransactionRejected   the node refused the raw transaction (funds, fee, nonce)
    │   │   ├── TransactionFailed     mined with status 0 and no decodable custom error
    │   │   ├── TransactionTimeout    not mined / not final within the time asked
    │   │   └── UnknownSigner         the client holds no key for this address
    │   ├── LogQueryError             the node refused an eth_getLogs / JSON-RPC query
    │   └── EventDecodeError          a log does not match the ABI of the event it claims to be
    ├── OutboxError                   the durable write journal (ledger_api.outbox)
    │   ├── IdempotencyConflict       an idempotency key was reused for a different request
    │   ├── JournalBusy               the journal did not take a request in time (HTTP 503, retry)
    │   └── UnknownOutboxEntry        no journal entry with this id / key
    ├── DocumentError                 content stores, CIDs, CAR, envelopes, Merkle batches
    │   ├── DocumentTooLarge          input over the size limit (refused before reading it all)
    │   ├── DocumentNotFound          no such CID / block in the store
    │   ├── IntegrityError            bytes do not hash to the CID they were fetched under
    │   ├── InvalidCid                a string / bytes value is not a CID we understand
    │   ├── MalformedBlock            a dag-pb / UnixFS block or CBOR header cannot be decoded
    │   ├── TruncatedCar              a CAR stream ends in the middle of a header or section
    │   ├── StoreUnavailable          the IPFS RPC endpoint (or the store directory) cannot be used
    │   ├── CanonicalizationError     a value has no RFC 8785 canonical JSON form
    │   ├── EnvelopeError             encrypted-document envelope problems
    │   │   ├── UnsupportedEnvelope   unknown magic / version / algorithm
    │   │   ├── TamperedEnvelope      the ciphertext or its header failed authentication
    │   │   ├── DecryptionError       the key material cannot open the envelope
    │   │   │   └── WrongKey          this agency's private key (or password) does not fit
    │   │   └── AccessRevoked         no key wrap for this agency (not granted, revoked, shredded)
    │   └── ProofError                a Merkle / disclosure proof does not lead to the expected root
    ├── ReadModelError                the event index (ledger_api.index)
    │   ├── IndexMismatch             the index database belongs to another chain / deployment
    │   └── ReorgTooDeep              no common ancestor among the blocks the index remembers
    ├── AccessError                   who is calling, and may they (ledger_api.api.auth)
    │   ├── AuthenticationError       no valid request signature (HTTP 401)
    │   │   ├── SignatureMissing      the request carries no Signature / Signature-Input
    │   │   ├── SignatureInvalid      malformed, expired, wrong key, tampered request or body
    │   │   ├── SignatureReplayed     this signature's nonce was already used
    │   │   └── UnknownCaller         the key is not a currently valid agency key or trader
    │   ├── Forbidden                 authenticated, but not allowed to do this (HTTP 403)
    │   ├── DeclarationNotFound       no such declaration, or not one the caller may see (HTTP 404)
    │   ├── RateLimited               over a request budget, per caller or per failing address (HTTP 429)
    │   ├── NoCustody                 this service holds no signing key for the caller (HTTP 403)
    │   ├── SubmissionNotFound        no tracked write with this id for the caller (HTTP 404)
    │   ├── TokenNotFound             no API token with this id of the caller (HTTP 404)
    │   ├── InvalidSubmission         a write request is malformed or inconsistent (HTTP 422)
    │   ├── StampNotFound             no such stamp, or none of the caller's agency (HTTP 404)
    │   ├── ProposalNotFound          no governance proposal with this id in the read model (HTTP 404)
    │   └── AuditReportNotFound       no replay report at the configured path yet (HTTP 404)
    ├── EvidenceError                 evidence bundles (ledger_api.verify.evidence, ledger_api.audit export)
    │   ├── MalformedBundle           not a bundle of a known format: size, JSON, canonical form, schema (step 1)
    │   │   └── BundleTooLarge        the bundle is over the size limit (refused before parsing)
    │   ├── EvidenceInvalid           a step of the offline checklist failed (``step``, ``check`` name it)
    │   ├── EvidenceExportError       the exporter cannot build a bundle for this subject (HTTP 404)
    │   └── ExportBusy                the service is already exporting a bundle; retry later (HTTP 503)
    ├── AuditCheckpointError          an auditor replay checkpoint cannot be resumed from (ledger_api.audit)
    │   ├── CheckpointUnsigned        it carries no signature and unsigned checkpoints were not allowed
    │   ├── CheckpointTampered        malformed, altered after signing, or not signed by the expected key
    │   ├── CheckpointForeign         it is about another chain id / contract addresses / deployment
    │   └── CheckpointNotPrefix       the node's history no longer contains the checkpointed block
    └── OracleError                   a long-running oracle (oracles/) could not do its work
        ├── RuleSetError              a risk rule set is missing, malformed or not the anchored one
        ├── AttestationRejected       a partner feed item is forged, replayed, expired or malformed
        └── CheckpointError           a witness checkpoint is malformed or its signature does not hold

Sections below are owned by the package named in their heading; keep each subtree together.
"""

from __future__ import annotations

import math

__all__ = [
    "AccessError",
    "AttestationRejected",
    "AuditCheckpointError",
    "AccessRevoked",
    "AuditReportNotFound",
    "ArtifactMismatch",
    "AuthenticationError",
    "CanonicalizationError",
    "ChainError",
    "ChainUnavailable",
    "CheckpointError",
    "CheckpointForeign",
    "CheckpointNotPrefix",
    "CheckpointTampered",
    "CheckpointUnsigned",
    "ConfigurationError",
    "ContractRevert",
    "DeclarationNotFound",
    "DecryptionError",
    "DeploymentError",
    "DocumentError",
    "DocumentNotFound",
    "DocumentTooLarge",
    "EnvelopeError",
    "EventDecodeError",
    "EvidenceError",
    "EvidenceExportError",
    "EvidenceInvalid",
    "ExportBusy",
    "BundleTooLarge",
    "MalformedBundle",
    "Forbidden",
    "GasLimitExceeded",
    "IdempotencyConflict",
    "IndexMismatch",
    "IntegrityError",
    "JournalBusy",
    "InvalidCid",
    "InvalidSubmission",
    "LedgerError",
    "LogQueryError",
    "MalformedBlock",
    "NoCustody",
    "OracleError",
    "OutboxError",
    "ProofError",
    "ProposalNotFound",
    "RateLimited",
    "ReadModelError",
    "ReorgTooDeep",
    "RuleSetError",
    "SignatureInvalid",
    "SignatureMissing",
    "SignatureReplayed",
    "StampNotFound",
    "StoreUnavailable",
    "SubmissionNotFound",
    "TamperedEnvelope",
    "TokenNotFound",
    "ToolchainError",
    "TransactionError",
    "TransactionFailed",
    "TransactionRejected",
    "TransactionTimeout",
    "TruncatedCar",
    "UnknownCaller",
    "UnknownOutboxEntry",
    "UnknownSigner",
    "UnsupportedEnvelope",
    "WrongKey",
    "redact_url",
]


def redact_url(url: str) -> str:
    """``url`` without credentials: user info, query and fragment dropped, a long last path segment
    (a provider API key in the path) masked. Error messages and logs show only this form."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    host = authority.rpartition("@")[2]
    path = path.split("?", 1)[0].split("#", 1)[0]
    segments = path.split("/")
    if segments and len(segments[-1]) >= 20:
        segments[-1] = "***"
    return f"{scheme}://{host}{slash}{'/'.join(segments)}"


class LedgerError(Exception):
    """Root of every error ``ledger_api`` raises on purpose."""

    #: A stable machine-readable code (used by the HTTP problem+json ``type`` and CLI output).
    code: str = "ledger-error"

    def diagnostics(self) -> str:
        """Tell a person what to do next. Subclasses override with specific advice."""
        return f"{self}\nIf this keeps happening, run with --verbose and report the output."


# --- configuration / toolchain -----------------------------------------------------------------


class ConfigurationError(LedgerError):
    """Settings are missing, malformed, or unsafe for the selected environment."""

    code = "configuration"

    def diagnostics(self) -> str:
        return f"{self}\nCheck the LEDGER_* environment variables (see docs/operations.md)."


class ToolchainError(LedgerError):
    """A required tool (solc wrapper, anvil) is missing or misbehaves."""

    code = "toolchain"

    def diagnostics(self) -> str:
        return f"{self}\nRun `make dev` to (re)install the toolchain."


class ArtifactMismatch(ToolchainError):
    """The committed contract artifacts differ from what the sources compile to."""

    code = "artifact-mismatch"

    def diagnostics(self) -> str:
        return f"{self}\nRegenerate them with `make artifacts` and commit the result."


# --- chain ---------------------------------------------------------------------------------------


class ChainError(LedgerError):
    """Something went wrong talking to the EVM node."""

    code = "chain"


class ChainUnavailable(ChainError):
    """The JSON-RPC endpoint cannot be reached."""

    code = "chain-unavailable"

    def __init__(self, rpc_url: str, reason: str = "") -> None:
        self.rpc_url = rpc_url
        shown = redact_url(rpc_url)
        super().__init__(
            f"EVM node at {shown} is unreachable" + (f": {reason.replace(rpc_url, shown)}" if reason else "")
        )

    def diagnostics(self) -> str:
        return f"{self}\nIs the node running? `ledger node status` shows the embedded anvil."


class DeploymentError(ChainError):
    """A deployment or bootstrap step failed."""

    code = "deployment"


class ContractRevert(ChainError):
    """A call reverted with a custom error of our contracts, decoded by selector."""

    code = "contract-revert"

    def __init__(self, error_name: str, args: dict[str, object]) -> None:
        self.error_name = error_name
        self.args_by_name = args
        rendered = ", ".join(f"{k}={v!r}" for k, v in args.items())
        super().__init__(f"{error_name}({rendered})")


# --- transactions (owned by ledger_api.chain.client) ---------------------------------------------


class TransactionError(ChainError):
    """A transaction could not be sent, mined or confirmed as asked."""

    code = "transaction"

    def diagnostics(self) -> str:
        return f"{self}\nThe outbox retries automatically; `ledger outbox` (or health) shows the backlog."


class GasLimitExceeded(TransactionError):
    """The node's gas estimate for a call is above the client's cap."""

    code = "gas-limit-exceeded"

    def __init__(self, *, function: str, estimate: int, cap: int) -> None:
        self.function = function
        self.estimate = estimate
        self.cap = cap
        super().__init__(f"{function} needs {estimate} gas, above the cap of {cap}")

    def diagnostics(self) -> str:
        return f"{self}\nSplit the request (fewer documents), or raise the client's gas cap deliberately."


class TransactionRejected(TransactionError):
    """The node refused a signed transaction (insufficient funds, fee too low, nonce conflict)."""

    code = "transaction-rejected"

    def __init__(self, *, tx_hash: str, reason: str) -> None:
        self.tx_hash = tx_hash
        self.reason = reason
        super().__init__(f"node rejected transaction {tx_hash}: {reason}")

    def diagnostics(self) -> str:
        return f"{self}\nCheck the signer's balance and the node's minimum fee; the outbox resends it."


class TransactionFailed(TransactionError):
    """A transaction was mined with status 0 and its revert could not be decoded."""

    code = "transaction-failed"

    def __init__(self, *, tx_hash: str, block_number: int, detail: str = "") -> None:
        self.tx_hash = tx_hash
        self.block_number = block_number
        super().__init__(f"transaction {tx_hash} failed in block {block_number}" + (f": {detail}" if detail else ""))


class TransactionTimeout(TransactionError):
    """A transaction was not mined (or not final) within the time asked."""

    code = "transaction-timeout"

    def __init__(self, *, tx_hash: str, seconds: float) -> None:
        self.tx_hash = tx_hash
        self.seconds = seconds
        super().__init__(f"transaction {tx_hash} not confirmed within {seconds:.1f}s")


class UnknownSigner(TransactionError):
    """The client holds no private key for the address asked to sign."""

    code = "unknown-signer"

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__(f"no local signing key for {address}")

    def diagnostics(self) -> str:
        return f"{self}\nLoad the key into the keystore (var/keys) and restart the service."


# --- outbox (owned by ledger_api.outbox) -----------------------------------------------------------


class OutboxError(LedgerError):
    """The durable write journal cannot do what was asked."""

    code = "outbox"


class IdempotencyConflict(OutboxError):
    """An idempotency key was reused for a request with different content."""

    code = "idempotency-conflict"

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"idempotency key {key!r} was already used for a different request")

    def diagnostics(self) -> str:
        return f"{self}\nUse a fresh key for a new request; reuse a key only to retry the same request."


class JournalBusy(OutboxError):
    """The write journal did not take the request in time (disk or lock trouble); retry later."""

    code = "journal-busy"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        #: Seconds to wait before retrying (the Retry-After header).
        self.retry_after = retry_after
        super().__init__(message)


class UnknownOutboxEntry(OutboxError):
    """No journal entry has this id or idempotency key."""

    code = "unknown-outbox-entry"


# --- documents (owned by ledger_api.documents) ---------------------------------------------------


class DocumentError(LedgerError):
    """Root of content-store, CID, encryption and Merkle errors."""

    code = "document"

    def diagnostics(self) -> str:
        return f"{self}\nSee docs/documents.md (content stores, envelopes, Merkle batches)."


class DocumentTooLarge(DocumentError):
    """The input is larger than the limit; refused before it was read completely."""

    code = "document-too-large"

    def __init__(self, *, limit: int, seen: int) -> None:
        self.limit = limit
        self.seen = seen
        super().__init__(f"document exceeds the size limit of {limit} bytes (at least {seen} bytes seen)")

    def diagnostics(self) -> str:
        return f"{self}\nSplit the document or raise max_size (LEDGER_* settings) deliberately."


class DocumentNotFound(DocumentError):
    """The store holds no block or document under this CID."""

    code = "document-not-found"

    def __init__(self, cid: str, where: str = "") -> None:
        self.cid = cid
        super().__init__(f"no document {cid} in the store" + (f" ({where})" if where else ""))

    def diagnostics(self) -> str:
        return f"{self}\nCheck the CID, or import the document (e.g. from a CAR file) first."


class IntegrityError(DocumentError):
    """Bytes fetched under a CID do not hash to it; the bytes are never returned."""

    code = "integrity"

    def __init__(self, cid: str, detail: str = "") -> None:
        self.cid = cid
        super().__init__(f"content fetched for {cid} does not match its CID" + (f": {detail}" if detail else ""))

    def diagnostics(self) -> str:
        return (
            f"{self}\nThe store or a node on the way returned altered data. Fetch it from another"
            " agency's node and report the store that served it (integrity watch)."
        )


class InvalidCid(DocumentError):
    """A value is not a CID (or uses a codec / hash this library does not handle)."""

    code = "invalid-cid"


class MalformedBlock(DocumentError):
    """A dag-pb / UnixFS block or a CAR header cannot be decoded."""

    code = "malformed-block"


class TruncatedCar(DocumentError):
    """A CAR stream ends in the middle of its header or a section."""

    code = "truncated-car"

    def __init__(self, *, offset: int, detail: str) -> None:
        self.offset = offset
        super().__init__(f"CAR data truncated at byte {offset}: {detail}")

    def diagnostics(self) -> str:
        return f"{self}\nThe file was cut short; export or download it again."


class StoreUnavailable(DocumentError):
    """The content store cannot be reached or used."""

    code = "store-unavailable"

    def __init__(self, location: str, reason: str = "") -> None:
        self.location = location
        super().__init__(f"content store at {location} is unavailable" + (f": {reason}" if reason else ""))

    def diagnostics(self) -> str:
        return f"{self}\nIs the IPFS daemon running and its RPC API reachable from here?"


class CanonicalizationError(DocumentError):
    """A value has no RFC 8785 canonical JSON form (NaN, non-string keys, huge ints, ...)."""

    code = "canonicalization"


class EnvelopeError(DocumentError):
    """Root of encrypted-document envelope errors."""

    code = "envelope"


class UnsupportedEnvelope(EnvelopeError):
    """Unknown envelope magic, format version or algorithm."""

    code = "unsupported-envelope"


class TamperedEnvelope(EnvelopeError):
    """The envelope's ciphertext or authenticated header failed AES-GCM authentication."""

    code = "tampered-envelope"

    def __init__(self, document_id: str, detail: str = "") -> None:
        self.document_id = document_id
        super().__init__(
            f"envelope of document {document_id!r} failed authentication" + (f": {detail}" if detail else "")
        )

    def diagnostics(self) -> str:
        return f"{self}\nThe stored envelope was altered; fetch it again by its CID and compare."


class DecryptionError(EnvelopeError):
    """The key material cannot open the envelope."""

    code = "decryption"


class WrongKey(DecryptionError):
    """The private key (or the password protecting it) does not fit."""

    code = "wrong-key"

    def diagnostics(self) -> str:
        return f"{self}\nUse the key of an agency the document was granted to (and its password)."


class AccessRevoked(EnvelopeError):
    """The envelope carries no key wrap for this agency (never granted, revoked, or shredded)."""

    code = "access-revoked"

    def __init__(self, document_id: str, agency_id: str) -> None:
        self.document_id = document_id
        self.agency_id = agency_id
        super().__init__(f"agency {agency_id!r} holds no key for document {document_id!r}")

    def diagnostics(self) -> str:
        return f"{self}\nAsk the declarant or the jurisdiction to grant access to this agency."


class ProofError(DocumentError):
    """A Merkle or selective-disclosure proof does not lead to the expected root."""

    code = "proof"

    def __init__(self, *, expected_root: str, detail: str = "") -> None:
        self.expected_root = expected_root
        super().__init__(f"proof does not verify against root {expected_root}" + (f": {detail}" if detail else ""))

    def diagnostics(self) -> str:
        return f"{self}\nThe proof belongs to another tree/commitment, or the value was altered."


# --- read model (owned by ledger_api.index and ledger_api.chain.events) ---------------------------


class LogQueryError(ChainError):
    """The node answered a JSON-RPC query (e.g. ``eth_getLogs``) with an error."""

    code = "log-query"

    def diagnostics(self) -> str:
        return f"{self}\nThe node refused the query; a smaller block range or another node may help."


class EventDecodeError(ChainError):
    """A log does not match the ABI layout of the event its topic0 names."""

    code = "event-decode"

    def diagnostics(self) -> str:
        return f"{self}\nThe committed ABIs may not match the deployed contracts (check the deployment record)."


class ReadModelError(LedgerError):
    """Root of errors of the event index (read model)."""

    code = "read-model"

    def diagnostics(self) -> str:
        return f"{self}\nSee docs/index.md; deleting the index database rebuilds it from the chain."


class IndexMismatch(ReadModelError):
    """The index database was built for another chain id or other contract addresses."""

    code = "index-mismatch"


class ReorgTooDeep(ReadModelError):
    """The chain diverged below every block the index still remembers."""

    code = "reorg-too-deep"


# --- access (owned by ledger_api.api.auth) ------------------------------------------------------


class AccessError(LedgerError):
    """Root of authentication and authorization failures."""

    code = "access"


class AuthenticationError(AccessError):
    """The request is not signed by a key the ledger knows (HTTP 401)."""

    code = "unauthenticated"

    def diagnostics(self) -> str:
        return f"{self}\nSign requests with a registered key (RFC 9421, see docs/api.md)."


class SignatureMissing(AuthenticationError):
    """The request carries no ``Signature`` / ``Signature-Input`` for this service."""

    code = "signature-missing"


class SignatureInvalid(AuthenticationError):
    """The signature is malformed, expired, by another key, or the request / body was altered."""

    code = "signature-invalid"


class SignatureReplayed(AuthenticationError):
    """The signature's nonce was already used within its validity window."""

    code = "signature-replayed"


class UnknownCaller(AuthenticationError):
    """The key id is not a currently valid key of an active agency, nor an active trader."""

    code = "unknown-caller"


class Forbidden(AccessError):
    """The caller is known but may not do this (role, jurisdiction or object ownership)."""

    code = "forbidden"


class DeclarationNotFound(AccessError):
    """No such declaration, or none the caller may see (the two are not distinguished on purpose)."""

    code = "declaration-not-found"

    def __init__(self, declaration_id: str) -> None:
        self.declaration_id = declaration_id
        super().__init__(f"no declaration {declaration_id} visible to the caller")


class RateLimited(AccessError):
    """Over a request budget: the caller's reads or writes, or its address's failed authentications (HTTP 429)."""

    code = "rate-limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        #: Whole seconds (at least 1) until the budget allows another request (the Retry-After header).
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"{message}; retry in {self.retry_after} s")

    def diagnostics(self) -> str:
        return f"{self}\nSlow down; if the traffic is legitimate, raise LEDGER_RATE_LIMIT_* (docs/api.md)."


# --- writes (owned by ledger_api.api.writes) ----------------------------------------------------


class NoCustody(AccessError):
    """The caller is authenticated but this service holds no signing key for it, so it cannot write for it."""

    code = "no-custody"

    def diagnostics(self) -> str:
        return f"{self}\nSend writes to the service that holds your key (docs/api.md, 'Writes')."


class SubmissionNotFound(AccessError):
    """No tracked write with this id was made by the caller (others' writes are not distinguished)."""

    code = "submission-not-found"

    def __init__(self, tracking_id: str) -> None:
        self.tracking_id = tracking_id
        super().__init__(f"no submission {tracking_id} made by the caller")


class TokenNotFound(AccessError):
    """No API token with this id belongs to the caller."""

    code = "token-not-found"

    def __init__(self, token_id: str) -> None:
        self.token_id = token_id
        super().__init__(f"no API token {token_id} of the caller")


class InvalidSubmission(AccessError):
    """A write request is malformed or inconsistent (missing part, unknown agency, mismatched counts)."""

    code = "invalid-submission"


class StampNotFound(AccessError):
    """No stamp with this id, or none the caller may act on (the two are not distinguished on purpose)."""

    code = "stamp-not-found"

    def __init__(self, stamp_id: str) -> None:
        self.stamp_id = stamp_id
        super().__init__(f"no stamp {stamp_id} issued by the caller's agency")


class ProposalNotFound(AccessError):
    """No governance proposal with this id is known (yet) to the read model."""

    code = "proposal-not-found"

    def __init__(self, proposal_id: int) -> None:
        self.proposal_id = proposal_id
        super().__init__(f"no governance proposal {proposal_id}")


# --- evidence bundles (owned by ledger_api.verify.evidence and ledger_api.audit._evidence) --------


class EvidenceError(LedgerError):
    """Root of evidence-bundle errors. ``step`` / ``check`` name the checklist step (0 = not a step)."""

    code = "evidence"

    def __init__(self, message: str, *, step: int = 0, check: str = "") -> None:
        self.step = step
        self.check = check
        prefix = f"step {step} ({check}) failed: " if step else ""
        super().__init__(prefix + message)

    def diagnostics(self) -> str:
        return f"{self}\nSee docs/evidence.md (the verification checklist, and what each step proves)."


class MalformedBundle(EvidenceError):
    """The input is not an evidence bundle of a known format (step 1: size, JSON, canonical form, schema)."""

    code = "malformed-bundle"

    def __init__(self, message: str) -> None:
        super().__init__(message, step=1, check="format")


class BundleTooLarge(MalformedBundle):
    """The bundle is larger than the reader's limit; refused before it is parsed."""

    code = "bundle-too-large"

    def __init__(self, *, limit: int, seen: int) -> None:
        self.limit = limit
        self.seen = seen
        super().__init__(f"bundle exceeds the size limit of {limit} bytes (at least {seen} bytes seen)")


class EvidenceInvalid(EvidenceError):
    """A step of the offline checklist failed: the bundle does not prove what it claims."""

    code = "evidence-invalid"


class EvidenceExportError(EvidenceError):
    """The exporter cannot build a bundle for this subject (not anchored, node data inconsistent, …)."""

    code = "evidence-export"

    def diagnostics(self) -> str:
        return f"{self}\nCheck the sha256 / declaration id, and that the node runs the deployment's chain."


class ExportBusy(EvidenceError):
    """The service builds one evidence bundle at a time (each reads every block header); retry later."""

    code = "export-busy"

    def __init__(self, *, retry_after: int = 5) -> None:
        #: Seconds to wait before retrying (the Retry-After header).
        self.retry_after = retry_after
        super().__init__("an evidence bundle is being built for another request; retry shortly")


class AuditReportNotFound(AccessError):
    """No replay report has been written to the configured path yet (``ledger audit replay --report``)."""

    code = "audit-report-not-found"

    def diagnostics(self) -> str:
        return f"{self}\nRun `ledger audit replay --report FILE` with FILE = LEDGER_AUDIT_REPORT (docs/web.md)."


# --- audit -------------------------------------------------------------------------------------


class AuditCheckpointError(LedgerError):
    """An auditor replay checkpoint (``ledger audit replay --resume``) cannot be resumed from."""

    code = "audit-checkpoint"

    def diagnostics(self) -> str:
        return f"{self}\nRun a full replay (without --resume) and write a new checkpoint with --checkpoint."


class CheckpointUnsigned(AuditCheckpointError):
    """The checkpoint carries no signature, and unsigned checkpoints were not allowed."""

    code = "audit-checkpoint-unsigned"

    def diagnostics(self) -> str:
        return f"{self}\nPass --signer LABEL when writing checkpoints, or --unsigned-checkpoint to accept this one."


class CheckpointTampered(AuditCheckpointError):
    """The checkpoint is malformed, was altered after signing, or was not signed by the expected key."""

    code = "audit-checkpoint-tampered"


class CheckpointForeign(AuditCheckpointError):
    """The checkpoint is about another chain id, other contract addresses or another deployment block."""

    code = "audit-checkpoint-foreign"


class CheckpointNotPrefix(AuditCheckpointError):
    """The node's block hash at the checkpoint height differs (or the block is gone): history was rewritten."""

    code = "audit-checkpoint-not-prefix"


# --- oracles -----------------------------------------------------------------------------------


class OracleError(LedgerError):
    """A long-running oracle (``oracles/``) could not do its work."""

    code = "oracle-error"


class RuleSetError(OracleError):
    """A risk rule set is missing, malformed, or is not the one anchored on chain."""

    code = "invalid-rule-set"


class AttestationRejected(OracleError):
    """A partner feed item (signed stamp / attestation) is forged, replayed, expired or malformed.

    ``reason`` is a stable short code (``bad-signature``, ``expired``, ``replayed``, …) reported
    back to the partner and kept in the bridge's rejection log.
    """

    code = "attestation-rejected"

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


class CheckpointError(OracleError):
    """A witness checkpoint is malformed, or its signature does not hold for the claimed agency."""

    code = "invalid-checkpoint"
