"""Per-connection decryption engine (sans-I/O).

The connection state machine feeds it, in wire order, every handshake message
(plaintext or already decrypted by this engine), every ChangeCipherSpec and
every protected record.  The engine keeps the transcript, picks keys from the
key log (or an RSA private key), switches keys where the protocol does, and
opens records.  It never raises on wire data: odd input becomes a problem
string or a :class:`DecryptFailure`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from ..codec import DecodeError, Reader
from ..dtls import DTLS13, DTLS_OPENSSL_PRE, tls_version_of
from . import tls12, tls13
from .dtls13 import EPOCH_APPLICATION, EPOCH_EARLY, EPOCH_HANDSHAKE, LABEL_PREFIX, EpochKeys
from .ciphers import (MACS, CipherSpec, RecordAuthError, RecordOpener, cipher_spec, tls12_opener,
                      tls13_opener)
from .keylog import KeyLog
from .rsa import RsaKeys

__all__ = ["Decrypted", "DecryptFailure", "ConnectionDecryptor"]

TLS13 = 0x0304

# handshake types (RFC 8446 §4, RFC 5246 §7.4)
HELLO_REQUEST, CLIENT_HELLO, SERVER_HELLO, NEW_SESSION_TICKET, END_OF_EARLY_DATA = 0, 1, 2, 4, 5
ENCRYPTED_EXTENSIONS, CLIENT_KEY_EXCHANGE, FINISHED, KEY_UPDATE = 8, 16, 20, 24

# extension types
EXT_ENCRYPT_THEN_MAC, EXT_EXTENDED_MASTER_SECRET = 22, 23
EXT_EARLY_DATA, EXT_SUPPORTED_VERSIONS = 42, 43
EXT_SESSION_TICKET = 35
COMPRESSION_DEFLATE = 1   # RFC 3749

# DTLS 1.3 epochs kept per direction (handshake records retransmitted after the application
# epoch started, KeyUpdates): older ones are dropped
_DTLS13_EPOCHS_KEPT = 4
_DTLS13_EPOCH_OF = {"early": EPOCH_EARLY, "handshake": EPOCH_HANDSHAKE, "application": EPOCH_APPLICATION}

_SEQ48 = (1 << 48) - 1

# how many sequence numbers to try when keys arrive after records went by
_RESYNC_LIMIT = 64
# bytes kept from the end of each record: the last CBC block (16) behind an encrypt-then-MAC
# tag (up to 48) chains the TLS 1.0 IV into the next record
_TAIL = 64
# ... how many unseen KeyUpdates to follow, and for how many records of a direction to search
_RESYNC_KEY_UPDATES = 8
_RESYNC_RECORDS = 16


@dataclass(frozen=True, slots=True)
class Decrypted:
    content_type: int     # TLS 1.3: the inner content type (padding removed)
    plaintext: bytes
    record_number: int    # the record's sequence number in its key epoch


@dataclass(frozen=True, slots=True)
class DecryptFailure:
    reason: str
    record_number: int


def _suite_info(code: int):
    from ..registry import cipher_suite_info  # late: the registry is generated separately
    return cipher_suite_info(code)


class _Hello:
    """What the engine needs from one ClientHello/ServerHello."""

    __slots__ = ("legacy_version", "random", "session_id", "cipher_suites", "cipher_suite",
                 "compression", "extensions")

    def __init__(self) -> None:
        self.legacy_version = 0
        self.random = b""
        self.session_id = b""
        self.cipher_suites: tuple[int, ...] = ()
        self.cipher_suite = 0
        self.compression = 0
        self.extensions: dict[int, bytes] = {}


def _parse_extensions(r: Reader, hello: _Hello) -> None:
    if r.at_end():
        return
    ext = r.vector(2, "extensions")
    path, start = ext.path, ext.offset
    raw = ext.rest()
    # the framing over plain bytes; a broken one is read again through a Reader for its error
    found: dict[int, bytes] = {}
    pos, end = 0, len(raw)
    while pos < end:
        if end - pos < 4:
            return _parse_extensions_checked(Reader(raw, path, start), hello)
        n = (raw[pos + 2] << 8) | raw[pos + 3]
        if n > end - pos - 4:
            return _parse_extensions_checked(Reader(raw, path, start), hello)
        found.setdefault((raw[pos] << 8) | raw[pos + 1], raw[pos + 4:pos + 4 + n])
        pos += 4 + n
    for ext_type, data in found.items():
        hello.extensions.setdefault(ext_type, data)


def _parse_extensions_checked(ext: Reader, hello: _Hello) -> None:
    while not ext.at_end():
        ext_type = ext.u16("extension_type")
        data = ext.vector_bytes(2, "extension_data")
        hello.extensions.setdefault(ext_type, data)


def _parse_client_hello(body: bytes) -> _Hello:
    r = Reader(body, "ClientHello")
    h = _Hello()
    h.legacy_version = r.u16("legacy_version")
    h.random = r.opaque(32, "random")
    h.session_id = r.vector_bytes(1, "legacy_session_id")
    h.cipher_suites = r.u16_list(2, "cipher_suites")
    r.vector_bytes(1, "legacy_compression_methods")
    _parse_extensions(r, h)
    return h


def _parse_server_hello(body: bytes) -> _Hello:
    r = Reader(body, "ServerHello")
    h = _Hello()
    h.legacy_version = r.u16("legacy_version")
    h.random = r.opaque(32, "random")
    h.session_id = r.vector_bytes(1, "legacy_session_id")
    h.cipher_suite = r.u16("cipher_suite")
    h.compression = r.u8("legacy_compression_method")
    _parse_extensions(r, h)
    return h


def _extension_types(body: bytes) -> set[int]:
    """Extension types in an EncryptedExtensions body."""
    r = Reader(body, "EncryptedExtensions")
    ext = r.vector(2, "extensions")
    types = set()
    while not ext.at_end():
        types.add(ext.u16("extension_type"))
        ext.vector_bytes(2, "extension_data")
    return types


class _Handshake:
    """One handshake's parameters and transcript (a renegotiation starts a new one)."""

    __slots__ = ("client_hello", "server_hello", "hrr", "version", "suite", "info", "spec",
                 "hash", "transcript", "ems_len", "encrypted_premaster", "early_data_offered",
                 "early_data_accepted", "complete", "client_finished", "server_finished",
                 "master", "method", "key_reason", "no_key", "ticket", "key_block_done", "client_keys",
                 "server_keys", "dtls13")

    def __init__(self, client_hello: _Hello) -> None:
        self.client_hello = client_hello
        self.server_hello: _Hello | None = None
        self.hrr = False
        self.version: int | None = None
        self.suite: int | None = None
        self.info = None
        self.spec: CipherSpec | None = None
        self.hash = "sha256"
        self.transcript = bytearray()
        self.ems_len: int | None = None
        self.encrypted_premaster: bytes | None = None
        self.early_data_offered = EXT_EARLY_DATA in client_hello.extensions
        self.early_data_accepted: bool | None = None
        self.complete = False
        self.client_finished = False
        self.server_finished = False
        self.master: bytes | None = None
        self.method: str | None = None
        self.key_reason = ""      # permanent: unknown/unsupported suite
        self.no_key = ""          # no secret (yet): keys may still arrive
        self.ticket = b""         # TLS <= 1.2 NewSessionTicket.ticket
        self.key_block_done = False
        self.client_keys: RecordOpener | None = None   # TLS <= 1.2 pending read states
        self.server_keys: RecordOpener | None = None
        self.dtls13 = False       # DTLS 1.3: "dtls13" labels, TLS-framed transcript, unified headers

    @property
    def tls13(self) -> bool:
        return self.version == TLS13

    def uses(self, ext_type: int) -> bool:
        return (ext_type in self.client_hello.extensions and self.server_hello is not None
                and ext_type in self.server_hello.extensions)


class _Direction:
    """One direction's read state."""

    __slots__ = ("name", "opener", "seq", "epoch", "secret", "encrypted", "missing", "missed",
                 "decrypted_in_epoch", "early_opener", "early_seq", "last_tail", "missed_bytes", "inflater",
                 "resyncs", "dtls13_keys")

    def __init__(self, name: str) -> None:
        self.name = name
        self.opener: RecordOpener | None = None
        self.seq = 0
        self.epoch = ""               # TLS 1.3: "early" | "handshake" | "application"; TLS<=1.2: "cipher"
        self.secret: bytes | None = None   # TLS 1.3 current traffic secret
        self.encrypted = False        # records of this direction are protected
        self.missing = ""             # why there is no opener
        self.missed = 0               # records that went by without keys in this epoch
        self.missed_bytes = 0
        self.last_tail = b""          # end of the previous record (TLS 1.0 CBC IV chain, MAC included)
        self.decrypted_in_epoch = False
        self.early_opener: RecordOpener | None = None
        self.early_seq = 0
        self.inflater = None          # TLS <= 1.2 DEFLATE compression state (RFC 3749)
        self.resyncs = 0              # records tried against later keys after keys arrived late
        self.dtls13_keys: dict[int, EpochKeys] = {}   # DTLS 1.3: read states by epoch number

    def start_epoch(self, epoch: str, opener: RecordOpener | None, secret: bytes | None = None,
                    missing: str = "") -> None:
        self.epoch = epoch
        self.opener = opener
        self.secret = secret
        self.seq = 0
        self.missing = missing
        self.missed = 0
        self.missed_bytes = 0
        self.decrypted_in_epoch = False
        self.encrypted = True


class ConnectionDecryptor:
    """Decrypts one TLS connection's records given the key log and/or RSA keys."""

    def __init__(self, keylog: KeyLog, rsa_keys: RsaKeys | None = None, *, dtls: bool = False) -> None:
        self._keylogs: list[KeyLog] = [keylog] if keylog is not None else []
        # DTLS <= 1.2: records carry their own epoch and sequence number, and the Finished hash covers
        # the DTLS-framed messages (observe_handshake's ``transcript``)
        self._dtls = dtls
        self._rsa = rsa_keys
        self._hs: _Handshake | None = None       # the handshake in progress (or the last one)
        self._active: _Handshake | None = None   # the handshake whose keys protect records now
        self._client = _Direction("client")
        self._server = _Direction("server")
        self.finished_verified: dict[str, bool | None] = {"client": None, "server": None}
        self.problems: list[str] = []
        self._decrypted = 0
        self._failures = 0
        self._skipped_early = 0
        self._method: str | None = None
        self._labels: set[str] = set()

    def _problem(self, text: str) -> None:
        if len(self.problems) < 50:      # a garbage stream must not grow the report without bound
            self.problems.append(text)

    # -- keys ----------------------------------------------------------------
    def add_keys(self, keylog: KeyLog) -> None:
        if keylog is not None and all(keylog is not k for k in self._keylogs):
            self._keylogs.append(keylog)
        hs = self._hs
        if hs is None or hs.version is None:
            return
        if hs.tls13:
            for d, from_client in ((self._client, True), (self._server, False)):
                if d.opener is None and d.epoch:
                    self._tls13_epoch(d, from_client, d.epoch, keep_counters=True)
        else:
            if hs.master is None:
                self._tls12_master(hs)
            for d, from_client in ((self._client, True), (self._server, False)):
                if d.encrypted and d.opener is None and d.epoch == "cipher":
                    self._tls12_activate(d, from_client, late=True)

    def _secrets(self) -> dict[str, bytes]:
        hs = self._hs
        if hs is None:
            return {}
        out: dict[str, bytes] = {}
        for log in self._keylogs:
            for label, secret in log.secrets_for(hs.client_hello.random).items():
                out.setdefault(label, secret)
        return out

    def _secret(self, label: str) -> bytes | None:
        """``self._secrets().get(label)``: the first key log that has it wins."""
        hs = self._hs
        if hs is None:
            return None
        for log in self._keylogs:
            secret = log.secret(hs.client_hello.random, label)
            if secret is not None:
                return secret
        return None

    def _no_key(self, what: str = "") -> str:
        cr = self._hs.client_hello.random.hex() if self._hs else "?"
        return f"no key for client random {cr[:16]}…" + (f" ({what})" if what else "")

    # -- handshake -----------------------------------------------------------
    def observe_handshake(self, from_client: bool, message: bytes, transcript: bytes | None = None) -> None:
        """One handshake message (TLS-framed); ``transcript``: the bytes it adds to the handshake
        hash when they differ from the message (DTLS: 12-byte header, the ClientHello's cookie)."""
        message = bytes(message)
        if len(message) < 4:
            self._problem(f"handshake message of {len(message)} bytes has no header")
            return
        msg_type = message[0]
        body = message[4:]
        hashed = bytes(transcript) if transcript is not None else message
        if self._hs is not None and self._hs.dtls13:
            hashed = _tls_framed(hashed)
        try:
            self._observe(from_client, msg_type, body, hashed)
        except DecodeError as exc:
            self._problem(f"handshake type {msg_type}: {exc}")

    def observe_sslv2_client_hello(self, message: bytes) -> None:
        """An SSLv2-format ClientHello (RFC 5246 E.2): the record body without its
        2- or 3-byte header.  The client random is the challenge, right-aligned in
        32 bytes; the message bytes enter the Finished hash as they are."""
        message = bytes(message)
        try:
            r = Reader(message, "SSLv2ClientHello")
            if r.u8("msg_type") != 1:
                raise r.error("not a CLIENT-HELLO")
            hello = _Hello()
            hello.legacy_version = r.u16("version")
            spec_len = r.u16("cipher_spec_length")
            sid_len = r.u16("session_id_length")
            challenge_len = r.u16("challenge_length")
            specs = r.opaque(spec_len, "cipher_specs")
            hello.session_id = r.opaque(sid_len, "session_id")
            challenge = r.opaque(challenge_len, "challenge")
        except DecodeError as exc:
            self._problem(f"SSLv2 ClientHello: {exc}")
            return
        if not 16 <= len(challenge) <= 32:
            self._problem(f"SSLv2 ClientHello challenge of {len(challenge)} bytes")
            return
        hello.random = bytes(32 - len(challenge)) + challenge
        hello.cipher_suites = tuple(int.from_bytes(specs[i:i + 3], "big") for i in range(0, len(specs) - 2, 3)
                                    if specs[i] == 0)
        self._hs = _Handshake(hello)
        self._hs.transcript += message

    def _observe(self, from_client: bool, msg_type: int, body: bytes, message: bytes) -> None:
        hs = self._hs
        if msg_type == CLIENT_HELLO and from_client:
            hello = _parse_client_hello(body)
            if hs is not None and hs.hrr and hs.server_hello is None:
                # ClientHello2 after a HelloRetryRequest: same handshake, new offer
                hs.client_hello = hello
                hs.early_data_offered = False
                hs.transcript += message
                return
            if hs is not None and hs.tls13:
                self._problem("ClientHello after a TLS 1.3 handshake ignored")
                return
            self._hs = _Handshake(hello)
            self._hs.transcript += message
            return
        if hs is None:
            return
        if msg_type == HELLO_REQUEST:
            return  # never part of the transcript
        if msg_type == SERVER_HELLO and not from_client and hs.server_hello is None:
            self._server_hello(hs, _parse_server_hello(body), message)
            return
        if hs.tls13:
            if msg_type == KEY_UPDATE:
                self._key_update(from_client)
                return
            # NewSessionTicket (OpenSSL sends it right after its Finished) and
            # post-handshake messages never enter the transcript
            if msg_type == NEW_SESSION_TICKET or hs.complete or (hs.server_finished and not from_client):
                return
        if msg_type == FINISHED:
            self._finished(hs, from_client, body, message)
            return
        if hs.complete:
            return
        if msg_type == ENCRYPTED_EXTENSIONS and not from_client and hs.tls13:
            hs.early_data_accepted = EXT_EARLY_DATA in _extension_types(body)
        elif msg_type == END_OF_EARLY_DATA and from_client and hs.tls13:
            hs.transcript += message
            self._tls13_epoch(self._client, True, "handshake")
            return
        elif msg_type == NEW_SESSION_TICKET and not from_client and not hs.tls13:
            r = Reader(body, "NewSessionTicket")
            r.u32("ticket_lifetime_hint")
            hs.ticket = r.vector_bytes(2, "ticket")
        elif msg_type == CLIENT_KEY_EXCHANGE and from_client and not hs.tls13:
            hs.transcript += message
            hs.ems_len = len(hs.transcript)
            if hs.version == tls12.SSL3:
                hs.encrypted_premaster = body
            elif len(body) >= 2 and int.from_bytes(body[:2], "big") == len(body) - 2:
                hs.encrypted_premaster = body[2:]
            else:
                hs.encrypted_premaster = body
            return
        hs.transcript += message

    def _server_hello(self, hs: _Handshake, hello: _Hello, message: bytes) -> None:
        version = hello.legacy_version
        sv = hello.extensions.get(EXT_SUPPORTED_VERSIONS)
        if sv is not None and len(sv) == 2:
            version = int.from_bytes(sv, "big")
        if self._dtls:
            if version == DTLS13 and not hs.dtls13:
                # RFC 9147 §5.2: DTLS 1.3 hashes TLS 1.3-style messages (no message_seq or fragment
                # fields), unlike DTLS 1.2: what was hashed so far is reframed
                hs.dtls13 = True
                hs.transcript = bytearray(_tls_framed_all(bytes(hs.transcript)))
                message = _tls_framed(message)
            # key schedule and record protection of the TLS version DTLS builds on
            version = tls_version_of(version)
        info = _suite_info(hello.cipher_suite)
        if hello.random == tls13.HELLO_RETRY_REQUEST_RANDOM:
            if info is None or info.prf_hash not in tls13.HASHES:
                self._problem("HelloRetryRequest with unknown cipher suite "
                                     f"0x{hello.cipher_suite:04x}")
                return
            # RFC 8446 §4.4.1: ClientHello1 is replaced by message_hash
            hs.transcript = bytearray(tls13.message_hash(info.prf_hash, bytes(hs.transcript)) + message)
            hs.hrr = True
            hs.early_data_offered = False
            return
        hs.server_hello = hello
        hs.version = version
        hs.suite = hello.cipher_suite
        hs.info = info
        hs.transcript += message
        if version & 0xFF00 == 0x7F00 or version > TLS13:
            hs.key_reason = f"version 0x{version:04x} (a TLS 1.3 draft?) is not supported for decryption"
        elif info is None:
            hs.key_reason = f"cipher suite 0x{hello.cipher_suite:04x} is unknown"
        elif (info.prf_hash or "sha256") not in tls13.HASHES:
            hs.key_reason = f"PRF hash {info.prf_hash} of {info.name} is not supported for decryption"
        else:
            hs.hash = info.prf_hash or "sha256"
            hs.spec = cipher_spec(info.cipher)
            if hs.spec is None:
                hs.key_reason = f"cipher {info.cipher} of {info.name} is not supported for decryption"
        if hs.key_reason:
            self._problem(hs.key_reason)
        if hello.compression not in (0, COMPRESSION_DEFLATE) and not hs.tls13:
            self._problem(f"compression method {hello.compression}: records stay compressed "
                                 "after decryption")
        if hs.tls13:
            self._active = hs
            self._tls13_epoch(self._server, False, "handshake")
            if hs.dtls13:
                # records name their epoch: the client's early and handshake keys can both be ready
                if hs.early_data_offered and self._secret("CLIENT_EARLY_TRAFFIC_SECRET") is not None:
                    self._tls13_epoch(self._client, True, "early")
                self._tls13_epoch(self._client, True, "handshake")
            elif hs.early_data_offered:
                self._client.epoch = "early"
                self._client.encrypted = True
            else:
                self._tls13_epoch(self._client, True, "handshake")

    # -- TLS 1.3 -------------------------------------------------------------
    _TLS13_LABELS = {
        (True, "early"): "CLIENT_EARLY_TRAFFIC_SECRET",
        (True, "handshake"): "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        (False, "handshake"): "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        (True, "application"): "CLIENT_TRAFFIC_SECRET_0",
        (False, "application"): "SERVER_TRAFFIC_SECRET_0",
    }

    def _tls13_opener(self, spec: CipherSpec | None, hash_name: str, secret: bytes, dtls_epoch: int = 0
                      ) -> RecordOpener | EpochKeys | None:
        if spec is None or spec.kind != "aead":
            return None
        if dtls_epoch:
            return EpochKeys(dtls_epoch, spec, hash_name, secret)
        key, iv = tls13.traffic_key_iv(hash_name, secret, spec.key_len, 12)
        return tls13_opener(spec, key, iv)

    @property
    def _prefix(self) -> bytes:
        """The HKDF label prefix of the handshake in progress."""
        return LABEL_PREFIX if self._hs is not None and self._hs.dtls13 else b"tls13 "

    @staticmethod
    def _keep_dtls13(d: _Direction) -> None:
        """A DTLS 1.3 epoch just started: keep its read state beside the older ones (bounded)."""
        keys = d.opener
        if isinstance(keys, EpochKeys):
            d.dtls13_keys[keys.epoch] = keys
            while len(d.dtls13_keys) > _DTLS13_EPOCHS_KEPT:
                del d.dtls13_keys[min(d.dtls13_keys)]

    def _tls13_epoch(self, d: _Direction, from_client: bool, epoch: str,
                     keep_counters: bool = False) -> None:
        hs = self._hs
        label = self._TLS13_LABELS[(from_client, epoch)]
        secret = self._secret(label)
        missed, missed_bytes = d.missed, d.missed_bytes
        seq = d.seq
        if hs.key_reason:
            d.start_epoch(epoch, None, None, hs.key_reason)
        elif secret is None:
            d.start_epoch(epoch, None, None, self._no_key(f"{label} missing"))
        elif len(secret) != tls13.hash_len(hs.hash):
            d.start_epoch(epoch, None, None, f"{label} has {len(secret)} bytes, the suite's hash "
                                             f"{hs.hash} needs {tls13.hash_len(hs.hash)}")
        else:
            self._labels.add(label)
            self._method = self._method or "keylog"
            dtls_epoch = _DTLS13_EPOCH_OF[epoch] if hs.dtls13 else 0
            d.start_epoch(epoch, self._tls13_opener(hs.spec, hs.hash, secret, dtls_epoch), secret)
            self._keep_dtls13(d)
        if keep_counters:
            d.seq, d.missed, d.missed_bytes = seq, missed, missed_bytes

    def _key_update(self, from_client: bool) -> None:
        d = self._client if from_client else self._server
        hs = self._hs
        if d.secret is None:
            d.start_epoch("application", None, None, d.missing or self._no_key("before KeyUpdate"))
            return
        secret = tls13.next_traffic_secret(hs.hash, d.secret, self._prefix)
        dtls_epoch = d.opener.epoch + 1 if isinstance(d.opener, EpochKeys) else 0
        d.start_epoch("application", self._tls13_opener(hs.spec, hs.hash, secret, dtls_epoch), secret)
        self._keep_dtls13(d)

    def _tls13_finished(self, hs: _Handshake, from_client: bool, body: bytes) -> bool | None:
        label = "CLIENT_HANDSHAKE_TRAFFIC_SECRET" if from_client else "SERVER_HANDSHAKE_TRAFFIC_SECRET"
        secret = self._secret(label)
        if secret is None or hs.info is None:
            return None
        transcript_hash = tls13.hash_bytes(hs.hash, hs.transcript)
        return tls13.finished_verify_data(hs.hash, secret, transcript_hash, self._prefix) == body

    # -- Finished (both) -----------------------------------------------------
    def _finished(self, hs: _Handshake, from_client: bool, body: bytes, message: bytes) -> None:
        side = "client" if from_client else "server"
        if hs.tls13:
            self.finished_verified[side] = self._tls13_finished(hs, from_client, body)
            hs.transcript += message
            if from_client:
                hs.client_finished = True
                hs.complete = True
                self._tls13_epoch(self._client, True, "application")
            else:
                hs.server_finished = True
                self._tls13_epoch(self._server, False, "application")
            return
        if hs.master is None and hs.version is not None:
            self._tls12_master(hs)
        # OpenSSL's DTLS before 0.9.8f (0x0100) does not hash the handshake the RFC way (no framing of
        # the messages tried matched its verify_data): its Finished are decrypted but not checked
        pre_rfc = self._dtls and hs.server_hello is not None and hs.server_hello.legacy_version == DTLS_OPENSSL_PRE
        if hs.master is not None and hs.version is not None and not pre_rfc:
            expected = tls12.finished_verify_data(hs.version, hs.hash, hs.master,
                                                  bytes(hs.transcript), from_client)
            self.finished_verified[side] = expected == body
        hs.transcript += message
        if from_client:
            hs.client_finished = True
        else:
            hs.server_finished = True
        if hs.client_finished and hs.server_finished:
            hs.complete = True
            if (hs.master is not None and self._keylogs and hs.method != "keylog"
                    and all(self.finished_verified.values())):
                # remember sessions opened with --rsa-key for later resumptions
                for key in self._session_keys(hs):
                    self._keylogs[0].add_session(key, hs.master, hs.method)

    @staticmethod
    def _resumption_keys(hs: _Handshake) -> list[bytes]:
        """Cache keys under which an abbreviated handshake's session may be known."""
        keys = []
        ticket = hs.client_hello.extensions.get(EXT_SESSION_TICKET)
        if ticket:
            keys.append(b"ticket:" + ticket)
        sh = hs.server_hello
        if sh is not None and sh.session_id and sh.session_id == hs.client_hello.session_id:
            keys.append(b"id:" + sh.session_id)
        return keys

    @staticmethod
    def _session_keys(hs: _Handshake) -> list[bytes]:
        keys = []
        if hs.server_hello is not None and hs.server_hello.session_id:
            keys.append(b"id:" + hs.server_hello.session_id)
        if hs.ticket:
            keys.append(b"ticket:" + hs.ticket)
        return keys

    # -- TLS <= 1.2 ----------------------------------------------------------
    def _tls12_master(self, hs: _Handshake) -> None:
        """Find the master secret: keylog master, keylog premaster, RSA line, RSA key."""
        if hs.key_reason or hs.version is None:
            return
        secrets = self._secrets()
        if "CLIENT_RANDOM" in secrets:
            hs.master, hs.method = secrets["CLIENT_RANDOM"], "keylog"
            self._labels.add("CLIENT_RANDOM")
            return
        # an abbreviated handshake (no ClientKeyExchange) may resume a session opened earlier
        for key in self._resumption_keys(hs) if hs.encrypted_premaster is None else ():
            for log in self._keylogs:
                cached = log.session_master(key)
                if cached is not None:
                    hs.master, hs.method = cached
                    return
        premaster, method = None, None
        if "PMS_CLIENT_RANDOM" in secrets:
            premaster, method = secrets["PMS_CLIENT_RANDOM"], "keylog"
            self._labels.add("PMS_CLIENT_RANDOM")
        elif hs.encrypted_premaster:
            for log in self._keylogs:
                premaster = log.rsa_premaster(hs.encrypted_premaster[:8])
                if premaster is not None:
                    method = "keylog"
                    self._labels.add("RSA")
                    break
            if premaster is None and self._rsa is not None:
                premaster = self._rsa.decrypt_premaster(hs.encrypted_premaster,
                                                        hs.client_hello.legacy_version)
                method = "rsa" if premaster is not None else None
        if premaster is None:
            why = "no CLIENT_RANDOM line"
            if hs.encrypted_premaster and self._rsa is not None and len(self._rsa):
                why += "; the RSA key does not decrypt the premaster"
            hs.no_key = self._no_key(why)
            return
        session_hash = None
        if hs.uses(EXT_EXTENDED_MASTER_SECRET) and hs.version != tls12.SSL3 and hs.ems_len:
            session_hash = tls12.handshake_hash(hs.version, hs.hash, bytes(hs.transcript[:hs.ems_len]))
        hs.master = tls12.derive_master_secret(hs.version, hs.hash, premaster,
                                               hs.client_hello.random, hs.server_hello.random,
                                               session_hash)
        hs.method = method

    def _tls12_key_block(self, hs: _Handshake) -> None:
        if hs.key_block_done:
            return
        if hs.master is None:
            self._tls12_master(hs)
        if hs.master is None or hs.spec is None or hs.info is None:
            return
        spec, info, version = hs.spec, hs.info, hs.version
        mac_hash = None if spec.kind == "aead" else MACS.get(info.mac or "", None)
        if spec.kind != "aead" and info.mac and mac_hash is None:
            hs.key_reason = f"MAC {info.mac} not supported"
            return
        mac_len = tls13.hash_len(mac_hash) if mac_hash else 0
        export = bool(info.export) and spec.kind != "aead" and spec.key_len > 0
        key_len = (spec.export_key_len or spec.key_len) if export else spec.key_len
        iv_len = 0 if export else spec.fixed_iv_len   # export IVs come from the randoms
        cr, sr = hs.client_hello.random, hs.server_hello.random
        block = tls12.key_block(version, hs.hash, hs.master, cr, sr, 2 * (mac_len + key_len + iv_len))
        parts = []
        pos = 0
        for n in (mac_len, mac_len, key_len, key_len, iv_len, iv_len):
            parts.append(block[pos:pos + n])
            pos += n
        c_mac, s_mac, c_key, s_key, c_iv, s_iv = parts
        if export:
            c_key, s_key, c_iv, s_iv = self._export_keys(version, spec, c_key, s_key, cr, sr)
        etm = spec.kind == "cbc" and hs.uses(EXT_ENCRYPT_THEN_MAC)
        try:
            hs.client_keys = tls12_opener(spec, version, c_key, c_iv, mac_hash, c_mac, etm)
            hs.server_keys = tls12_opener(spec, version, s_key, s_iv, mac_hash, s_mac, etm)
        except Exception as exc:  # an algorithm this OpenSSL build lacks (SEED, IDEA, RC2...)
            hs.key_reason = f"cipher {info.cipher} unavailable: {exc}"
            return
        hs.key_block_done = True
        self._method = self._method or hs.method

    @staticmethod
    def _export_keys(version, spec, c_key, s_key, cr, sr):
        """Expand 40-bit export keys (RFC 2246 §6.3, RFC 6101 §6.2.2)."""
        iv_len = spec.fixed_iv_len
        if version == tls12.SSL3:
            md5 = lambda data: tls13.hash_bytes("md5", data)  # noqa: E731
            return (md5(c_key + cr + sr)[:spec.key_len], md5(s_key + sr + cr)[:spec.key_len],
                    md5(cr + sr)[:iv_len], md5(sr + cr)[:iv_len])
        final_c = tls12.prf(version, "", c_key, b"client write key", cr + sr, spec.key_len)
        final_s = tls12.prf(version, "", s_key, b"server write key", cr + sr, spec.key_len)
        ivs = tls12.prf(version, "", b"", b"IV block", cr + sr, 2 * iv_len)
        return final_c, final_s, ivs[:iv_len], ivs[iv_len:]

    def _tls12_activate(self, d: _Direction, from_client: bool, late: bool = False) -> None:
        hs = self._hs
        self._tls12_key_block(hs)
        opener = hs.client_keys if from_client else hs.server_keys
        if late:
            if opener is None:
                return
            # keys arrived after records went by: catch the cipher state up
            if d.missed:
                opener.catch_up(d.missed_bytes, d.last_tail)
                if d.inflater is not None:
                    # the zlib header went by in a missed record: go on with raw DEFLATE (each
                    # record ends in a sync flush, so later records start on a block boundary)
                    d.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            d.opener, d.missing = opener, ""
            return
        self._active = hs
        compression = hs.server_hello.compression if hs.server_hello is not None else 0
        d.inflater = zlib.decompressobj() if compression == COMPRESSION_DEFLATE else None
        d.start_epoch("cipher", opener, None,
                      "" if opener else (hs.key_reason or hs.no_key or self._no_key()))

    def observe_change_cipher_spec(self, from_client: bool) -> None:
        hs = self._hs
        if hs is None or hs.version is None or hs.tls13:
            return  # TLS 1.3 middlebox-compatibility CCS carries no meaning
        self._tls12_activate(self._client if from_client else self._server, from_client)

    # -- records -------------------------------------------------------------
    def decrypt(self, from_client: bool, content_type: int, legacy_version: int,
                fragment: bytes, seq: int | None = None, header: bytes | None = None
                ) -> Decrypted | DecryptFailure | None:
        """One record; ``seq`` is its explicit sequence number (DTLS), else records are counted;
        ``header``: a DTLS 1.3 unified header, which names the epoch and the (encrypted) sequence."""
        hs = self._hs
        d = self._client if from_client else self._server
        fragment = bytes(fragment)
        if hs is None:
            return None
        if header is not None:
            return self._dtls13_record(d, bytes(header), fragment) if hs.dtls13 else None
        if not d.encrypted:
            if (from_client and hs.version is None and hs.early_data_offered
                    and content_type == 23):
                return self._early_before_server_hello(d, content_type, legacy_version, fragment)
            return None
        if hs.tls13:
            if content_type != 23:
                return None
            if from_client and d.epoch == "early":
                return self._client_early(d, content_type, legacy_version, fragment)
        if seq is not None:
            d.seq = seq
        result = self._open(d, content_type, legacy_version, fragment)
        if (isinstance(result, DecryptFailure) and hs.tls13 and from_client
                and d.epoch == "handshake" and not d.decrypted_in_epoch and d.opener is not None
                and hs.early_data_offered and hs.early_data_accepted is not True):
            # 0-RTT data the server rejected, sent before the client's handshake flight
            d.seq -= 1
            self._failures -= 1
            return self._skip_early(result.record_number)
        return result

    def _dtls13_record(self, d: _Direction, header: bytes, fragment: bytes) -> Decrypted | DecryptFailure:
        """A DTLS 1.3 protected record: the newest epoch whose low two bits the header carries."""
        bits = header[0] & 0x03
        keys = next((k for n, k in sorted(d.dtls13_keys.items(), reverse=True) if n & 0x03 == bits), None)
        if keys is None:
            d.missed += 1
            d.missed_bytes += len(fragment)
            why = d.missing if d.missing and d.opener is None else f"no keys for an epoch ending in {bits}"
            return self._count(DecryptFailure(why or self._no_key(), -1))
        try:
            seq, inner_type, content = keys.open(header, fragment)
        except RecordAuthError as exc:
            return self._count(DecryptFailure(
                f"authentication failed at {d.name} record in epoch {keys.epoch}: {exc} (wrong key?)", -1))
        d.decrypted_in_epoch = True
        return self._count(Decrypted(inner_type, content, seq))

    def _count(self, result):
        if isinstance(result, Decrypted):
            self._decrypted += 1
        elif isinstance(result, DecryptFailure):
            self._failures += 1
        return result

    def _open(self, d: _Direction, content_type: int, version: int, fragment: bytes
              ) -> Decrypted | DecryptFailure:
        seq = d.seq
        if d.opener is None:
            d.seq += 1
            d.missed += 1
            d.missed_bytes += len(fragment)
            d.last_tail = fragment[-_TAIL:]
            return self._count(DecryptFailure(d.missing or self._no_key(), seq))
        if d.missed and not d.decrypted_in_epoch:
            resynced = self._resync(d, content_type, version, fragment)
            if resynced is not None:
                return self._count(resynced)
        try:
            inner_type, plaintext = self._open_record(d, seq, content_type, version, fragment)
        except RecordAuthError as exc:
            d.seq += 1
            return self._count(DecryptFailure(
                f"authentication failed at {d.name} record {seq}: {exc} (wrong key?)", seq))
        finally:
            d.last_tail = fragment[-_TAIL:]
        d.seq += 1
        d.decrypted_in_epoch = True
        if d.inflater is not None:
            try:
                plaintext = d.inflater.decompress(plaintext, 1 << 24)
            except zlib.error as exc:
                return self._count(DecryptFailure(f"DEFLATE decompression failed at {d.name} "
                                                  f"record {seq}: {exc}", seq))
        return self._count(Decrypted(inner_type, plaintext, seq))

    def _open_record(self, d: _Direction, seq: int, content_type: int, version: int, fragment: bytes
                     ) -> tuple[int, bytes]:
        try:
            return d.opener.open(seq, content_type, version, fragment)
        except RecordAuthError:
            if not (self._dtls and version == DTLS_OPENSSL_PRE):
                raise
        # OpenSSL before 0.9.8f (DTLS version 0x0100) computed the MAC as TLS 1.0 does: the sequence
        # number without the epoch, and version 3.1 (Wireshark tries the same after the RFC form)
        return d.opener.open(seq & _SEQ48, content_type, 0x0301, fragment)

    def _resync(self, d: _Direction, content_type: int, version: int, fragment: bytes
                ) -> Decrypted | None:
        """TLS 1.3 keys that arrived late: the handshake may have moved on unseen (Finished),
        and so may the application keys (KeyUpdates inside records that could not be read)."""
        hs = self._hs
        if not hs.tls13 or d.epoch not in ("handshake", "application") or d.resyncs >= _RESYNC_RECORDS:
            return None
        secret = self._secret(self._TLS13_LABELS[(d is self._client, "application")])
        if secret is None or hs.spec is None:
            return None
        d.resyncs += 1      # bounded: with a wrong key every record would pay for the search
        for _ in range(_RESYNC_KEY_UPDATES + 1):
            opener = self._tls13_opener(hs.spec, hs.hash, secret)
            if opener is None:
                return None
            for seq in range(min(d.missed, _RESYNC_LIMIT) + 1):
                try:
                    inner_type, plaintext = opener.open(seq, content_type, version, fragment)
                except RecordAuthError:
                    continue
                d.start_epoch("application", opener, secret)
                d.seq = seq + 1
                d.decrypted_in_epoch = True
                return Decrypted(inner_type, plaintext, seq)
            secret = tls13.next_traffic_secret(hs.hash, secret)
        return None

    def _skip_early(self, seq: int) -> DecryptFailure:
        self._skipped_early += 1
        return DecryptFailure("0-RTT record skipped: early data not accepted or no "
                              "CLIENT_EARLY_TRAFFIC_SECRET", seq)

    def _early_opener(self, d: _Direction, content_type: int, version: int, fragment: bytes
                      ) -> RecordOpener | None:
        """The client's 0-RTT read state; before ServerHello the suite is found by trial."""
        if d.early_opener is not None:
            return d.early_opener
        secret = self._secret("CLIENT_EARLY_TRAFFIC_SECRET")
        if secret is None:
            return None
        hs = self._hs
        candidates = [hs.suite] if hs.suite is not None else list(hs.client_hello.cipher_suites)
        for code in candidates:
            info = _suite_info(code)
            if (info is None or not info.tls13 or info.prf_hash not in tls13.HASHES
                    or tls13.hash_len(info.prf_hash) != len(secret)):
                continue
            spec = cipher_spec(info.cipher)
            opener = self._tls13_opener(spec, info.prf_hash, secret)
            if opener is None:
                continue
            try:
                opener.open(d.early_seq, content_type, version, fragment)
            except RecordAuthError:
                continue
            self._labels.add("CLIENT_EARLY_TRAFFIC_SECRET")
            self._method = self._method or "keylog"
            d.early_opener = opener
            return opener
        return None

    def _early_before_server_hello(self, d, content_type, version, fragment):
        opener = self._early_opener(d, content_type, version, fragment)
        if opener is None:
            return self._skip_early(d.early_seq)
        result = self._open_early(d, opener, content_type, version, fragment)
        if result is None:
            seq = d.early_seq
            d.early_seq += 1
            return self._count(DecryptFailure(
                f"authentication failed at client 0-RTT record {seq} (wrong key?)", seq))
        return result

    def _open_early(self, d, opener, content_type, version, fragment) -> Decrypted | None:
        seq = d.early_seq
        try:
            inner_type, plaintext = opener.open(seq, content_type, version, fragment)
        except RecordAuthError:
            return None
        d.early_seq += 1
        return self._count(Decrypted(inner_type, plaintext, seq))

    def _client_early(self, d: _Direction, content_type: int, version: int, fragment: bytes):
        hs = self._hs
        opener = self._early_opener(d, content_type, version, fragment)
        if opener is not None:
            result = self._open_early(d, opener, content_type, version, fragment)
            if result is not None:
                return result
        # not (or no longer) early data: the client's handshake flight may have begun
        label = self._TLS13_LABELS[(True, "handshake")]
        secret = self._secret(label)
        if secret is not None and hs.spec is not None and not hs.key_reason:
            hs_opener = self._tls13_opener(hs.spec, hs.hash, secret)
            try:
                inner_type, plaintext = hs_opener.open(0, content_type, version, fragment)
            except RecordAuthError:
                pass
            else:
                self._labels.add(label)
                d.start_epoch("handshake", hs_opener, secret)
                d.seq = 1
                d.decrypted_in_epoch = True
                return self._count(Decrypted(inner_type, plaintext, 0))
        if opener is not None and hs.early_data_accepted:
            return self._count(DecryptFailure(
                f"authentication failed at client 0-RTT record {d.early_seq}: wrong key?", d.early_seq))
        return self._skip_early(d.early_seq)

    # -- report --------------------------------------------------------------
    def status(self) -> dict:
        hs = self._active or self._hs
        labels = set(self._labels)
        if hs is not None:
            labels.update(self._secrets())
        return {
            "keys_found": sorted(labels),
            "used": self._decrypted > 0,
            "method": self._method,
            "version": hs.version if hs else None,
            "cipher_suite": hs.suite if hs else None,
            "records_decrypted": self._decrypted,
            "failures": self._failures,
            "early_data_skipped": self._skipped_early,
            "finished_verified": dict(self.finished_verified),
            "problems": list(self.problems),
        }


def _tls_framed(message: bytes) -> bytes:
    """A DTLS-framed handshake message (12-byte header, unfragmented) with the TLS 4-byte header
    instead; anything else unchanged."""
    if len(message) >= 12 and message[6:9] == b"\0\0\0" and message[9:12] == message[1:4]:
        return message[:4] + message[12:]
    return message


def _tls_framed_all(transcript: bytes) -> bytes:
    """Every message of a DTLS-framed transcript reframed (see _tls_framed)."""
    out = bytearray()
    i, n = 0, len(transcript)
    while i + 12 <= n:
        end = i + 12 + int.from_bytes(transcript[i + 1:i + 4], "big")
        out += _tls_framed(transcript[i:end])
        i = end
    out += transcript[i:]
    return bytes(out)
