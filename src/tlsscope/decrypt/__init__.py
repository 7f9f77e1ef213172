"""TLS decryption engine (sans-I/O): key logs, RSA premaster recovery, the
SSL 3.0 - TLS 1.3 key schedules and record protection.

The connection state machine drives one :class:`ConnectionDecryptor` per
connection, in wire order::

    dec = ConnectionDecryptor(keylog, rsa_keys)
    dec.observe_handshake(from_client, message)      # every handshake message, 4-byte header included
    dec.observe_change_cipher_spec(from_client)      # TLS <= 1.2 (ignored in TLS 1.3)
    result = dec.decrypt(from_client, content_type, legacy_version, fragment)
    # None: not protected (yet); Decrypted: open it; DecryptFailure: say why

Decrypted handshake messages go back in through ``observe_handshake``: that is
how TLS 1.3 key changes (Finished, EndOfEarlyData, KeyUpdate) are seen.  In
TLS <= 1.2 a ChangeCipherSpec arriving in an already protected direction
(renegotiation) is itself a protected record: decrypt it first.
"""

from .keylog import KeyLog
from .rsa import RsaKeys
from .session import ConnectionDecryptor, DecryptFailure, Decrypted

__all__ = ["KeyLog", "RsaKeys", "ConnectionDecryptor", "Decrypted", "DecryptFailure"]
