"""Differential test: tlsscope's chain verdicts against `openssl verify` on a matrix of chains.

Every chain is built at test time. tlsscope's (status, openssl_status) must equal what it
is expected to say, and `openssl verify` must agree, except for the deviations listed in
DEVIATIONS, each with its reason. tlsscope assumes a verifying peer at OpenSSL security
level 2 (the Debian/Ubuntu/Fedora default), so the oracle runs with -auth_level 2; the
variants run other levels and -x509_strict.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import subprocess
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certs_matrix import AT, CLIENT, DAY, SERVER, Issuer, crl, ec_key, ed_key, make, pem, resign, rsa_key
from conftest import need_tool
from tlsscope.certs import CrlSet, TrustStore, check_chain


@dataclass
class Case:
    chain: list[Issuer]
    anchors: list[Issuer]
    want: str                       # expected openssl_status ("ok" or OpenSSL's text)
    codes: set[str] = field(default_factory=set)   # finding codes that must be present
    absent: set[str] = field(default_factory=set)  # finding codes that must not be
    side: str = "server"
    host: str | None = None
    crls: list[bytes] = field(default_factory=list)


@functools.cache
def pki() -> dict[str, Issuer]:
    p: dict[str, Issuer] = {}
    p["root"] = make("Root CA", ec_key("root"), ca=True)
    p["root_rsa"] = make("RSA Root CA", rsa_key("root"), ca=True)
    p["other_root"] = make("Other Root CA", ec_key("other_root"), ca=True)
    p["inter"] = make("Intermediate CA", ec_key("inter"), p["root"], ca=True)
    return p


def leaf(issuer: Issuer, cn: str = "www.example.com", *, key=None, **kw) -> Issuer:
    kw.setdefault("san", [cn])
    kw.setdefault("eku", SERVER)
    return make(cn, key or ec_key("leaf"), issuer, ca=kw.pop("ca", False), **kw)


@functools.cache
def cases() -> dict[str, Case]:
    p = pki()
    root, inter, other = p["root"], p["inter"], p["other_root"]
    good = leaf(inter)
    c: dict[str, Case] = {}

    def chain_case(name, lf, want, codes=(), *, via=inter, anchors=(root,), **kw):
        c[name] = Case([lf, via] if via else [lf], list(anchors), want, set(codes), **kw)

    # trust and path building
    c["good"] = Case([good, inter], [root], "ok", host="www.example.com", absent={
        "chain_out_of_order", "chain_extra_certs", "chain_includes_root", "unknown_issuer", "cn_only_hostname"})
    c["good_root_sent"] = Case([good, inter, root], [root], "ok", {"chain_includes_root"},
                               absent={"chain_extra_certs"})
    chain_case("two_anchors", good, "ok", anchors=(other, root))
    chain_case("wrong_ca", good, "unable to get local issuer certificate", {"unknown_issuer"},
               anchors=(other,))
    c["wrong_ca_root_sent"] = Case([good, inter, root], [other],
                                   "self-signed certificate in certificate chain", {"unknown_issuer"})
    chain_case("missing_intermediate", good, "unable to get local issuer certificate",
               {"unknown_issuer", "chain_missing_intermediate"}, via=None)
    chain_case("intermediate_is_anchor", good, "unable to get issuer certificate", via=None,
               anchors=(inter,))
    i1 = make("Level 1 CA", ec_key("i1"), root, ca=True)
    i2 = make("Level 2 CA", ec_key("i2"), i1, ca=True)
    deep = leaf(i2)
    c["out_of_order"] = Case([deep, i1, i2], [root], "ok", {"chain_out_of_order"})
    c["in_order_deep"] = Case([deep, i2, i1], [root], "ok")
    c["extra_cert"] = Case([good, other, inter], [root], "ok", {"chain_extra_certs"}, absent={"chain_includes_root"})
    self_leaf = make("www.example.com", ec_key("self"), ca=None, san=["www.example.com"], eku=SERVER)
    chain_case("self_signed_leaf", self_leaf, "self-signed certificate", {"self_signed_leaf"}, via=None)
    chain_case("self_signed_leaf_trusted", self_leaf, "ok", {"self_signed_leaf"}, via=None,
               anchors=(self_leaf,))
    client_self = make("alice", ec_key("self"), ca=None, eku=CLIENT)
    chain_case("self_signed_trusted_wrong_eku", client_self, "unsuitable certificate purpose", {"wrong_eku"},
               via=None, anchors=(client_self,))
    impostor = make("Root CA", ec_key("impostor"), ca=True, skid=False)
    inter_noakid = make("Intermediate CA", ec_key("inter"), root, ca=True, akid=False)
    c["same_name_other_key"] = Case([good, inter_noakid], [impostor], "certificate signature failure",
                                    {"bad_signature"})

    # signatures and key types
    bad_leaf = resign(good, inter.key, corrupt=True)
    chain_case("bad_signature_leaf", bad_leaf, "certificate signature failure", {"bad_signature"})
    bad_inter = resign(inter, root.key, corrupt=True)
    c["bad_signature_inter"] = Case([good, bad_inter], [root], "certificate signature failure",
                                    {"bad_signature"})
    rsa_inter = make("RSA Intermediate CA", rsa_key("inter"), p["root_rsa"], ca=True)
    c["rsa_chain"] = Case([leaf(rsa_inter), rsa_inter], [p["root_rsa"]], "ok")
    c["rsa_pss_leaf"] = Case([leaf(rsa_inter, pss=True), rsa_inter], [p["root_rsa"]], "ok")
    ed_root = make("Ed25519 Root", ed_key("root"), ca=True)
    c["ed25519_chain"] = Case([leaf(ed_root, key=ed_key("leaf"))], [ed_root], "ok")

    # validity at capture time
    chain_case("leaf_expired", leaf(inter, not_after=AT - DAY), "certificate has expired", {"cert_expired"})
    chain_case("leaf_not_yet_valid", leaf(inter, not_before=AT + DAY), "certificate is not yet valid",
               {"cert_not_yet_valid"})
    chain_case("leaf_expires_at_capture", leaf(inter, not_after=AT), "certificate has expired",
               {"cert_expired"})
    old_inter = make("Intermediate CA", ec_key("inter"), root, ca=True, not_after=AT - DAY)
    c["inter_expired"] = Case([good, old_inter], [root], "certificate has expired", {"cert_expired"})
    old_root = make("Old Root", ec_key("old_root"), ca=True, not_after=AT - DAY)
    c["root_expired"] = Case([leaf(old_root)], [old_root], "certificate has expired", {"cert_expired"})
    chain_case("expired_and_wrong_host", leaf(inter, not_after=AT - DAY), "hostname mismatch",
               {"cert_expired", "hostname_mismatch"}, host="other.example.com")

    # host names (OpenSSL's X509_check_host rules)
    for name, san, host, want in [
        ("host_mismatch", ["www.example.com"], "other.example.com", False),
        ("host_case_insensitive", ["www.example.com"], "WWW.Example.COM", True),
        ("wildcard", ["*.example.com"], "a.example.com", True),
        ("wildcard_two_labels", ["*.example.com"], "a.b.example.com", False),
        ("wildcard_apex", ["*.example.com"], "example.com", False),
        ("wildcard_partial_prefix", ["f*.example.com"], "foo.example.com", True),
        ("wildcard_partial_suffix", ["*o.example.com"], "foo.example.com", True),
        ("wildcard_partial_middle", ["f*o.example.com"], "foo.example.com", False),
        ("wildcard_tld", ["*.com"], "example.com", False),
        ("wildcard_idna_full_label", ["*.example.com"], "xn--bcher-kva.example.com", True),
        ("wildcard_idna_partial", ["x*.example.com"], "xn--bcher-kva.example.com", False),
        ("wildcard_not_leftmost", ["www.*.com"], "www.example.com", False),
        ("ip_san", ["127.0.0.1"], "127.0.0.1", True),
        ("ip_mismatch", ["127.0.0.1"], "10.0.0.1", False),
        ("ip_only_as_dns_name", ["www.example.com"], "::1", False),
    ]:
        is_ip = _is_ip(host)
        chain_case(name, leaf(inter, san=san), "ok" if want else
                   ("IP address mismatch" if is_ip else "hostname mismatch"),
                   set() if want else {"hostname_mismatch"}, host=host)
    chain_case("cn_only_leaf", leaf(inter, san=None), "ok", {"cn_only_hostname"}, host="www.example.com")
    chain_case("cn_ignored_when_san", leaf(inter, san=["other.example.com"]), "hostname mismatch",
               {"hostname_mismatch"}, host="www.example.com")

    # revocation
    crl_leaf = leaf(inter)
    serial = crl_leaf.cert.serial_number
    chain_case("revoked", crl_leaf, "certificate revoked", {"revoked"}, crls=[crl(inter, [serial])])
    chain_case("crl_not_listing", crl_leaf, "ok", crls=[crl(inter, [serial + 1])])
    chain_case("crl_expired", crl_leaf, "CRL has expired", {"crl_expired"},
               crls=[crl(inter, last=AT - 9 * DAY, next_=AT - DAY)])
    chain_case("crl_not_yet_valid", crl_leaf, "CRL is not yet valid", {"crl_not_yet_valid"},
               crls=[crl(inter, last=AT + DAY, next_=AT + 9 * DAY)])
    chain_case("crl_bad_signature", crl_leaf, "CRL signature failure", {"crl_bad_signature"},
               crls=[crl(inter, signer=ec_key("other_root"))])
    chain_case("crl_missing", crl_leaf, "unable to get certificate CRL", {"crl_missing"},
               crls=[crl(root)])
    c["intermediate_revoked"] = Case([crl_leaf, inter], [root], "certificate revoked", {"revoked"},
                                     crls=[crl(inter), crl(root, [inter.cert.serial_number])])
    chain_case("revoked_and_expired", leaf(inter, not_after=AT - DAY), "certificate revoked",
               {"revoked", "cert_expired"}, crls=[crl(inter, [serial, serial + 1, serial + 2, serial + 3])])

    # issuer checks
    v1_root = resign(make("V1 Root", ec_key("v1root"), ca=None, skid=False, akid=False, key_usage=None),
                     ec_key("v1root"), v1=True)
    v1_child = make("Under V1 CA", ec_key("i1"), v1_root, ca=True)
    c["v1_anchor"] = Case([leaf(v1_child), v1_child], [v1_root], "ok", {"v1_ca_anchor"})
    v1_inter = resign(make("V1 Intermediate", ec_key("inter"), root, ca=None, skid=False, akid=False,
                           key_usage=None), root.key, v1=True)
    c["v1_intermediate"] = Case([leaf(v1_inter), v1_inter], [root], "invalid CA certificate",
                                {"v1_ca_intermediate"})
    not_ca = make("Not A CA", ec_key("inter"), root, ca=False, key_usage="ca")
    c["ca_false_intermediate"] = Case([leaf(not_ca), not_ca], [root], "invalid CA certificate",
                                      {"ca_flag_missing"})
    no_bc = make("No BC CA", ec_key("inter"), root, ca=None, key_usage="ca")
    c["no_basic_constraints_intermediate"] = Case([leaf(no_bc), no_bc], [root], "invalid CA certificate",
                                                  {"ca_flag_missing"})
    no_kcs = make("No keyCertSign CA", ec_key("inter"), root, ca=True, key_usage="leaf")
    c["no_keycertsign_intermediate"] = Case([leaf(no_kcs), no_kcs], [root], "invalid CA certificate",
                                            {"no_keycertsign"})
    p0 = make("Pathlen0 CA", ec_key("i1"), root, ca=True, pathlen=0)
    under_p0 = make("Under Pathlen0", ec_key("i2"), p0, ca=True)
    c["pathlen_exceeded"] = Case([leaf(under_p0), under_p0, p0], [root], "path length constraint exceeded",
                                 {"pathlen_exceeded"})
    p1 = make("Pathlen1 CA", ec_key("i1"), root, ca=True, pathlen=1)
    under_p1 = make("Under Pathlen1", ec_key("i2"), p1, ca=True)
    c["pathlen_ok"] = Case([leaf(under_p1), under_p1, p1], [root], "ok")
    crit = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    chain_case("unhandled_critical_extension", leaf(inter, extra=[(crit, True)]),
               "unhandled critical extension", {"unhandled_critical_extension"})

    # purposes
    chain_case("client_cert_used_by_server", leaf(inter, eku=CLIENT), "unsuitable certificate purpose",
               {"wrong_eku"})
    chain_case("server_cert_used_by_client", leaf(inter, eku=SERVER), "unsuitable certificate purpose",
               {"wrong_eku"}, side="client")
    chain_case("client_cert_ok", leaf(inter, "alice", eku=CLIENT, san=None), "ok", side="client")
    chain_case("leaf_without_eku", leaf(inter, eku=None), "ok")
    client_only_ca = make("Client-only CA", ec_key("inter"), root, ca=True, eku=CLIENT)
    c["intermediate_eku_client_only"] = Case([leaf(client_only_ca), client_only_ca], [root],
                                             "unsuitable certificate purpose", {"wrong_eku"})
    client_root = make("Client-only Root", ec_key("other_root"), ca=True, eku=CLIENT)
    c["anchor_eku_client_only"] = Case([leaf(client_root)], [client_root], "unsuitable certificate purpose",
                                       {"wrong_eku"})
    chain_case("ca_used_as_leaf", leaf(inter, ca=True, key_usage=None), "ok", {"ca_used_as_leaf"})
    same_key = leaf(inter, key=ec_key("inter"))
    chain_case("leaf_shares_ca_key", same_key, "ok", {"ca_used_as_leaf"})

    # weakness (security level 2)
    sha1_leaf = resign(leaf(inter), inter.key, hash_name="sha1")
    chain_case("sha1_leaf", sha1_leaf, "CA signature digest algorithm too weak", {"sha1_signature"})
    sha1_root = resign(make("SHA1 Root", ec_key("sha1root"), ca=True), ec_key("sha1root"), hash_name="sha1")
    c["sha1_anchor"] = Case([leaf(sha1_root)], [sha1_root], "ok", {"sha1_signature"})
    weak_leaf = leaf(rsa_inter, key=rsa_key("weak", 1024))
    c["rsa1024_leaf"] = Case([weak_leaf, rsa_inter], [p["root_rsa"]], "EE certificate key too weak",
                             {"weak_rsa_key"})
    weak_inter = make("Weak CA", rsa_key("weak", 1024), p["root_rsa"], ca=True)
    c["rsa1024_intermediate"] = Case([leaf(weak_inter), weak_inter], [p["root_rsa"]],
                                     "CA certificate key too weak", {"weak_rsa_key"})
    md5_leaf = resign(leaf(rsa_inter), rsa_inter.key, hash_name="md5")
    c["md5_leaf"] = Case([md5_leaf, rsa_inter], [p["root_rsa"]], "CA signature digest algorithm too weak",
                         {"md5_signature"})
    # several problems at once: which one OpenSSL reports first
    chain_case("bad_signature_and_expired", resign(leaf(inter, not_after=AT - DAY), inter.key, corrupt=True),
               "certificate signature failure", {"bad_signature", "cert_expired"})
    c["expired_inter_and_bad_leaf"] = Case([bad_leaf, old_inter], [root], "certificate has expired",
                                           {"bad_signature", "cert_expired"})
    chain_case("wrong_eku_and_expired", leaf(inter, eku=CLIENT, not_after=AT - DAY),
               "unsuitable certificate purpose", {"wrong_eku", "cert_expired"})
    c["weak_key_and_unknown_ca"] = Case([weak_leaf], [root], "EE certificate key too weak",
                                        {"weak_rsa_key", "unknown_issuer"})
    chain_case("revoked_and_wrong_host", crl_leaf, "hostname mismatch", {"revoked", "hostname_mismatch"},
               host="other.example.com", crls=[crl(inter, [serial])])
    expired_self = make("www.example.com", ec_key("self"), ca=None, not_after=AT - DAY)
    chain_case("self_signed_and_expired", expired_self, "self-signed certificate",
               {"self_signed_leaf", "cert_expired"}, via=None)
    c["pathlen_and_not_ca"] = Case([leaf(under_p0), under_p0, p0, not_ca], [root],
                                   "path length constraint exceeded", {"pathlen_exceeded"})

    # name constraints
    def constrained(cn, permitted=None, excluded=None):
        nc = x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded)
        return make(cn, ec_key("i1"), root, ca=True, extra=[(nc, True)])
    dns_ca = constrained("Example-only CA", permitted=[x509.DNSName("example.com")])
    for name, san, want in [("nc_permitted", ["www.example.com", "example.com"], "ok"),
                            ("nc_permitted_violation", ["www.example.com", "www.other.org"],
                             "permitted subtree violation"),
                            ("nc_label_boundary", ["badexample.com"], "permitted subtree violation"),
                            ("nc_cn_only_violation", None, "permitted subtree violation")]:
        cn = "www.other.org" if san is None else "www.example.com"
        c[name] = Case([leaf(dns_ca, cn, san=san), dns_ca], [root], want,
                       set() if want == "ok" else {"name_constraints_violation"})
    ex_ca = constrained("Excluding CA", excluded=[x509.DNSName(".bad.example.com")])
    c["nc_excluded"] = Case([leaf(ex_ca, "x.bad.example.com"), ex_ca], [root], "excluded subtree violation",
                            {"name_constraints_violation"})
    c["nc_excluded_parent_ok"] = Case([leaf(ex_ca, "bad.example.com"), ex_ca], [root], "ok")
    ip_ca = constrained("IP CA", permitted=[x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))])
    c["nc_ip_ok"] = Case([leaf(ip_ca, san=["10.1.2.3"]), ip_ca], [root], "ok")
    c["nc_ip_violation"] = Case([leaf(ip_ca, san=["192.168.1.1"]), ip_ca], [root], "permitted subtree violation",
                                {"name_constraints_violation"})
    dir_ca = constrained("DirName CA", permitted=[x509.DirectoryName(
        x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "tlsscope test")]))])
    c["nc_dirname_ok"] = Case([leaf(dir_ca), dir_ca], [root], "ok")
    dir_ca2 = constrained("DirName CA 2", permitted=[x509.DirectoryName(
        x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Elsewhere")]))])
    c["nc_dirname_violation"] = Case([leaf(dir_ca2), dir_ca2], [root], "permitted subtree violation",
                                     {"name_constraints_violation"})

    # path building choices
    old_root_same_name = make("Root CA", ec_key("other_root"), ca=True)
    chain_case("rollover_anchors", good, "ok", anchors=(old_root_same_name, root))
    chain_case("intermediate_from_store", good, "ok", via=None, anchors=(root, inter))
    c["expired_and_renewed_intermediate"] = Case([good, old_inter, inter], [root], "ok", {"chain_extra_certs"})
    c["leaf_itself_in_cafile"] = Case([good, inter], [good], "unable to get local issuer certificate")
    # -partial_chain (the "partial" variant below): anchors that are not self-signed roots
    c["inter_and_root_anchors"] = Case([good, inter], [inter, root], "ok")
    c["expired_intermediate_anchor"] = Case([good], [old_inter], "unable to get issuer certificate")
    c["bad_leaf_under_intermediate_anchor"] = Case([bad_leaf], [inter], "unable to get issuer certificate")
    c["sha1_intermediate_anchor"] = Case([leaf(sha1_inter := resign(inter, root.key, hash_name="sha1"))],
                                         [sha1_inter], "unable to get issuer certificate")
    c["wrong_host_under_intermediate_anchor"] = Case([good], [inter], "unable to get issuer certificate",
                                                     host="other.example.com")
    # RFC 5280 profile violations: accepted by default (a finding), refused with -x509_strict ("strict"
    # variant, and STRICT below for what it must say)
    soft_inter = make("Soft BC CA", ec_key("inter"), root, ca=True, bc_critical=False)
    c["strict_ca_bc_not_critical"] = Case([leaf(soft_inter), soft_inter], [root], "ok", {"x509_strict_violation"})
    no_ku_inter = make("No KU CA", ec_key("inter"), root, ca=True, key_usage=None)
    c["strict_ca_no_key_usage"] = Case([leaf(no_ku_inter), no_ku_inter], [root], "ok", {"x509_strict_violation"})
    no_skid_inter = make("No SKID CA", ec_key("inter"), root, ca=True, skid=False)
    c["strict_ca_no_skid"] = Case([leaf(no_skid_inter), no_skid_inter], [root], "ok", {"x509_strict_violation"})
    chain_case("strict_leaf_no_akid", leaf(inter, akid=False), "ok", {"x509_strict_violation"})
    sign_ku = x509.KeyUsage(True, False, False, False, False, True, False, False, False)
    chain_case("strict_leaf_keycertsign", leaf(inter, ca=False, key_usage=None, extra=[(sign_ku, True)]), "ok",
               {"x509_strict_violation"})
    crit_akid = x509.AuthorityKeyIdentifier.from_issuer_public_key(inter.key.public_key())
    # OpenSSL does not handle a critical authorityKeyIdentifier at all: that error comes first, strict or not
    chain_case("strict_akid_critical", leaf(inter, akid=False, extra=[(crit_akid, True)]),
               "unhandled critical extension", {"x509_strict_violation", "unhandled_critical_extension"})
    name_only_akid = x509.AuthorityKeyIdentifier(None, [x509.DirectoryName(inter.cert.issuer)],
                                                 inter.cert.serial_number)
    chain_case("strict_akid_without_keyid", leaf(inter, akid=False, extra=[(name_only_akid, False)]), "ok",
               {"x509_strict_violation"})
    soft_root = make("Soft BC Root", ec_key("other_root"), ca=True, bc_critical=False)
    c["strict_root_bc_not_critical"] = Case([leaf(soft_root)], [soft_root], "ok", {"x509_strict_violation"})
    pathlen_no_ku = make("Pathlen No KU CA", ec_key("i1"), root, ca=True, pathlen=0, key_usage=None)
    c["strict_pathlen_without_key_usage"] = Case([leaf(pathlen_no_ku), pathlen_no_ku], [root], "ok",
                                                 {"x509_strict_violation"})
    chain_case("key_encipherment_only_server", leaf(rsa_inter, key=rsa_key("leaf"), key_usage=None,
                                                    extra=[(_ku_encipher_only(), True)]), "ok",
               via=rsa_inter, anchors=(p["root_rsa"],))
    chain_case("key_encipherment_only_client", leaf(rsa_inter, "alice", key=rsa_key("leaf"), eku=CLIENT,
                                                    san=None, key_usage=None,
                                                    extra=[(_ku_encipher_only(), True)]),
               "unsuitable certificate purpose", {"wrong_key_usage"}, via=rsa_inter,
               anchors=(p["root_rsa"],), side="client")
    return c


def _ku_encipher_only() -> x509.KeyUsage:
    return x509.KeyUsage(False, False, True, False, False, False, False, False, False)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _pem_all(items: list[Issuer]) -> bytes:
    return b"".join(pem(i.cert) for i in items)


_ERROR = re.compile(r"error (\d+) at (\d+) depth lookup: (.*)")


def run_openssl(case: Case, tmp_path, *extra: str) -> str:
    """`openssl verify`'s first error text, or "ok"."""
    openssl = need_tool("openssl")
    (tmp_path / "leaf.pem").write_bytes(pem(case.chain[0].cert))
    (tmp_path / "ca.pem").write_bytes(_pem_all(case.anchors))
    cmd = [openssl, "verify", "-CAfile", str(tmp_path / "ca.pem"),
           "-attime", str(int(AT.timestamp())),
           "-purpose", "sslserver" if case.side == "server" else "sslclient", *extra]
    if len(case.chain) > 1:
        (tmp_path / "untrusted.pem").write_bytes(_pem_all(case.chain[1:]))
        cmd += ["-untrusted", str(tmp_path / "untrusted.pem")]
    if case.host and case.side == "server":
        cmd += ["-verify_ip" if _is_ip(case.host) else "-verify_hostname", case.host]
    if case.crls:
        (tmp_path / "crl.pem").write_bytes(b"".join(case.crls))
        cmd += ["-crl_check", "-CRLfile", str(tmp_path / "crl.pem")]
    cmd.append(str(tmp_path / "leaf.pem"))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    text = out.stdout + out.stderr
    first = _ERROR.search(text)
    if first:
        return first.group(3).strip()
    assert out.returncode == 0 and "OK" in out.stdout, text
    return "ok"


def run_tlsscope(case: Case, tmp_path, level: int = 2, partial_chain: bool = False, strict: bool = False):
    (tmp_path / "ca.pem").write_bytes(_pem_all(case.anchors))
    store = TrustStore.load([tmp_path / "ca.pem"])
    crls = None
    if case.crls:
        (tmp_path / "crl.pem").write_bytes(b"".join(case.crls))
        crls = CrlSet.load([tmp_path / "crl.pem"])
    return check_chain([i.der for i in case.chain], side=case.side, at=AT, store=store, crls=crls,
                       hostname=case.host, now=AT, security_level=level, partial_chain=partial_chain,
                       x509_strict=strict)


# (case, variant) -> (what openssl says, why tlsscope says otherwise)
DEVIATIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("intermediate_revoked", "level2"): (
        "ok",
        "with --crl tlsscope also checks the intermediates that a given CRL covers "
        "(as -crl_check_all would) but requires a CRL only for the leaf (as -crl_check does); "
        "openssl -crl_check looks at the leaf only"),
}
DEVIATIONS[("intermediate_revoked", "strict")] = DEVIATIONS[("intermediate_revoked", "level2")]

# What -x509_strict says about the strict_* cases (and v1 CAs): tlsscope with x509_strict must say the same
STRICT = {
    "strict_ca_bc_not_critical": "Basic Constraints of CA cert not marked critical",
    "strict_ca_no_key_usage": "CA cert does not include key usage extension",
    "strict_ca_no_skid": "Missing Subject Key Identifier",
    "strict_leaf_no_akid": "Missing Authority Key Identifier",
    "strict_leaf_keycertsign": "Key usage keyCertSign invalid for non-CA cert",
    "strict_akid_critical": "unhandled critical extension",
    "strict_pathlen_without_key_usage": "Path length given without key usage keyCertSign",
    "strict_akid_without_keyid": "Missing Authority Key Identifier",
    "strict_root_bc_not_critical": "Basic Constraints of CA cert not marked critical",
    "v1_anchor": "invalid CA certificate",
    "v1_intermediate": "invalid CA certificate",
}

# Variants: (name, tlsscope security level, extra openssl options, cases); "strict" runs tlsscope with
# x509_strict against -x509_strict on every case of the matrix
VARIANTS = {
    "level1": (1, ["-auth_level", "1"], ["sha1_leaf", "md5_leaf", "rsa1024_leaf", "rsa1024_intermediate",
                                         "sha1_anchor", "good"]),
    "level0": (0, [], ["sha1_leaf", "md5_leaf", "rsa1024_leaf", "rsa1024_intermediate", "good"]),
    "strict": (2, ["-auth_level", "2", "-x509_strict"], sorted(cases())),
}

# -partial_chain against tlsscope's partial_chain: the default-mode cases where trust is at stake, and those
# built for it; case -> what both say with the option, or (tlsscope, openssl) for a deviation of DEVIATIONS
PARTIAL = {
    "good": "ok", "good_root_sent": "ok", "two_anchors": "ok", "intermediate_from_store": "ok",
    "intermediate_is_anchor": "ok", "leaf_itself_in_cafile": "ok", "inter_and_root_anchors": "ok",
    "wrong_ca": "unable to get local issuer certificate",
    "missing_intermediate": "unable to get local issuer certificate",
    "wrong_ca_root_sent": "self-signed certificate in certificate chain",
    "self_signed_leaf": "self-signed certificate", "self_signed_leaf_trusted": "ok",
    "expired_intermediate_anchor": "certificate has expired",
    "bad_leaf_under_intermediate_anchor": "certificate signature failure",
    "sha1_intermediate_anchor": "ok",
    "wrong_host_under_intermediate_anchor": "hostname mismatch",
    "intermediate_revoked": ("certificate revoked", DEVIATIONS[("intermediate_revoked", "level2")][0]),
    "revoked": "certificate revoked", "leaf_expired": "certificate has expired",
}


@pytest.mark.parametrize("name", sorted(cases()))
def test_matrix_against_openssl(name, tmp_path):
    case = cases()[name]
    ours = run_tlsscope(case, tmp_path)
    assert ours.openssl_status == case.want, [f.to_json() for f in ours.findings]
    assert ours.status == ("ok" if case.want == "ok" else "failed")
    codes = {f.code for f in ours.findings}
    assert case.codes <= codes, codes
    assert not case.absent & codes, codes
    theirs = run_openssl(case, tmp_path, "-auth_level", "2")
    expected_theirs, _why = DEVIATIONS.get((name, "level2"), (ours.openssl_status, ""))
    assert theirs == expected_theirs


@pytest.mark.parametrize("variant,name", [(v, n) for v, (_, _, names) in VARIANTS.items() for n in names])
def test_variants_against_openssl(variant, name, tmp_path):
    level, options, _ = VARIANTS[variant]
    case = cases()[name]
    ours = run_tlsscope(case, tmp_path, level, strict=variant == "strict")
    theirs = run_openssl(case, tmp_path, *options)
    expected_theirs, _why = DEVIATIONS.get((name, variant), (ours.openssl_status, ""))
    assert theirs == expected_theirs, (ours.openssl_status, theirs)


@pytest.mark.parametrize("name", sorted(PARTIAL))
def test_partial_chain_against_openssl(name, tmp_path):
    """tlsscope's partial_chain (--partial-chain) against `openssl verify -partial_chain`."""
    case = cases()[name]
    ours = run_tlsscope(case, tmp_path, partial_chain=True)
    theirs = run_openssl(case, tmp_path, "-auth_level", "2", "-partial_chain")
    want = PARTIAL[name] if isinstance(PARTIAL[name], tuple) else (PARTIAL[name], PARTIAL[name])
    assert (ours.openssl_status, theirs) == want, [f.to_json() for f in ours.findings]
    codes = {f.code for f in ours.findings}
    top_self_signed = ours.path and ours.path[-1] in {a.cert.subject.rfc4514_string() for a in case.anchors
                                                      if a.cert.subject == a.cert.issuer}
    if ours.status == "ok" and not top_self_signed:
        assert "partial_chain_anchor" in codes
    if ours.status == "ok" and top_self_signed:
        assert "partial_chain_anchor" not in codes


def test_partial_chain_stops_at_the_first_anchor(tmp_path):
    """With the intermediate and the root both in the store, the path ends at the intermediate, as
    `openssl verify -partial_chain -show_chain` shows."""
    case = cases()["inter_and_root_anchors"]
    ours = run_tlsscope(case, tmp_path, partial_chain=True)
    assert ours.path == (case.chain[0].cert.subject.rfc4514_string(), case.chain[1].cert.subject.rfc4514_string())
    openssl = need_tool("openssl")
    (tmp_path / "leaf.pem").write_bytes(pem(case.chain[0].cert))
    out = subprocess.run([openssl, "verify", "-partial_chain", "-show_chain", "-attime", str(int(AT.timestamp())),
                          "-CAfile", str(tmp_path / "ca.pem"), str(tmp_path / "leaf.pem")],
                         capture_output=True, text=True, timeout=20).stdout
    depths = [ln for ln in out.splitlines() if ln.startswith("depth=")]
    assert len(depths) == 2 and "CN = www.example.com (untrusted)" in depths[0], out
    assert "CN = Intermediate CA" in depths[1] and "untrusted" not in depths[1], out
    default = run_tlsscope(case, tmp_path)
    assert default.status == "ok" and len(default.path) == 3       # without the option: up to the root


@pytest.mark.parametrize("name", sorted(STRICT))
def test_x509_strict_verdicts(name, tmp_path):
    """The RFC 5280 profile violations: a finding by default, the verdict OpenSSL gives with -x509_strict
    (and Python 3.13+ clients) when tlsscope is asked to judge strictly."""
    case = cases()[name]
    ours = run_tlsscope(case, tmp_path, strict=True)
    assert ours.status == "failed" and ours.openssl_status == STRICT[name]
    assert run_openssl(case, tmp_path, "-auth_level", "2", "-x509_strict") == STRICT[name]
    default = run_tlsscope(case, tmp_path)
    assert default.openssl_status == case.want


def test_matrix_is_large_enough():
    assert len(cases()) >= 40


def test_explicit_ec_parameters_against_openssl(tmp_path):
    """A leaf whose EC key spells out its curve (openssl ecparam -param_enc explicit): OpenSSL 3 refuses it
    in a chain; cryptography loads such a key like a named-curve one, so tlsscope reads the SPKI itself."""
    import datetime

    openssl = need_tool("openssl")

    def sh(*args):
        subprocess.run([openssl, *args], cwd=tmp_path, check=True, capture_output=True, timeout=30)

    sh("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "root.key",
       "-out", "root.pem", "-subj", "/CN=Explicit Test Root", "-days", "3650",
       "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    (tmp_path / "leaf.ext").write_text("basicConstraints=CA:FALSE\nsubjectAltName=DNS:leaf.example\n")
    for name, enc in (("named", "named_curve"), ("explicit", "explicit")):
        sh("ecparam", "-name", "prime256v1", "-param_enc", enc, "-genkey", "-noout", "-out", f"{name}.key")
        sh("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        sh("x509", "-req", "-in", f"{name}.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial",
           "-out", f"{name}.pem", "-days", "30", "-extfile", "leaf.ext")
    store = TrustStore.load([tmp_path / "root.pem"])
    now = datetime.datetime.now(datetime.timezone.utc)
    for name, want in (("named", "ok"), ("explicit", "Certificate public key has explicit ECC parameters")):
        der = x509.load_pem_x509_certificate((tmp_path / f"{name}.pem").read_bytes()).public_bytes(Encoding.DER)
        ours = check_chain([der], side="server", at=now, store=store, hostname="leaf.example", now=now)
        out = subprocess.run([openssl, "verify", "-CAfile", "root.pem", f"{name}.pem"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=20)
        first = _ERROR.search(out.stdout + out.stderr)
        theirs = first.group(3).strip() if first else ("ok" if out.returncode == 0 else out.stdout)
        assert (ours.openssl_status, theirs) == (want, want)
        assert ("ec_explicit_parameters" in {f.code for f in ours.findings}) == (name == "explicit")
