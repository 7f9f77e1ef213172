"""The TLS 1.3 engine against RFC 8448 ("Example Handshake Traces for TLS 1.3").

The RFC publishes private keys, wire bytes and every intermediate secret.
These tests run the key schedule from the published (EC)DHE inputs, check the
published intermediate values, turn the traffic secrets into a key log (what a
client would have written) and feed the wire records through
``ConnectionDecryptor``: the records must open and both Finished must verify.
Hex below is transcribed from RFC 8448 §3 (1-RTT), §4 (resumed 0-RTT),
§5 (HelloRetryRequest) and §7 (middlebox compatibility).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from tlsscope.decrypt import ConnectionDecryptor, Decrypted, DecryptFailure, KeyLog
from tlsscope.decrypt import tls13

H = bytes.fromhex


# --- §3 Simple 1-RTT handshake -------------------------------------------------
S3_CLIENT_PRIVATE = H("49af42ba7f7994852d713ef2784bcbcaa7911de26adc5642cb634540e7ea5005")
S3_CLIENT_HELLO = H(
    "010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7000006130113031302"
    "010000910000000b0009000006736572766572ff01000100000a00140012001d0017001800190100010101020103"
    "010400230000003300260024001d002099381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529a"
    "af2c002b0003020304000d0020001e040305030603020308040805080604010501060102010402050206020202002d"
    "00020101001c00024001")
S3_SERVER_HELLO = H(
    "020000560303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e2692800130100002e003300"
    "24001d0020c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f002b00020304")
S3_SERVER_FLIGHT = H(
    "17030302a2d1ff334a56f5bff6594a07cc87b580233f500f45e489e7f33af35edf7869fcf40aa40aa2b8ea73f848a7ca"
    "07612ef9f945cb960b4068905123ea78b111b429ba9191cd05d2a389280f526134aadc7fc78c4b729df828b5ecf7b13b"
    "d9aefb0e57f271585b8ea9bb355c7c79020716cfb9b1183ef3ab20e37d57a6b9d7477609aee6e122a4cf51427325250c"
    "7d0e509289444c9b3a648f1d71035d2ed65b0e3cdd0cbae8bf2d0b227812cbb360987255cc744110c453baa4fcd61092"
    "8d809810e4b7ed1a8fd991f06aa6248204797e36a6a73b70a2559c09ead686945ba246ab66e5edd8044b4c6de3fcf2a8"
    "9441ac66272fd8fb330ef8190579b3684596c960bd596eea520a56a8d650f563aad27409960dca63d3e688611ea5e22f"
    "4415cf9538d51a200c27034272968a264ed6540c84838d89f72c24461aad6d26f59ecaba9acbbb317b66d902f4f292a3"
    "6ac1b639c637ce343117b659622245317b49eeda0c6258f100d7d961ffb138647e92ea330faeea6dfa31c7a84dc3bd7e"
    "1b7a6c7178af36879018e3f252107f243d243dc7339d5684c8b0378bf30244da8c87c843f5e56eb4c5e8280a2b48052c"
    "f93b16499a66db7cca71e4599426f7d461e66f99882bd89fc50800becca62d6c74116dbd2972fda1fa80f85df881edbe"
    "5a37668936b335583b599186dc5c6918a396fa48a181d6b6fa4f9d62d513afbb992f2b992f67f8afe67f76913fa388cb"
    "5630c8ca01e0c65d11c66a1e2ac4c85977b7c7a6999bbf10dc35ae69f5515614636c0b9b68c19ed2e31c0b3b66763038"
    "ebba42f3b38edc0399f3a9f23faa63978c317fc9fa66a73f60f0504de93b5b845e275592c12335ee340bbc4fddd50278"
    "4016e4b3be7ef04dda49f4b440a30cb5d2af939828fd4ae3794e44f94df5a631ede42c1719bfdabf0253fe5175be898e"
    "750edc53370d2b")
S3_ENCRYPTED_EXTENSIONS = H("080000240022000a00140012001d00170018001901000101010201030104001c0002400100000000")
S3_SERVER_FINISHED = H("140000209b9b141d906337fbd2cbdce71df4deda4ab42c309572cb7fffee5454b78f0718")
S3_CLIENT_FINISHED = H("14000020a8ec436d677634ae525ac1fcebe11a039ec17694fac6e98527b642f2edd5ce61")
S3_CLIENT_FINISHED_RECORD = H(
    "170303003575ec4dc238cce60b298044a71e219c56cc77b0517fe9b93c7a4bfc44d87f38f80338ac98fc46deb384bd1c"
    "aeacab6867d726c40546")
S3_NEW_SESSION_TICKET_RECORD = H(
    "17030300de3a6b8f90414a97d6959c3487680de5134a2b240e6cffac116e95d41d6af8f6b580dcf3d11d63c758db289a"
    "015940252f55713e061dc13e078891a38efbcf5753ad8ef170ad3c7353d16d9da773b9ca7f2b9fa1b6c0d4a3d03f75e0"
    "9c30ba1e62972ac46f75f7b981be63439b2999ce13064615139891d5e4c5b406f16e3fc181a77ca475840025db2f0a77"
    "f81b5ab05b94c01346755f69232c86519d86cbeeac87aac347d143f9605d64f650db4d023e70e952ca49fe5137121c74"
    "bc2697687e248746d6df353005f3bce18696129c8153556b3b6c6779b37bf15985684f")
S3_CLIENT_APP_RECORD = H(
    "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b46b395bd54a9a20441e2b"
    "62974e1f5a6292a2977014bd1e3deae63aeebb21694915e4")
S3_SERVER_APP_RECORD = H(
    "17030300432e937e11ef4ac740e538ad36005fc4a46932fc3225d05f82aa1b36e30efaf97d90e6dffc602dcb501a59a8"
    "fcc49c4bf2e5f0a21c0047c2abf332540dd032e167c2955d")
S3_CLIENT_CLOSE = H("1703030013c9872760655666b74d7ff1153efd6db6d0b0e3")
S3_SERVER_CLOSE = H("1703030013b58fd67166ebf599d24720cfbe7efa7a8864a9")
APP_DATA = bytes(range(0x32))

# --- §4 Resumed 0-RTT handshake ------------------------------------------------
S4_CLIENT_PRIVATE = H("bff91188283846dd6a2134ef7180ca2b0b14fb10dce707b5098c0dddc813b2df")
S4_CLIENT_HELLO = H(
    "010001fc03031bc3ceb6bbe39cff938355b5a50adb6db21b7a6af649d7b4bc419d7876487d95000006130113031302"
    "010001cd0000000b0009000006736572766572ff01000100000a00140012001d001700180019010001010102010301"
    "04003300260024001d0020e4ffb68ac05f8d96c99da26698346c6be16482badddafe051a66b4f18d668f0b002a0000"
    "002b0003020304000d0020001e040305030603020308040805080604010501060102010402050206020202002d0002"
    "0101001c00024001" "00150057" + "00" * 0x57 +  # padding extension
    "002900dd00b800b22c035d829359ee5ff7af4ec900000000262a6494dc486d2c8a34cb33fa90bf1b0070ad3c"
    "498883c9367c09a2be785abc55cd226097a3a982117283f82a03a143efd3ff5dd36d64e861be7fd61d2827db279cce14"
    "5077d454a3664d4e6da4d29ee03725a6a4dafcd0fc67d2aea70529513e3da2677fa5906c5b3f7d8f92f228bda40dda72"
    "1470f9fbf297b5aea617646fac5c03272e970727c621a79141ef5f7de6505e5bfbc388e93343694093934ae4d357fad6"
    "aacb0021203add4fb2d8fdf822a0ca3cf7678ef5e88dae990141c5924d57bb6fa31b9e5f9d")
S4_EARLY_DATA_RECORD = H("1703030017ab1df420e75c457a7cc5d2844f76d5aee4b4edbf049be0")
S4_SERVER_HELLO = H(
    "0200005c03033ccfd2dec890222763472ae8136777c9d7358777bb66e91ea5122495f559ea2d00130100003400290002"
    "000000330024001d0020121761ee42c333e1b9e77b60dd57c2053cd94512ab47f115e86eff50942cea31002b00020304")
S4_SERVER_FLIGHT = H(
    "1703030061dc48237b4b879f50d0d4d262ea8b4716eb40ddc1eb957e11126e8a7149c2d012d37a7115957e64ce30008b"
    "9e0323f2c05a9c1c77b4f37849a695ab255060a33fee770ca95cb8486bfd0843b87024865ca35cc41c4e515c64dcb136"
    "9f98635bc7a5")
S4_CLIENT_FLIGHT = H(  # EndOfEarlyData record, then the Finished record
    "1703030015aca6fc944841298df99593725f9bf9754429b12f09170303003500f8b467d14cf22a4b3f0b6ae0d8e6cc8d"
    "08e0db3515ef5c2bdf1922eafbb70009964716d834fb70c3d2a56c5b1f5f6bdba6c333cf")
S4_CLIENT_APP_RECORD = H(
    "1703030043b1cebce242aa201be9ae5e1cb2a9aa4b33d4e866af1edb068919237741aa031d7a74d491c99b9d4e232b74"
    "206bc6fbaa04fe78be44a9b4f54320a17eb76992afac3103")
S4_SERVER_APP_RECORD = H(
    "1703030043275e9f20acff57bc000657d3867df039cccf79047884cf75771746f740b5a83f462a0954c3581393a203a2"
    "5a7dd14141ef1a37900cdb62ff62dee1ba39ab2590cbf194")
S4_PSK = H("4ecd0eb6ec3b4d87f5d6028f922ca4c5851a277fd41311c9e62d2c9492e1c4f3")

# --- §5 HelloRetryRequest ------------------------------------------------------
S5_CLIENT_P256_PRIVATE = H("ab5473467e19346ceb0a0414e41da21d4d2445bc3025afe97c4e8dc8d513da39")
S5_CLIENT_HELLO_1 = H(
    "010000b00303b0b1c5a5aa37c5919f2ed1d5c6fff7fcb7849716945a2b8cee9258a346677b6f0000061301130313020100"
    "00810000000b0009000006736572766572ff01000100000a00080006001d00170018003300260024001d0020e8e8e3f3"
    "b93a25ed97a14a7dcacb8a272c6288e585c6484d05262fcad062ad1f002b0003020304000d0020001e04030503060302"
    "0308040805080604010501060102010402050206020202002d00020101001c00024001")
S5_HELLO_RETRY_REQUEST = H(
    "020000ac0303cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c00130100008400330002"
    "0017002c0074007271dcd04bb88bc3189119398a00000000eefafc76c146b823b096f8aacad365dd0030953f4edf6256"
    "36e5f21bb2e23fcc654b1b5b40318d10d137abcbb87574e36e8a1f025f7dfa5d6e50781b5eda4aa15b0c8be778257d16"
    "aa3030e9e7841dd9e4c0342267e8ca0caf571fb2b7cff0f934b0002b00020304")
S5_CLIENT_HELLO_2 = H(
    "010001fc0303b0b1c5a5aa37c5919f2ed1d5c6fff7fcb7849716945a2b8cee9258a346677b6f00000613011303130201"
    "0001cd0000000b0009000006736572766572ff01000100000a00080006001d001700180033004700450017004104a6da"
    "7392ec591e17abfd535964b99894d13befb221b3def2ebe3830eac8f0151812677c4d6d2237e85cf01d6910cfb83954e"
    "76ba7352830534159897e8065780002b0003020304000d0020001e0403050306030203080408050806040105010601020"
    "10402050206020202002c0074007271dcd04bb88bc3189119398a00000000eefafc76c146b823b096f8aacad365dd0030"
    "953f4edf625636e5f21bb2e23fcc654b1b5b40318d10d137abcbb87574e36e8a1f025f7dfa5d6e50781b5eda4aa15b0c"
    "8be778257d16aa3030e9e7841dd9e4c0342267e8ca0caf571fb2b7cff0f934b0002d00020101001c00024001001500af"
    + "00" * 175)
S5_SERVER_HELLO = H(
    "020000770303bb341d847fd789c47c387172dc0c9bf147fccacb5043d86ca4c598d3ff571b9800130100004f0033004500"
    "17004104583e054b7a66672ae020ad9d2686fcc85b5ad41a134a0f03ee72b893052bd85b4c8de6776f5b04ac07d83540"
    "eab3e3d9c547bc6528c4317d294686093a6cad7d002b00020304")
S5_SERVER_FLIGHT = H(
    "170303029699bee20baf5b7fc727bfab6223928a381e6d0cf9c4da653f9d2a7b23f7de11cce842d5cf75631763450ffb"
    "8b0cc1d238e658af7a12adc86243114ab14a1da2fae42621ce483fb6242eabfaad52566b02b31d2eddedefeb80e66a99"
    "00d5f973b40c4fdf74719ecf1b68d7f9c3b6ceb903ca13dd1bb8f8187ae33417e1d152522c5822a1a03ad52c838c5595"
    "3d610222874cce8e1790b229a2aa0b53c8d377ee720182951dc6181dc5d90bd1f0105ed1e84aa5f75957c6661897079e"
    "5ea5007449e3197bdc7c9beeedddeafdd844afa5c315ecfe65e576afe909812880620ec7048b42d7f5c78d76f299d6d8"
    "2534bdd8f512febc0ed3814aca470cd8000d3e1cb9962b052fbb950df683a52c2ba77ed3713b122937a6e5170964e2ab"
    "7969dcd980b3db9b458da7603124d6dc005e4d6e04b4d0c4baf3275db827dbba0a6db09672171fc057b3851d7e026841"
    "e2978fbd2346bbefdd0376bb1108fe9acc92189f5650aa5e85d8e8c7b67ac510dba003d3d7e16350bb66d45013efd44c"
    "9b607c0d318c4c7d1a1f5cbc57e20611804e3787d7b4a4b5f08ed8fd70bdaeade02260b12ab842ef690b4a3ee7911e84"
    "1b374ecd5ebbbc2a54d047b600336dd7d0c88b4bc10e58ee6cb656de7247fa20d8e91deb84628608cf80615b62e96c14"
    "91c7ac3755eb6901405d3474fe1ac79d106a0cee56c2577fc88480f96cb6b8c681b7b68b53c146093908f350888175bd"
    "fb0b1e31ad61e30ba0adfe6d223aa03c0783b5001a57587c328a9afcfcfb978d1cd4328f7d9d60530e630befd96c0c81"
    "6ee20b0100768ae2a6df51fc68f172740a79af11398ee3be1252491fa9c693479e877f94ab7c5f8cad480203e6ab7b87"
    "dd71e8a0729113df17f5eee86ce108d1d72007ec1cd13c85a6c149621e77b7d78d805a30f0be030c315e54")
S5_CLIENT_FINISHED_RECORD = H(
    "1703030035d74f1923c662fd34137c6f502f3dd2b93d951d1b3bc97e42afe23c31abea92fe91b474999e85e3b791ce25"
    "2fe8c3e9f939a4120cb2")

# --- §7 Middlebox compatibility mode ------------------------------------------
S7_CLIENT_PRIVATE = H("dea00b45695dc781f19d34a62c1afd31ab4369af1e855a3bbb258d8442cde6d7")
S7_CLIENT_HELLO = H(
    "010000dc03034e640a3f2c2738f09c9418bd78edccd7559d0531199276d4d92a0e9ee9d77d0920a80c165581a8e0d06c"
    "0018d54d3a06dd32cfd4051eb026fad3fd0ba99269e6ef00061301130313020100008d0000000b000900000673657276"
    "6572ff01000100000a00140012001d00170018001901000101010201030104003300260024001d00208e7292cf3056db"
    "b0d25fcbe55c107dc9bbf83dd9708f39203ba341249a7d9b63002b0003020304000d0020001e04030503060302030804"
    "0805080604010501060102010402050206020202002d00020101001c00024001")
S7_SERVER_HELLO = H(
    "020000760303e5dd5948c435f7a38f0f0130708dc322d9df09abd4838117c183a7bb6d994f2c20a80c165581a8e0d06c"
    "0018d54d3a06dd32cfd4051eb026fad3fd0ba99269e6ef130100002e00330024001d00203e30f0f4ba551afd62768341"
    "175f5265e4daf0c8841617aa4fafdd2142320c22002b00020304")
S7_CLIENT_FLIGHT = H(  # a ChangeCipherSpec record, then the Finished record
    "140303000101170303003532d030e273773a8696c799981af6ced07f87482e81565e394e87c867f33df3d65b7506f1a6"
    "26af91d4821d5f7a1f210ef8dd3c6d16")
S7_CLIENT_CLOSE = H("17030300130f629155382dba23c4e2c5f7f84e6f2ed3083d")
S7_SERVER_CLOSE = H("1703030013b7257b0fecaf69d4f09e3f891e2a25d1e28845")


# --- helpers -------------------------------------------------------------------
def records(blob: bytes) -> list[tuple[int, int, bytes]]:
    out = []
    while blob:
        n = int.from_bytes(blob[3:5], "big")
        out.append((blob[0], int.from_bytes(blob[1:3], "big"), blob[5:5 + n]))
        blob = blob[5 + n:]
    return out


def messages(data: bytes) -> list[bytes]:
    out = []
    while data:
        n = 4 + int.from_bytes(data[1:4], "big")
        out.append(data[:n])
        data = data[n:]
    return out


def open_records(dec: ConnectionDecryptor, from_client: bool, blob: bytes) -> list[Decrypted]:
    """What the connection state machine does: open each record, feed handshake back."""
    out = []
    for content_type, version, fragment in records(blob):
        if content_type == 20:
            dec.observe_change_cipher_spec(from_client)
            continue
        result = dec.decrypt(from_client, content_type, version, fragment)
        assert isinstance(result, Decrypted), result
        out.append(result)
        if result.content_type == 22:
            for msg in messages(result.plaintext):
                dec.observe_handshake(from_client, msg)
    return out


def th(*msgs: bytes) -> bytes:
    return tls13.hash_bytes("sha256", b"".join(msgs))


def keylog_text(client_random: bytes, secrets: dict[str, bytes]) -> KeyLog:
    return KeyLog.from_bytes("".join(f"{label} {client_random.hex()} {s.hex()}\n"
                                     for label, s in secrets.items()).encode())


def x25519(private: bytes, peer_public: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).exchange(
        X25519PublicKey.from_public_bytes(peer_public))


def schedule(ecdhe: bytes, hello_hash: bytes, psk: bytes | None = None) -> dict[str, bytes]:
    early = tls13.early_secret("sha256", psk)
    hs = tls13.handshake_secret("sha256", early, ecdhe)
    return {"early": early, "handshake": hs,
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET": tls13.derive_secret("sha256", hs, "c hs traffic", hello_hash),
            "SERVER_HANDSHAKE_TRAFFIC_SECRET": tls13.derive_secret("sha256", hs, "s hs traffic", hello_hash),
            "master": tls13.master_secret("sha256", hs)}


def app_secrets(master: bytes, server_finished_hash: bytes) -> dict[str, bytes]:
    return {"CLIENT_TRAFFIC_SECRET_0": tls13.derive_secret("sha256", master, "c ap traffic", server_finished_hash),
            "SERVER_TRAFFIC_SECRET_0": tls13.derive_secret("sha256", master, "s ap traffic", server_finished_hash)}


def s3_secrets() -> dict[str, bytes]:
    ecdhe = x25519(S3_CLIENT_PRIVATE, S3_SERVER_HELLO[-38:-6])
    sched = schedule(ecdhe, th(S3_CLIENT_HELLO, S3_SERVER_HELLO))
    flight = messages(S3_SERVER_FLIGHT_PLAIN())
    sched.update(app_secrets(sched["master"], th(S3_CLIENT_HELLO, S3_SERVER_HELLO, *flight)))
    return sched


def S3_SERVER_FLIGHT_PLAIN() -> bytes:
    ecdhe = x25519(S3_CLIENT_PRIVATE, S3_SERVER_HELLO[-38:-6])
    sched = schedule(ecdhe, th(S3_CLIENT_HELLO, S3_SERVER_HELLO))
    key, iv = tls13.traffic_key_iv("sha256", sched["SERVER_HANDSHAKE_TRAFFIC_SECRET"], 16)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    inner = AESGCM(key).decrypt(iv, S3_SERVER_FLIGHT[5:], S3_SERVER_FLIGHT[:5])
    return inner[:-1]


TLS13_LABELS = ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "CLIENT_EARLY_TRAFFIC_SECRET")


def only_labels(secrets: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in secrets.items() if k in TLS13_LABELS}


# --- tests ---------------------------------------------------------------------
def test_hkdf_expand_label_encoding_matches_rfc8448():
    # "key info (13 octets): 00 10 09 74 6c 73 31 33 20 6b 65 79 00" -> the info string
    secret = H("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
    assert tls13.hkdf_expand_label("sha256", secret, "key", b"", 16) == H("3fce516009c21727d0f2e4e86ee403bc")
    assert tls13.hkdf_expand_label("sha256", secret, "iv", b"", 12) == H("5d313eb2671276ee13000b30")


def test_key_schedule_published_values():
    ecdhe = x25519(S3_CLIENT_PRIVATE, S3_SERVER_HELLO[-38:-6])
    assert ecdhe == H("8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d")
    hello_hash = th(S3_CLIENT_HELLO, S3_SERVER_HELLO)
    assert hello_hash == H("860c06edc07858ee8e78f0e7428c58edd6b43f2ca3e6e95f02ed063cf0e1cad8")
    s = schedule(ecdhe, hello_hash)
    assert s["early"] == H("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a")
    assert s["handshake"] == H("1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac")
    assert s["CLIENT_HANDSHAKE_TRAFFIC_SECRET"] == H(
        "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21")
    assert s["SERVER_HANDSHAKE_TRAFFIC_SECRET"] == H(
        "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
    assert s["master"] == H("18df06843d13a08bf2a449844c5f8a478001bc4d4c627984d5a41da8d0402919")
    assert tls13.traffic_key_iv("sha256", s["CLIENT_HANDSHAKE_TRAFFIC_SECRET"], 16) == (
        H("dbfaa693d1762c5b666af5d950258d01"), H("5bd3c71b836e0b76bb73265f"))
    assert tls13.finished_key("sha256", s["SERVER_HANDSHAKE_TRAFFIC_SECRET"]) == H(
        "008d3b66f816ea559f96b537e885c31fc068bf492c652f01f288a1d8cdc19fc8")
    full = s3_secrets()
    assert tls13.traffic_key_iv("sha256", full["SERVER_TRAFFIC_SECRET_0"], 16) == (
        H("9f02283b6c9c07efc26bb9f2ac92e356"), H("cf782b88dd83549aadf1e984"))
    assert tls13.traffic_key_iv("sha256", full["CLIENT_TRAFFIC_SECRET_0"], 16) == (
        H("17422dda596ed5d9acd890e3c63f5051"), H("5b78923dee08579033e523d9"))


def test_simple_1rtt_handshake_end_to_end():
    secrets = s3_secrets()
    client_random = S3_CLIENT_HELLO[6:38]
    dec = ConnectionDecryptor(keylog_text(client_random, only_labels(secrets)))
    assert dec.decrypt(False, 23, 0x0303, S3_SERVER_FLIGHT[5:]) is None  # nothing known yet
    dec.observe_handshake(True, S3_CLIENT_HELLO)
    dec.observe_handshake(False, S3_SERVER_HELLO)

    (flight,) = open_records(dec, False, S3_SERVER_FLIGHT)
    assert flight.content_type == 22 and flight.record_number == 0
    msgs = messages(flight.plaintext)
    assert [m[0] for m in msgs] == [8, 11, 15, 20]
    assert msgs[0] == S3_ENCRYPTED_EXTENSIONS and msgs[3] == S3_SERVER_FINISHED
    assert dec.finished_verified == {"client": None, "server": True}

    (fin,) = open_records(dec, True, S3_CLIENT_FINISHED_RECORD)
    assert fin.plaintext == S3_CLIENT_FINISHED
    assert dec.finished_verified == {"client": True, "server": True}

    (ticket,) = open_records(dec, False, S3_NEW_SESSION_TICKET_RECORD)
    assert ticket.content_type == 22 and ticket.plaintext[0] == 4 and ticket.record_number == 0
    (c_app,) = open_records(dec, True, S3_CLIENT_APP_RECORD)
    assert (c_app.content_type, c_app.plaintext, c_app.record_number) == (23, APP_DATA, 0)
    (s_app,) = open_records(dec, False, S3_SERVER_APP_RECORD)
    assert (s_app.content_type, s_app.plaintext, s_app.record_number) == (23, APP_DATA, 1)
    (c_close,) = open_records(dec, True, S3_CLIENT_CLOSE)
    (s_close,) = open_records(dec, False, S3_SERVER_CLOSE)
    assert (c_close.content_type, c_close.plaintext) == (21, b"\x01\x00")
    assert (s_close.content_type, s_close.plaintext) == (21, b"\x01\x00")

    st = dec.status()
    assert st["used"] and st["method"] == "keylog"
    assert st["version"] == 0x0304 and st["cipher_suite"] == 0x1301
    assert st["records_decrypted"] == 7 and st["failures"] == 0
    assert set(st["keys_found"]) >= {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0"}


def test_wrong_server_finished_is_reported():
    secrets = s3_secrets()
    dec = ConnectionDecryptor(keylog_text(S3_CLIENT_HELLO[6:38], only_labels(secrets)))
    dec.observe_handshake(True, S3_CLIENT_HELLO)
    dec.observe_handshake(False, S3_SERVER_HELLO)
    flight = dec.decrypt(False, 23, 0x0303, S3_SERVER_FLIGHT[5:])
    msgs = messages(flight.plaintext)
    for m in msgs[:3]:
        dec.observe_handshake(False, m)
    dec.observe_handshake(False, msgs[3][:-1] + bytes([msgs[3][-1] ^ 1]))
    assert dec.finished_verified["server"] is False


def test_key_schedule_resumption_psk_from_first_connection():
    """RFC 8448 §3 -> §4: resumption_master_secret and the ticket's PSK (nonce 00 00)."""
    s = s3_secrets()
    flight = messages(S3_SERVER_FLIGHT_PLAIN())
    res_master = tls13.derive_secret("sha256", s["master"], "res master",
                                     th(S3_CLIENT_HELLO, S3_SERVER_HELLO, *flight, S3_CLIENT_FINISHED))
    assert res_master == H("7df235f2031d2a051287d02b0241b0bfdaf86cc856231f2d5aba46c434ec196c")
    assert tls13.hkdf_expand_label("sha256", res_master, "resumption", b"\x00\x00", 32) == S4_PSK


def s4_secrets() -> dict[str, bytes]:
    early = tls13.early_secret("sha256", S4_PSK)
    secrets = {"CLIENT_EARLY_TRAFFIC_SECRET": tls13.derive_secret("sha256", early, "c e traffic",
                                                                  th(S4_CLIENT_HELLO))}
    ecdhe = x25519(S4_CLIENT_PRIVATE, S4_SERVER_HELLO[-38:-6])
    sched = schedule(ecdhe, th(S4_CLIENT_HELLO, S4_SERVER_HELLO), psk=S4_PSK)
    secrets.update(sched)
    key, iv = tls13.traffic_key_iv("sha256", sched["SERVER_HANDSHAKE_TRAFFIC_SECRET"], 16)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    flight = messages(AESGCM(key).decrypt(iv, S4_SERVER_FLIGHT[5:], S4_SERVER_FLIGHT[:5])[:-1])
    secrets.update(app_secrets(sched["master"], th(S4_CLIENT_HELLO, S4_SERVER_HELLO, *flight)))
    return secrets


def test_resumed_0rtt_handshake_end_to_end():
    secrets = s4_secrets()
    assert secrets["CLIENT_EARLY_TRAFFIC_SECRET"] == H(
        "3fbbe6a60deb66c30a32795aba0eff7eaa10105586e7be5c09678d63b6caab62")
    dec = ConnectionDecryptor(keylog_text(S4_CLIENT_HELLO[6:38], only_labels(secrets)))
    dec.observe_handshake(True, S4_CLIENT_HELLO)
    # 0-RTT data arrives before the ServerHello; the suite is found by trial
    (early,) = open_records(dec, True, S4_EARLY_DATA_RECORD)
    assert (early.content_type, early.plaintext, early.record_number) == (23, b"ABCDEF", 0)
    dec.observe_handshake(False, S4_SERVER_HELLO)
    (flight,) = open_records(dec, False, S4_SERVER_FLIGHT)
    assert [m[0] for m in messages(flight.plaintext)] == [8, 20]
    assert dec.finished_verified["server"] is True
    eoed, fin = open_records(dec, True, S4_CLIENT_FLIGHT)
    assert (eoed.content_type, eoed.plaintext, eoed.record_number) == (22, b"\x05\x00\x00\x00", 1)
    assert fin.plaintext[0] == 20 and fin.record_number == 0
    assert dec.finished_verified == {"client": True, "server": True}
    (c_app,) = open_records(dec, True, S4_CLIENT_APP_RECORD)
    (s_app,) = open_records(dec, False, S4_SERVER_APP_RECORD)
    assert c_app.plaintext == APP_DATA and s_app.plaintext == APP_DATA
    assert "CLIENT_EARLY_TRAFFIC_SECRET" in dec.status()["keys_found"]


def test_rejected_0rtt_records_are_skipped_without_early_secret():
    """Without the early secret the 0-RTT record is skipped, and the client's
    handshake-key flight still decrypts at sequence number 0."""
    secrets = s4_secrets()
    del secrets["CLIENT_EARLY_TRAFFIC_SECRET"]
    dec = ConnectionDecryptor(keylog_text(S4_CLIENT_HELLO[6:38], only_labels(secrets)))
    dec.observe_handshake(True, S4_CLIENT_HELLO)
    dec.observe_handshake(False, S4_SERVER_HELLO)
    open_records(dec, False, S4_SERVER_FLIGHT)
    skipped = dec.decrypt(True, 23, 0x0303, S4_EARLY_DATA_RECORD[5:])
    assert isinstance(skipped, DecryptFailure) and "0-RTT" in skipped.reason
    # EndOfEarlyData is under the early key too: skipped; Finished opens with handshake keys
    eoed_rec, fin_rec = records(S4_CLIENT_FLIGHT)
    assert isinstance(dec.decrypt(True, *eoed_rec), DecryptFailure)
    fin = dec.decrypt(True, *fin_rec)
    assert isinstance(fin, Decrypted) and fin.record_number == 0 and fin.plaintext[0] == 20
    st = dec.status()
    assert st["early_data_skipped"] == 2 and st["failures"] == 0


def test_hello_retry_request_transcript():
    client_key = ec.derive_private_key(int.from_bytes(S5_CLIENT_P256_PRIVATE, "big"), ec.SECP256R1())
    server_public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), S5_SERVER_HELLO[-71:-6])
    ecdhe = client_key.exchange(ec.ECDH(), server_public)
    transcript = (tls13.message_hash("sha256", S5_CLIENT_HELLO_1) + S5_HELLO_RETRY_REQUEST
                  + S5_CLIENT_HELLO_2 + S5_SERVER_HELLO)
    sched = schedule(ecdhe, th(transcript))
    dec = ConnectionDecryptor(keylog_text(S5_CLIENT_HELLO_1[6:38], only_labels(sched)))
    dec.observe_handshake(True, S5_CLIENT_HELLO_1)
    dec.observe_handshake(False, S5_HELLO_RETRY_REQUEST)
    assert dec.decrypt(False, 23, 0x0303, S5_SERVER_FLIGHT[5:]) is None  # HRR: no keys yet
    dec.observe_handshake(True, S5_CLIENT_HELLO_2)
    dec.observe_handshake(False, S5_SERVER_HELLO)
    open_records(dec, False, S5_SERVER_FLIGHT)
    assert dec.finished_verified["server"] is True       # proves the message_hash transcript
    (fin,) = open_records(dec, True, S5_CLIENT_FINISHED_RECORD)
    assert dec.finished_verified["client"] is True


def test_middlebox_compatibility_ccs_is_ignored():
    ecdhe = x25519(S7_CLIENT_PRIVATE, S7_SERVER_HELLO[-38:-6])
    sched = schedule(ecdhe, th(S7_CLIENT_HELLO, S7_SERVER_HELLO))
    dec = ConnectionDecryptor(keylog_text(S7_CLIENT_HELLO[6:38], only_labels(sched)))
    dec.observe_handshake(True, S7_CLIENT_HELLO)
    dec.observe_change_cipher_spec(True)   # the client's CCS right after its hello
    dec.observe_handshake(False, S7_SERVER_HELLO)
    dec.observe_change_cipher_spec(False)
    (fin,) = open_records(dec, True, S7_CLIENT_FLIGHT)
    assert fin.record_number == 0 and fin.plaintext[0] == 20


def test_missing_keys_then_add_keys():
    secrets = s3_secrets()
    dec = ConnectionDecryptor(KeyLog())
    dec.observe_handshake(True, S3_CLIENT_HELLO)
    dec.observe_handshake(False, S3_SERVER_HELLO)
    miss = dec.decrypt(False, 23, 0x0303, S3_SERVER_FLIGHT[5:])
    assert isinstance(miss, DecryptFailure)
    assert miss.reason.startswith("no key for client random cb34ecb1e78163ba")
    assert dec.status()["failures"] == 1 and not dec.status()["used"]
    # the keys arrive later (a DSB after the packets): records after that open,
    # including the application epoch the engine never saw begin
    dec.add_keys(keylog_text(S3_CLIENT_HELLO[6:38], only_labels(secrets)))
    (fin,) = open_records(dec, True, S3_CLIENT_FINISHED_RECORD)
    assert fin.plaintext == S3_CLIENT_FINISHED
    ticket = dec.decrypt(False, 23, 0x0303, S3_NEW_SESSION_TICKET_RECORD[5:])
    assert isinstance(ticket, Decrypted) and ticket.plaintext[0] == 4
    s_app = dec.decrypt(False, 23, 0x0303, S3_SERVER_APP_RECORD[5:])
    assert isinstance(s_app, Decrypted) and s_app.plaintext == APP_DATA and s_app.record_number == 1


def test_key_update_moves_to_next_generation():
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    secrets = s3_secrets()
    dec = ConnectionDecryptor(keylog_text(S3_CLIENT_HELLO[6:38], only_labels(secrets)))
    dec.observe_handshake(True, S3_CLIENT_HELLO)
    dec.observe_handshake(False, S3_SERVER_HELLO)
    open_records(dec, False, S3_SERVER_FLIGHT)
    open_records(dec, True, S3_CLIENT_FINISHED_RECORD)
    dec.observe_handshake(True, b"\x18\x00\x00\x01\x00")  # KeyUpdate(update_not_requested)
    nxt = tls13.next_traffic_secret("sha256", secrets["CLIENT_TRAFFIC_SECRET_0"])
    key, iv = tls13.traffic_key_iv("sha256", nxt, 16)
    header = b"\x17\x03\x03\x00\x15"
    fragment = AESGCM(key).encrypt(iv, b"data\x17", header)   # seq 0 of the new generation
    res = dec.decrypt(True, 23, 0x0303, fragment)
    assert isinstance(res, Decrypted) and res.plaintext == b"data" and res.record_number == 0
    # the old generation's key no longer opens it
    old = dec.decrypt(True, 23, 0x0303, S3_CLIENT_APP_RECORD[5:])
    assert isinstance(old, DecryptFailure) and "authentication failed" in old.reason
