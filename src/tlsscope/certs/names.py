"""Distinguished names: OpenSSL-style comparison and the DER names of CertificateRequest.

Chain building matches an issuer to a subject by name the way OpenSSL's X509_NAME_cmp does
on canonical encodings: attribute values compared case-insensitively with inner white
space folded. CertificateRequest.certificate_authorities carries bare DER DNs; cryptography
has no loader for a lone Name, so a small DER walk turns them into x509.Name.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from tlsscope.codec import DecodeError, Reader

_SPACES = re.compile(r"\s+")

# DER string types a DN attribute may use, and how to read their bytes as text.
_STRING_TAGS = {
    0x0C: "utf-8",       # UTF8String
    0x13: "ascii",       # PrintableString
    0x14: "latin-1",     # T61String (treated as Latin-1, as OpenSSL does)
    0x16: "ascii",       # IA5String
    0x1A: "ascii",       # VisibleString
    0x1E: "utf-16-be",   # BMPString
    0x1C: "utf-32-be",   # UniversalString
}


def name_key(name: x509.Name) -> tuple:
    """A value equal for names OpenSSL's X509_NAME_cmp considers equal."""
    rdns = []
    for rdn in name.rdns:
        attrs = []
        for attr in rdn:
            value = attr.value
            if isinstance(value, str):
                value = _SPACES.sub(" ", value.strip()).casefold()
            attrs.append((attr.oid.dotted_string, value))
        rdns.append(tuple(sorted(attrs, key=repr)))
    return tuple(rdns)


def rfc4514(name: x509.Name) -> str:
    return name.rfc4514_string()


def _tlv(r: Reader, field: str) -> tuple[int, Reader]:
    tag = r.u8(field)
    first = r.u8(field)
    if first < 0x80:
        length = first
    elif first == 0x80 or first > 0x84:
        raise r.error("unsupported DER length form", field)
    else:
        length = r.uint(first & 0x7F, field)
    return tag, r.sub(length, field)


def _oid(body: bytes) -> str:
    arcs, value = [], 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        raise ValueError("empty OID")
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


def parse_der_name(der: bytes) -> x509.Name:
    """Decode a DER Name (RDNSequence); malformed input raises DecodeError."""
    r = Reader(der, "DistinguishedName")
    tag, seq = _tlv(r, "Name")
    if tag != 0x30:
        raise r.error("Name is not a SEQUENCE")
    r.expect_end("Name")
    rdns = []
    while not seq.at_end():
        tag, rdn_set = _tlv(seq, "rdn")
        if tag != 0x31:
            raise seq.error("RDN is not a SET", "rdn")
        attrs = []
        while not rdn_set.at_end():
            tag, atv = _tlv(rdn_set, "attribute")
            oid_tag, oid_body = _tlv(atv, "type")
            value_tag, value_body = _tlv(atv, "value")
            if tag != 0x30 or oid_tag != 0x06:
                raise atv.error("malformed AttributeTypeAndValue")
            try:
                oid = _oid(oid_body.rest())
                raw = value_body.rest()
                text = raw.decode(_STRING_TAGS[value_tag]) if value_tag in _STRING_TAGS else raw.hex()
                attrs.append(x509.NameAttribute(ObjectIdentifier(oid), text, _validate=False))
            except (ValueError, KeyError, UnicodeDecodeError) as exc:
                raise atv.error(f"bad attribute: {exc}") from None
        if attrs:
            rdns.append(x509.RelativeDistinguishedName(attrs))
    return x509.Name(rdns)


def describe_der_name(der: bytes) -> str:
    """RFC 4514 text of a DER DN, or its hex when it does not decode."""
    try:
        return rfc4514(parse_der_name(der))
    except (DecodeError, ValueError):
        return "<undecodable name " + der.hex() + ">"
