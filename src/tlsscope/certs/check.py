"""check_chain: one certificate chain against the user's trust store, in OpenSSL's order.

The checks run in the order of OpenSSL 3's X509_verify_cert, so the first error met is
the one a peer using OpenSSL reports (``openssl_status``): leaf key strength, building the
chain, extensions per certificate (critical extensions, CA flag, purpose, path length),
security level of keys and signatures, host name, revocation (CRL), then signatures and
validity times from the anchor down, name constraints. Unlike OpenSSL, tlsscope goes on after the first error,
so every problem becomes a finding; advisory findings (legacy CN matching, chain order,
weak but accepted keys, expired since the capture, ...) never make a chain fail.

Without a trust store, trust is not judged: the path is built from the presented
certificates only, chain-building errors (unknown issuer, self-signed) are not raised, and
the status is "failed" only for what can be decided alone: validity at capture time,
signatures between presented certificates, CA flags, path length, purpose, host name,
security level, CRLs. The top of the presented chain is treated as OpenSSL treats a
trusted top (its own signature is not checked), and a "trust_not_checked" finding says so.

OCSP is not part of OpenSSL's certificate verification: a stapled "revoked" fails the
chain and is a finding, but ``openssl_status`` keeps the X509_verify_cert result.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from ..codec import DecodeError
from ..findings import Finding, Severity
from . import openssl_status as st
from .chain import BuiltPath, CertInfo, build_path, cert_signed_by, has_explicit_ec_parameters
from .constraints import check_name_constraints
from .hostname import check_host
from .names import describe_der_name, name_key, parse_der_name
from .revocation import check_crl, check_ocsp
from .store import CrlSet, TrustStore
from .strict import strict_problems
from .verdict import FAILED, OK, ChainCheck, absent

_SGC = {ObjectIdentifier("2.16.840.1.113730.4.1"), ObjectIdentifier("1.3.6.1.4.1.311.10.3.3")}
_SIDES = ("server", "client")


def _utc(t: datetime.datetime) -> datetime.datetime:
    return t.replace(tzinfo=datetime.timezone.utc) if t.tzinfo is None else t.astimezone(datetime.timezone.utc)


def _when(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%SZ")


class _Run:
    """The state of one check: errors in OpenSSL order, findings without duplicates."""

    def __init__(self, side: str, at: datetime.datetime, level: int):
        self.side = side
        self.at = at
        self.level = level
        self.errors: list[str] = []
        self.findings: list[Finding] = []
        self._seen: set[tuple[str, str]] = set()

    def find(self, severity: Severity, code: str, message: str) -> None:
        if (code, message) not in self._seen:
            self._seen.add((code, message))
            self.findings.append(Finding(severity, code, message))

    def error(self, status: str, finding: Finding | None = None) -> None:
        self.errors.append(status)
        if finding is not None:
            self.find(finding.severity, finding.code, finding.message)


def _check_ca(x: CertInfo) -> int:
    """OpenSSL's check_ca: 0 not a CA, 1 a proper CA, 3 a v1 self-signed root, 4 keyUsage only."""
    if x.key_usage is not None and not x.key_usage.key_cert_sign:
        return 0
    if x.ca is not None:
        return 1 if x.ca else 0
    if x.version == 1 and x.self_signed:
        return 3
    if x.key_usage is not None:
        return 4
    return 0


def _invalid_ca_finding(x: CertInfo, top: bool) -> Finding:
    if x.key_usage is not None and not x.key_usage.key_cert_sign:
        return Finding(Severity.HIGH, "no_keycertsign",
                       f"{x.subject} issues certificates but its keyUsage lacks keyCertSign")
    if x.ca is False:
        return Finding(Severity.HIGH, "ca_flag_missing",
                       f"{x.subject} is used as a CA but its basicConstraints says CA:FALSE")
    if x.version == 1:
        where = "as the top of the chain without being self-signed" if top else "as an intermediate"
        return Finding(Severity.HIGH, "v1_ca_intermediate",
                       f"{x.subject} is an X.509 v1 certificate without extensions used {where}: "
                       "OpenSSL and other strict verifiers accept v1 CAs only as self-signed trust anchors")
    return Finding(Severity.HIGH, "ca_flag_missing",
                   f"{x.subject} is used as a CA but has no basicConstraints CA:TRUE")


def _eku_names(eku) -> str:
    return ", ".join(getattr(o, "_name", None) or o.dotted_string for o in eku)


def _allowed_ekus(side: str) -> set:
    """EKUs that let a certificate serve ``side`` (OpenSSL also takes the old SGC OIDs for servers)."""
    if side == "server":
        return {ExtendedKeyUsageOID.SERVER_AUTH} | _SGC
    return {ExtendedKeyUsageOID.CLIENT_AUTH}


def _purpose_leaf(run: _Run, x: CertInfo) -> None:
    if x.eku is not None and not _allowed_ekus(run.side) & set(x.eku):
        run.error(st.INVALID_PURPOSE, Finding(
            Severity.HIGH, "wrong_eku",
            f"the {run.side}'s certificate {x.subject} has extendedKeyUsage {_eku_names(x.eku)}, "
            f"without {'serverAuth' if run.side == 'server' else 'clientAuth'}"))
    ku = x.key_usage
    if ku is not None:
        ok = ku.digital_signature or ku.key_agreement or (run.side == "server" and ku.key_encipherment)
        if not ok:
            run.error(st.INVALID_PURPOSE, Finding(
                Severity.HIGH, "wrong_key_usage",
                f"the {run.side}'s certificate {x.subject} has a keyUsage that allows neither "
                "digitalSignature nor key exchange"))


def _purpose_ca(run: _Run, x: CertInfo) -> None:
    if x.eku is not None and not _allowed_ekus(run.side) & set(x.eku):
        run.error(st.INVALID_PURPOSE, Finding(
            Severity.HIGH, "wrong_eku",
            f"CA {x.subject} restricts extendedKeyUsage to {_eku_names(x.eku)}, which excludes "
            f"{'serverAuth' if run.side == 'server' else 'clientAuth'} certificates"))


def _check_extensions(run: _Run, path: list[CertInfo], strict: bool = False) -> None:
    """OpenSSL's check_extensions; ``strict``: with X509_V_FLAG_X509_STRICT (-x509_strict)."""
    num = len(path)
    plen = 0
    for i, x in enumerate(path):
        if x.unhandled_critical:
            run.error(st.UNHANDLED_CRITICAL_EXTENSION, Finding(
                Severity.HIGH, "unhandled_critical_extension",
                f"{x.subject} has critical extensions OpenSSL does not handle: "
                + ", ".join(x.unhandled_critical)))
        top = i + 1 == num
        if i == 0 and strict and _check_ca(x) not in (0, 1):
            run.error(st.INVALID_CA, Finding(
                Severity.HIGH, "ca_flag_missing",
                f"the {run.side}'s certificate {x.subject} looks like a CA without saying so (a v1 self-signed "
                "certificate, or keyCertSign without basicConstraints): rejected with -x509_strict"))
        if i > 0:
            ret = _check_ca(x)
            if ret == 0 or ((not top or strict) and ret != 1):
                run.error(st.INVALID_CA, _invalid_ca_finding(x, top))
            elif ret == 3:
                run.find(Severity.LOW, "v1_ca_anchor",
                         f"trust anchor {x.subject} is an X.509 v1 certificate without extensions "
                         "(as 'openssl x509 -req -signkey' makes): OpenSSL accepts it as a trust anchor "
                         "but rejects it with -x509_strict, and v1 CAs anywhere else in a chain")
            elif ret == 4:
                run.find(Severity.LOW, "ca_flag_missing",
                         f"trust anchor {x.subject} has no basicConstraints: OpenSSL accepts it as an "
                         "anchor only because its keyUsage allows keyCertSign (rejected with -x509_strict)")
        if num > 1 and has_explicit_ec_parameters(x.der):
            run.error(st.EC_KEY_EXPLICIT_PARAMS, Finding(
                Severity.HIGH, "ec_explicit_parameters",
                f"{x.subject} has an EC key with explicit curve parameters instead of a named curve: "
                "OpenSSL 3 refuses it in a chain (such keys made the CVE-2020-0601 forgeries possible)"))
        if num > 1:
            for status, what in strict_problems(x, i, num):
                if strict:
                    run.error(status, Finding(Severity.HIGH, "x509_strict_violation",
                                              f"{x.subject} {what}: rejected with -x509_strict ({status})"))
                else:
                    run.find(Severity.MEDIUM, "x509_strict_violation",
                             f"{x.subject} {what} ({status}): OpenSSL with -x509_strict, and Python 3.13+ "
                             "clients (VERIFY_X509_STRICT is in ssl.create_default_context), reject the chain")
        if i == 0:
            _purpose_leaf(run, x)
        else:   # anchors too: OpenSSL checks their EKU unless trust settings (-addtrust) say otherwise
            _purpose_ca(run, x)
        if i > 1 and x.path_length is not None and plen > x.path_length:
            run.error(st.PATH_LENGTH_EXCEEDED, Finding(
                Severity.HIGH, "pathlen_exceeded",
                f"{x.subject} allows {x.path_length} intermediate CA(s) below it "
                f"(pathLenConstraint) but the chain has {plen}"))
        if i > 0 and not x.self_issued:
            plen += 1


def _key_text(x: CertInfo) -> str:
    key = x.public_key
    if isinstance(key, rsa.RSAPublicKey):
        return f"a {key.key_size}-bit RSA key"
    name = type(key).__name__.replace("_", "").replace("PublicKey", "")
    size = getattr(key, "key_size", None)
    return f"a {size}-bit {name} key" if size else f"an {name} key"


def _check_weakness(run: _Run, path: list[CertInfo], anchored: bool) -> None:
    """Key sizes and signature digests: OpenSSL's errors at the security level, plus findings."""
    need = st.min_bits(run.level)
    num = len(path)
    for i, x in enumerate(path):
        if x.public_key is None:
            continue
        bits = st.key_security_bits(x.public_key)
        enforced = bits < need
        if isinstance(x.public_key, rsa.RSAPublicKey) and x.public_key.key_size < 2048 or bits < 112:
            from_level = next(lv for lv in range(1, 6) if st.min_bits(lv) > bits)
            verdict = f"OpenSSL rejects it from security level {from_level}" + (
                f" (the assumed level is {run.level})" if not enforced else "")
            run.find(Severity.HIGH if enforced or bits < 80 else Severity.MEDIUM,
                     "weak_rsa_key" if isinstance(x.public_key, rsa.RSAPublicKey) else "weak_key",
                     f"{x.subject} has {_key_text(x)} ({bits} bits of security): {verdict}")
        try:
            h = x.cert.signature_hash_algorithm
        except Exception:        # unsupported algorithm: the signature check reports it
            h = None
        is_anchor = anchored and i == num - 1
        if isinstance(h, (hashes.SHA1, hashes.MD5)):
            name = "SHA-1" if isinstance(h, hashes.SHA1) else "MD5"
            code = "sha1_signature" if name == "SHA-1" else "md5_signature"
            if is_anchor:
                how = "self-signed" if x.self_signed else "signed"
                run.find(Severity.INFO, code,
                         f"trust anchor {x.subject} is {how} with {name}: not security-relevant "
                         "(anchors are trusted by configuration) and OpenSSL does not check it")
            else:
                sev = Severity.HIGH if name == "MD5" or need > 63 else Severity.MEDIUM
                run.find(sev, code, f"{x.subject} is signed with {name}: forgeable; OpenSSL at "
                         "security level 1 and above rejects it")
    if need == 0:
        return
    for i, x in enumerate(path):
        bits = st.key_security_bits(x.public_key) if x.public_key is not None else 0
        if i > 0 and bits < need:
            run.error(st.CA_KEY_TOO_SMALL)
        if i < num - 1:
            try:
                h = x.cert.signature_hash_algorithm
            except Exception:
                continue
            if st.signature_security_bits(h, x.cert.signature_algorithm_oid.dotted_string) < need:
                run.error(st.CA_MD_TOO_WEAK)


def _check_time(run: _Run, x: CertInfo, now: datetime.datetime) -> None:
    if x.not_before > run.at:
        run.error(st.CERT_NOT_YET_VALID, Finding(
            Severity.HIGH, "cert_not_yet_valid",
            f"{x.subject} is valid only from {_when(x.not_before)}, after the capture ({_when(run.at)})"))
    elif x.not_after <= run.at:
        run.error(st.CERT_HAS_EXPIRED, Finding(
            Severity.HIGH, "cert_expired",
            f"{x.subject} expired at {_when(x.not_after)}, before the capture ({_when(run.at)})"))
    elif x.not_after <= now:
        run.find(Severity.LOW, "cert_expired_now",
                 f"{x.subject} was valid at the capture but has expired since ({_when(x.not_after)})")


def _internal_verify(run: _Run, path: list[CertInfo], now: datetime.datetime) -> None:
    """Signatures and times from the top down, as OpenSSL's internal_verify."""
    n = len(path) - 1
    top = path[n]
    if not top.self_signed:
        # An unanchored top (no trust store): its issuer is unknown, its time still counts.
        _check_time(run, top, now)
        n -= 1
    for k in range(n, -1, -1):
        xs = path[k]
        xi = path[k + 1] if k + 1 < len(path) else xs
        if xs is not xi and not cert_signed_by(xs, xi):
            run.error(st.CERT_SIGNATURE_FAILURE, Finding(
                Severity.CRITICAL, "bad_signature",
                f"the signature on {xs.subject} does not verify with the key of {xi.subject}"))
        _check_time(run, xs, now)


def _check_chain_shape(run: _Run, built: BuiltPath, presented: list[CertInfo],
                       store: TrustStore | None) -> None:
    path = built.path
    if built.out_of_order:
        order = " > ".join(f"#{c.index}" for c in path if not c.trusted)
        run.find(Severity.LOW, "chain_out_of_order",
                 f"the certificates were not sent leaf first, each followed by its issuer "
                 f"(path uses presented certificates {order}); RFC 5246 requires that order, "
                 "RFC 8446 only recommends it")
    for extra in built.unused:
        if extra.self_signed and any(a.der == extra.der for a in path):
            continue
        run.find(Severity.LOW, "chain_extra_certs",
                 f"certificate #{extra.index} {extra.subject} was sent but is not part of the chain")
    roots_sent = [c for c in presented[1:] if c.self_signed and any(
        c.der == p.der or (c.subject_key == p.subject_key and c.same_key(p)) for p in path)]
    if built.anchored and roots_sent:
        run.find(Severity.INFO, "chain_includes_root",
                 f"the chain includes the self-signed root {roots_sent[0].subject} (harmless, wasted bytes)")
    top = path[-1]
    if store is not None and not built.anchored:
        if top.self_signed:
            if len(path) > 1:      # a lone self-signed leaf has its own finding
                run.find(Severity.HIGH, "unknown_issuer", f"the chain ends at the self-signed "
                         f"{top.subject}, which is not among the trust anchors")
        elif top.trusted:
            run.find(Severity.HIGH, "unknown_issuer",
                     f"{top.subject} is in the trust store but is not self-signed, and its issuer "
                     f"{top.cert.issuer.rfc4514_string()} is not: OpenSSL (without -partial_chain) "
                     "needs the chain to end at a self-signed root")
        else:
            issuer = top.cert.issuer.rfc4514_string()
            run.find(Severity.HIGH, "unknown_issuer",
                     f"{top.subject} was issued by {issuer}, which is neither among the presented "
                     "certificates nor a trust anchor")
            run.find(Severity.MEDIUM, "chain_missing_intermediate",
                     f"no certificate for {issuer} was sent: either an intermediate is missing "
                     "or the chain belongs to another CA")


def check_chain(chain: Sequence[bytes], *, side: str, at: datetime.datetime,
                store: TrustStore | None, crls: CrlSet | None = None,
                hostname: str | None = None,
                requested_ca_names: Sequence[bytes] | None = None,
                ocsp_response: bytes | None = None,
                now: datetime.datetime | None = None,
                security_level: int = st.DEFAULT_SECURITY_LEVEL,
                partial_chain: bool = False, x509_strict: bool = False) -> ChainCheck:
    """Check a presented chain (DER, leaf first) as seen at capture time ``at``.

    ``security_level`` is the OpenSSL SECLEVEL assumed for the verifying peer (keys and
    signature digests); 0 disables those checks, as plain ``openssl verify`` does.
    ``partial_chain``: a certificate of the store need not be self-signed to be a trust anchor
    (OpenSSL's -partial_chain; nginx and most servers do not set it). ``x509_strict``: the RFC 5280
    profile checks of -x509_strict are errors (otherwise findings), as for Python 3.13+ clients.
    """
    if side not in _SIDES:
        raise ValueError(f"side must be one of {_SIDES}, not {side!r}")
    if not chain:
        return absent(f"no {side} certificate was sent")
    at = _utc(at)
    now = _utc(now) if now is not None else datetime.datetime.now(datetime.timezone.utc)
    run = _Run(side, at, security_level)

    presented: list[CertInfo] = []
    for i, der in enumerate(chain):
        try:
            presented.append(CertInfo.parse(bytes(der), i))
        except Exception as exc:   # noqa: BLE001 - cryptography raises ValueError, KeyError, ... on bad DER
            reason = str(exc).splitlines()[0] if str(exc) else "malformed"
            if i == 0:
                return ChainCheck(FAILED, "", (), (Finding(
                    Severity.HIGH, "cert_unparseable",
                    f"the {side}'s certificate does not parse: {reason}"),))
            run.find(Severity.MEDIUM, "cert_unparseable",
                     f"certificate #{i} of the chain does not parse and was ignored: {reason}")
    anchors = store.infos() if store is not None else None
    built = build_path(presented, anchors, at, partial_chain=partial_chain)
    path = built.path
    leaf = path[0]

    # 1. The leaf's own key (X509_verify_cert checks it before building the chain).
    need = st.min_bits(security_level)
    if need and (leaf.public_key is None or st.key_security_bits(leaf.public_key) < need):
        run.error(st.EE_KEY_TOO_SMALL)

    # 2. Chain building.
    if store is not None and not built.anchored:
        top = path[-1]
        if top.trusted:
            run.error(st.UNABLE_TO_GET_ISSUER_CERT)
        elif top.self_signed and len(path) == 1:
            run.error(st.DEPTH_ZERO_SELF_SIGNED_CERT, Finding(
                Severity.HIGH, "self_signed_leaf",
                f"the {side}'s certificate {leaf.subject} is self-signed and not among the trust anchors"))
        elif top.self_signed:
            run.error(st.SELF_SIGNED_CERT_IN_CHAIN)
        else:
            run.error(st.UNABLE_TO_GET_ISSUER_CERT_LOCALLY)
    elif store is None:
        run.find(Severity.INFO, "trust_not_checked",
                 "no trust anchors given (--ca): the chain was checked for everything but trust")

    # 3-5. Extensions, security level, identity.
    _check_extensions(run, path, x509_strict)
    _check_weakness(run, path, built.anchored)
    if side == "server" and hostname:
        match = check_host(leaf.cert, hostname)
        if not match.matched:
            names = ", ".join(match.presented) or "none"
            run.error(st.IP_ADDRESS_MISMATCH if match.is_ip else st.HOSTNAME_MISMATCH, Finding(
                Severity.HIGH, "hostname_mismatch",
                f"{'IP address' if match.is_ip else 'host name'} {hostname} is not in the certificate "
                f"({'CN' if match.via_cn else 'subjectAltName'}: {names})"))
        elif match.via_cn:
            run.find(Severity.LOW, "cn_only_hostname",
                     f"{hostname} matched the subject CN only: the certificate has no subjectAltName "
                     "dNSName; OpenSSL still accepts this, browsers and Go do not")

    # 6. Revocation by CRL: required for the leaf, used for the others when present.
    if crls is not None:
        for i, x in enumerate(path):
            if x.trusted and x.self_signed:
                break
            issuer = path[i + 1] if i + 1 < len(path) else None
            for err in check_crl(x, issuer, crls, at, required=(i == 0)):
                run.error(err.status, err.finding)

    # 7. Signatures and validity, top down; then name constraints.
    _internal_verify(run, path, now)
    for status, x, ca, shown in check_name_constraints(path):
        run.error(status, Finding(
            Severity.HIGH, "name_constraints_violation",
            f"{shown} of {x.subject} is outside the names {ca.subject} may certify ({status})"))

    # Advisory findings.
    _check_chain_shape(run, built, presented, store)
    top = path[-1]
    if built.anchored and not top.self_signed:
        run.find(Severity.INFO, "partial_chain_anchor",
                 f"the chain is trusted at {top.subject}, a certificate of the trust store that is not a "
                 "self-signed root (--partial-chain); a peer without that option needs the root "
                 f"{top.cert.issuer.rfc4514_string()}")
    if leaf.self_signed and built.anchored:
        run.find(Severity.LOW, "self_signed_leaf",
                 f"the {side}'s certificate {leaf.subject} is self-signed and trusted directly")
    elif leaf.self_signed and store is None:
        run.find(Severity.MEDIUM, "self_signed_leaf", f"the {side}'s certificate {leaf.subject} is self-signed")
    if len(path) > 1 or not leaf.self_signed:
        if leaf.ca:
            run.find(Severity.MEDIUM, "ca_used_as_leaf",
                     f"the {side}'s certificate {leaf.subject} is a CA certificate (basicConstraints CA:TRUE)")
        for ca in path[1:]:
            if leaf.same_key(ca):
                run.find(Severity.HIGH, "ca_used_as_leaf",
                         f"the {side}'s certificate uses the same key as CA {ca.subject}")
    revoked_by_ocsp = False
    if ocsp_response:
        issuer = path[1] if len(path) > 1 else None
        ocsp_findings, revoked_by_ocsp = check_ocsp(ocsp_response, leaf, issuer, at)
        for f in ocsp_findings:
            run.find(f.severity, f.code, f.message)
    if side == "client" and requested_ca_names:
        _check_requested_cas(run, path, requested_ca_names)

    status = FAILED if run.errors or revoked_by_ocsp else OK
    return ChainCheck(status, run.errors[0] if run.errors else st.OK,
                      tuple(c.subject for c in path), tuple(run.findings))


def _check_requested_cas(run: _Run, path: list[CertInfo], requested: Sequence[bytes]) -> None:
    """Mutual TLS: did the client's chain come from one of the CAs the server asked for?"""
    wanted = []
    for der in requested:
        try:
            wanted.append(name_key(parse_der_name(bytes(der))))
        except (DecodeError, ValueError):
            continue
    chain_names = {c.issuer_key for c in path} | {c.subject_key for c in path[1:]}
    if wanted and not chain_names & set(wanted):
        asked = "; ".join(describe_der_name(bytes(d)) for d in requested[:3])
        more = f" (and {len(requested) - 3} more)" if len(requested) > 3 else ""
        run.find(Severity.MEDIUM, "ca_not_requested",
                 f"the server asked for a certificate from {asked}{more}; the client sent one "
                 f"issued by {path[0].cert.issuer.rfc4514_string()}")
