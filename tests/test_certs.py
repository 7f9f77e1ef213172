"""Unit tests of tlsscope.certs: loading, host names, names, no-store mode, mTLS, OCSP, JSON."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from certs_matrix import AT, CLIENT, DAY, SERVER, crl, der, ec_key, make, name, pem, resign
from tlsscope.certs import (CertStoreError, ChainCheck, CrlSet, TrustStore, absent, check_chain,
                            not_visible)
from tlsscope.certs.hostname import check_host, dns_name_matches
from tlsscope.certs.names import describe_der_name, name_key, parse_der_name
from tlsscope.codec import DecodeError


@pytest.fixture(scope="module")
def pki():
    root = make("Root CA", ec_key("root"), ca=True)
    inter = make("Intermediate CA", ec_key("inter"), root, ca=True)
    leaf = make("www.example.com", ec_key("leaf"), inter, ca=False, san=["www.example.com"], eku=SERVER)
    other = make("Other CA", ec_key("other_root"), ca=True)
    client = make("alice", ec_key("leaf"), other, ca=False, eku=CLIENT)
    return {"root": root, "inter": inter, "leaf": leaf, "other": other, "client": client}


def codes(result: ChainCheck) -> set[str]:
    return {f.code for f in result.findings}


# --- loading ---------------------------------------------------------------------------------

def test_store_loads_pem_bundle_der_and_directory(pki, tmp_path):
    (tmp_path / "bundle.pem").write_bytes(pem(pki["root"].cert) + pem(pki["other"].cert))
    (tmp_path / "one.der").write_bytes(pki["inter"].der)
    d = tmp_path / "dir"
    d.mkdir()
    (d / "a.pem").write_bytes(pem(pki["root"].cert))   # duplicate: kept once
    (d / "README").write_text("not a certificate")       # unrelated files in a directory are skipped
    store = TrustStore.load([tmp_path / "bundle.pem", str(tmp_path / "one.der"), d])
    assert sorted(c.subject.rfc4514_string() for c in store.anchors) == [
        "CN=Intermediate CA,O=tlsscope test", "CN=Other CA,O=tlsscope test", "CN=Root CA,O=tlsscope test"]


@pytest.mark.parametrize("content,fragment", [
    (b"", "contains no certificate"),
    (b"hello", "not a certificate in PEM or DER"),
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a certificate"),
])
def test_store_errors_name_the_file(tmp_path, content, fragment):
    f = tmp_path / "ca.pem"
    f.write_bytes(content)
    with pytest.raises(CertStoreError) as err:
        TrustStore.load([f])
    assert str(f) in str(err.value) and fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_store_missing_file(tmp_path):
    with pytest.raises(CertStoreError, match="no such file"):
        TrustStore.load([tmp_path / "nope.pem"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CertStoreError, match="contains no certificate"):
        TrustStore.load([empty])


def test_crlset_loads_pem_and_der(pki, tmp_path):
    pem_crl = crl(pki["inter"], [5])
    (tmp_path / "a.pem").write_bytes(pem_crl + crl(pki["root"]))
    (tmp_path / "b.der").write_bytes(x509.load_pem_x509_crl(pem_crl).public_bytes(serialization.Encoding.DER))
    crls = CrlSet.load([tmp_path / "a.pem", tmp_path / "b.der"])
    assert len(crls.crls) == 3
    with pytest.raises(CertStoreError, match="b.der"):
        (tmp_path / "b.der").write_bytes(b"\x30\x03\x02\x01\x00")
        CrlSet.load([tmp_path / "b.der"])


# --- host names ------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern,host,ok", [
    ("www.example.com", "www.example.com", True),
    ("www.example.com", "www.example.com.", False),
    ("*.example.com", "foo.example.com", True),
    ("*.example.com", ".example.com", False),
    ("*.example.com", "*.example.com", True),          # the wildcard may match a literal '*'
    ("*.example.com", "foo_bar.example.com", False),
    ("*.Example.COM", "FOO.example.com", True),
    ("foo*.example.com", "foo.example.com", True),     # may match nothing when partial
    ("*.*.example.com", "a.b.example.com", False),
    ("*-.example.com", "a-.example.com", False),       # a label may not end in '-'
    ("xn--*.example.com", "xn--a.example.com", False),
    ("*.example.com", "a\x00.example.com", False),
])
def test_dns_name_rules(pattern, host, ok):
    assert dns_name_matches(pattern, host) is ok


def test_check_host_ip_and_cn(pki):
    ip_leaf = make("10.1.2.3", ec_key("leaf"), pki["inter"], ca=False, san=["::1", "example.net"])
    assert check_host(ip_leaf.cert, "::1").matched
    assert check_host(ip_leaf.cert, "[::1]").matched
    assert not check_host(ip_leaf.cert, "10.1.2.3").matched      # the CN is never used for IPs
    cn_leaf = make("www.example.com", ec_key("leaf"), pki["inter"], ca=False)
    m = check_host(cn_leaf.cert, "www.example.com")
    assert m.matched and m.via_cn and m.presented == ("www.example.com",)


# --- names -------------------------------------------------------------------------------------

def test_der_names_round_trip_and_compare_like_openssl():
    n = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "My   CA"),
                   x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "ACME")])
    parsed = parse_der_name(n.public_bytes())
    assert parsed.rfc4514_string() == "O=ACME,CN=My   CA"
    assert name_key(parsed) == name_key(x509.Name.from_rfc4514_string("O=acme,CN=my ca"))
    with pytest.raises(DecodeError):
        parse_der_name(b"\x30\x05\x31\x03")
    assert describe_der_name(b"\x01").startswith("<undecodable name")


# --- results and modes -------------------------------------------------------------------------

def test_not_visible_and_absent_json():
    nv = not_visible("TLS 1.3 encrypts certificates: give --keylog")
    assert nv.to_json() == {"status": "not_visible", "openssl_status": "", "path": [], "findings": [
        {"severity": "info", "code": "chain_not_visible",
         "message": "TLS 1.3 encrypts certificates: give --keylog"}]}
    assert absent("no client certificate sent").status == "absent"
    assert check_chain([], side="client", at=AT, store=None).status == "absent"


def test_ok_result_json(pki, tmp_path):
    (tmp_path / "ca.pem").write_bytes(pem(pki["root"].cert))
    r = check_chain([pki["leaf"].der, pki["inter"].der], side="server", at=AT,
                    store=TrustStore.load([tmp_path / "ca.pem"]), hostname="www.example.com", now=AT)
    j = json.loads(json.dumps(r.to_json()))
    assert j["status"] == "ok" and j["openssl_status"] == "ok" and j["findings"] == []
    assert j["path"] == ["CN=www.example.com,O=tlsscope test", "CN=Intermediate CA,O=tlsscope test",
                         "CN=Root CA,O=tlsscope test"]


def test_without_store_trust_is_not_judged(pki):
    chain = [pki["leaf"].der, pki["inter"].der]
    r = check_chain(chain, side="server", at=AT, store=None, now=AT)
    assert (r.status, r.openssl_status) == ("ok", "ok")
    assert codes(r) == {"trust_not_checked"}
    assert len(r.path) == 2
    late = check_chain(chain, side="server", at=AT + 400 * DAY, store=None)
    assert (late.status, late.openssl_status) == ("failed", "certificate has expired")
    host = check_chain(chain, side="server", at=AT, store=None, hostname="evil.example.org")
    assert host.status == "failed" and "hostname_mismatch" in codes(host)
    bad = resign(pki["leaf"], pki["inter"].key, corrupt=True)
    broken = check_chain([bad.der, pki["inter"].der], side="server", at=AT, store=None)
    assert broken.openssl_status == "certificate signature failure"
    selfie = make("self", ec_key("self"), ca=None)
    s = check_chain([selfie.der], side="server", at=AT, store=None)
    assert s.status == "ok" and "self_signed_leaf" in codes(s)


def test_expired_since_capture_is_advisory(pki):
    r = check_chain([pki["leaf"].der, pki["inter"].der], side="server", at=AT, store=None,
                    now=AT + 400 * DAY)
    assert r.status == "ok"
    assert "cert_expired_now" in codes(r)


def test_naive_capture_time_is_utc_and_side_is_checked(pki):
    naive = AT.replace(tzinfo=None)
    assert check_chain([pki["leaf"].der], side="server", at=naive, store=None, now=AT).status == "ok"
    with pytest.raises(ValueError):
        check_chain([pki["leaf"].der], side="peer", at=AT, store=None)


def test_unparseable_certificates(pki):
    r = check_chain([b"\x30\x03\x02\x01\x00"], side="server", at=AT, store=None)
    assert r.status == "failed" and codes(r) == {"cert_unparseable"}
    r = check_chain([pki["leaf"].der, b"junk", pki["inter"].der], side="server", at=AT, store=None, now=AT)
    assert r.status == "ok" and "cert_unparseable" in codes(r) and len(r.path) == 2


def test_client_side_ignores_hostname(pki, tmp_path):
    (tmp_path / "ca.pem").write_bytes(pem(pki["other"].cert))
    r = check_chain([pki["client"].der], side="client", at=AT, store=TrustStore.load([tmp_path / "ca.pem"]),
                    hostname="unrelated.example", now=AT)
    assert r.status == "ok"


# --- mutual TLS --------------------------------------------------------------------------------

def test_ca_not_requested(pki, tmp_path):
    (tmp_path / "ca.pem").write_bytes(pem(pki["other"].cert))
    store = TrustStore.load([tmp_path / "ca.pem"])
    asked = [name("Root CA").public_bytes()]
    r = check_chain([pki["client"].der], side="client", at=AT, store=store, requested_ca_names=asked, now=AT)
    msgs = [f.message for f in r.findings if f.code == "ca_not_requested"]
    assert msgs == ["the server asked for a certificate from CN=Root CA,O=tlsscope test; the client "
                    "sent one issued by CN=Other CA,O=tlsscope test"]
    fine = check_chain([pki["client"].der], side="client", at=AT, store=store, now=AT,
                       requested_ca_names=asked + [name("other ca").public_bytes()])
    assert "ca_not_requested" not in codes(fine)
    garbage = check_chain([pki["client"].der], side="client", at=AT, store=store, now=AT,
                          requested_ca_names=[b"\x30\x80"])
    assert "ca_not_requested" not in codes(garbage)


# --- OCSP -------------------------------------------------------------------------------------

def _ocsp(pki, status, responder="inter", this_update=AT - DAY, next_update=AT + DAY):
    b = ocsp.OCSPResponseBuilder().add_response(
        cert=pki["leaf"].cert, issuer=pki["inter"].cert, algorithm=hashes.SHA1(), cert_status=status,
        this_update=this_update, next_update=next_update,
        revocation_time=AT - 2 * DAY if status == ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=x509.ReasonFlags.key_compromise if status == ocsp.OCSPCertStatus.REVOKED else None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, pki[responder].cert)
    return b.sign(pki[responder].key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_stapled_ocsp(pki, tmp_path):
    (tmp_path / "ca.pem").write_bytes(pem(pki["root"].cert))
    store = TrustStore.load([tmp_path / "ca.pem"])
    chain = [pki["leaf"].der, pki["inter"].der]

    def run(resp):
        return check_chain(chain, side="server", at=AT, store=store, ocsp_response=resp, now=AT)

    good = run(_ocsp(pki, ocsp.OCSPCertStatus.GOOD))
    assert good.status == "ok" and codes(good) == {"ocsp_good"}
    revoked = run(_ocsp(pki, ocsp.OCSPCertStatus.REVOKED))
    assert (revoked.status, revoked.openssl_status) == ("failed", "ok")   # OCSP is outside X509_verify_cert
    assert "ocsp_revoked" in codes(revoked)
    assert "reason keyCompromise" in next(f.message for f in revoked.findings if f.code == "ocsp_revoked")
    forged = run(_ocsp(pki, ocsp.OCSPCertStatus.GOOD, responder="other"))
    assert "ocsp_bad_signature" in codes(forged)
    stale = run(_ocsp(pki, ocsp.OCSPCertStatus.GOOD, this_update=AT - 9 * DAY, next_update=AT - DAY))
    assert "ocsp_expired" in codes(stale)
    assert "ocsp_malformed" in codes(run(b"\x30\x03\x0a\x01\x00junk"))


def test_crl_without_nextupdate_and_reason(pki, tmp_path):
    (tmp_path / "ca.pem").write_bytes(pem(pki["root"].cert))
    (tmp_path / "crl.pem").write_bytes(crl(pki["inter"], [pki["leaf"].cert.serial_number],
                                           reason=x509.ReasonFlags.superseded))
    r = check_chain([pki["leaf"].der, pki["inter"].der], side="server", at=AT,
                    store=TrustStore.load([tmp_path / "ca.pem"]), crls=CrlSet.load([tmp_path / "crl.pem"]))
    msg = next(f.message for f in r.findings if f.code == "revoked")
    assert "reason superseded" in msg and msg.startswith("CN=www.example.com")
    assert r.openssl_status == "certificate revoked"


def test_presented_order_is_not_mutated(pki, tmp_path):
    """A second check with the same store gives the same answer (no state kept between calls)."""
    (tmp_path / "ca.pem").write_bytes(pem(pki["leaf"].cert) + pem(pki["root"].cert))
    store = TrustStore.load([tmp_path / "ca.pem"])
    first = check_chain([pki["leaf"].der, pki["inter"].der], side="server", at=AT, store=store, now=AT)
    again = check_chain([pki["leaf"].der, pki["inter"].der], side="server", at=AT, store=store, now=AT)
    assert first == again
    assert der(pki["leaf"].cert) == pki["leaf"].der


def test_delegated_ocsp_responder(pki, tmp_path):
    from cryptography.x509.oid import ExtendedKeyUsageOID
    responder = make("OCSP Responder", ec_key("ocsp"), pki["inter"], ca=False,
                     eku=[ExtendedKeyUsageOID.OCSP_SIGNING])
    b = ocsp.OCSPResponseBuilder().add_response(
        cert=pki["leaf"].cert, issuer=pki["inter"].cert, algorithm=hashes.SHA256(),
        cert_status=ocsp.OCSPCertStatus.GOOD, this_update=AT - DAY, next_update=AT + DAY,
        revocation_time=None, revocation_reason=None,
    ).responder_id(ocsp.OCSPResponderEncoding.NAME, responder.cert).certificates([responder.cert])
    resp = b.sign(responder.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    r = check_chain([pki["leaf"].der, pki["inter"].der], side="server", at=AT, store=None,
                    ocsp_response=resp, now=AT)
    assert codes(r) == {"trust_not_checked", "ocsp_good"}


@pytest.mark.parametrize("kind", ["dsa", "ed448", "ed25519", "rsa", "ec"])
def test_signature_algorithms(kind):
    from cryptography.hazmat.primitives.asymmetric import dsa, ed448
    from certs_matrix import ed_key, rsa_key
    keys = {"dsa": lambda n: dsa.generate_private_key(1024), "ed448": lambda n: ed448.Ed448PrivateKey.generate(),
            "ed25519": ed_key, "rsa": rsa_key, "ec": ec_key}[kind]
    ca_key, stranger = keys("ca"), keys("stranger-" + kind)
    if kind in ("dsa", "ed448"):        # make() picks SHA-256 except for Ed25519: redo these by hand
        ca = _sign_raw(ca_key, ca_key, "Sig CA", True)
        lf = _sign_raw(keys("leaf"), ca_key, "leaf", False, issuer="Sig CA")
        forged = _sign_raw(keys("leaf"), stranger, "leaf", False, issuer="Sig CA")
    else:
        ca = make("Sig CA", ca_key, ca=True)
        lf = make("leaf", ec_key("leaf"), ca, ca=False, eku=SERVER)
        forged = make("leaf", ec_key("leaf"), make("Sig CA", stranger, ca=True, skid=False), ca=False,
                      eku=SERVER, akid=False)
    ok = check_chain([lf.der, ca.der], side="server", at=AT, store=None, now=AT, security_level=0)
    assert ok.openssl_status == "ok", ok.findings
    bad = check_chain([forged.der, ca.der], side="server", at=AT, store=None, now=AT, security_level=0)
    assert bad.openssl_status == "certificate signature failure"


def _sign_raw(key, signer, cn, ca, issuer=None):
    from cryptography.hazmat.primitives.asymmetric import ed448
    from certs_matrix import Issuer
    b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(issuer or cn))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(AT - DAY).not_valid_after(AT + DAY)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    cert = b.sign(signer, None if isinstance(signer, ed448.Ed448PrivateKey) else hashes.SHA256())
    return Issuer(cert, key)


def test_mutated_certificates_never_raise(pki, tmp_path):
    """Corrupting any byte of the leaf gives a result (usually unparseable or a bad signature)."""
    import random
    rng = random.Random(7)
    (tmp_path / "ca.pem").write_bytes(pem(pki["root"].cert))
    store = TrustStore.load([tmp_path / "ca.pem"])
    crls = CrlSet.load([_write(tmp_path / "crl.pem", crl(pki["inter"]))])
    originals = [pki["leaf"].der, pki["inter"].der, _ocsp(pki, ocsp.OCSPCertStatus.GOOD)]
    for _ in range(400):
        parts = [bytearray(p) for p in originals]
        target = parts[rng.randrange(3)]
        for _ in range(rng.randint(1, 3)):
            target[rng.randrange(len(target))] = rng.randrange(256)
        leaf, inter, resp = (bytes(p) for p in parts)
        r = check_chain([leaf, inter], side="server", at=AT, store=store, crls=crls, hostname="www.example.com",
                        ocsp_response=resp, requested_ca_names=[inter[20:60]], now=AT)
        assert r.status in ("ok", "failed")
        assert (r.status == "ok") == (r.openssl_status == "ok") or "ocsp_revoked" in codes(r)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path
