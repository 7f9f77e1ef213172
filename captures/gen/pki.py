"""Certificates made with the openssl command line, as people make them."""

from __future__ import annotations

import zlib
from pathlib import Path

from .proc import run

GOOD_DAYS = 7300   # 20 years: committed captures keep verifying

CA_CNF = """\
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
crlnumber = $dir/crlnumber
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = {md}
default_days = {days}
default_crl_days = {days}
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
preserve = yes
[ policy_any ]
countryName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = unused
[ v3_root ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ v3_root_no_ku ]
# what `openssl req -x509` makes with Debian's default openssl.cnf (its v3_ca has no keyUsage)
basicConstraints = critical, CA:true
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always, issuer
"""

EXT = {
    "server": "basicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature, keyEncipherment\n"
              "extendedKeyUsage = serverAuth\n",
    "client": "basicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature\n"
              "extendedKeyUsage = clientAuth\n",
    "ca": "basicConstraints = critical, CA:true{pathlen}\nkeyUsage = critical, keyCertSign, cRLSign\n",
}


def genkey(out: Path, *, bits: int = 2048, kind: str = "rsa") -> Path:
    if kind == "ec":
        run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(out)],
            out.parent)
    else:
        run(["openssl", "genrsa", "-out", str(out), str(bits)], out.parent)
    return out


def classic_sha1_pki(work: Path, *, server_cn: str, client_cn: str, org: str) -> dict[str, Path]:
    """The much-copied recipe: genrsa, req, x509 -req -signkey -sha1; X.509 v1, no extensions at all."""
    work.mkdir(parents=True, exist_ok=True)
    out = {}

    def w(*cmd: str) -> None:
        run(list(cmd), work)

    w("openssl", "genrsa", "-out", "ca.key", "2048")
    w("openssl", "req", "-new", "-key", "ca.key", "-subj", f"/O={org}/CN={org} CA", "-out", "ca.csr")
    w("openssl", "x509", "-req", "-in", "ca.csr", "-signkey", "ca.key", "-sha1", "-days", str(GOOD_DAYS),
      "-out", "ca.pem")
    for name, cn in (("server", server_cn), ("client", client_cn)):
        w("openssl", "genrsa", "-out", f"{name}.key", "2048")
        w("openssl", "req", "-new", "-key", f"{name}.key", "-subj", f"/O={org}/CN={cn}", "-out", f"{name}.csr")
        w("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
          "-CAcreateserial", "-sha1", "-days", str(GOOD_DAYS), "-out", f"{name}.pem")
    for name in ("ca", "server", "client"):
        out[f"{name}.pem"] = work / f"{name}.pem"
        out[f"{name}.key"] = work / f"{name}.key"
    return out


class CA:
    """A CA run with `openssl ca` (index, serials, CRLs); root when parent is None."""

    def __init__(self, work: Path, name: str, cn: str, *, parent: "CA | None" = None, bits: int = 2048,
                 md: str = "sha256", pathlen: int | None = None, org: str = "tlsscope test PKI",
                 root_extensions: str = "v3_root"):
        self.dir = work / f"ca-{name}"
        self.name, self.org, self.md = name, org, md
        (self.dir / "newcerts").mkdir(parents=True, exist_ok=True)
        (self.dir / "index.txt").write_text("")
        # distinct, reproducible serial ranges per CA
        (self.dir / "serial").write_text(f"{zlib.crc32(name.encode()) & 0xFFFF:04X}1000\n")
        (self.dir / "crlnumber").write_text("01\n")
        self.cnf = self.dir / "ca.cnf"
        self.cnf.write_text(CA_CNF.format(dir=self.dir, md=md, days=GOOD_DAYS))
        self.key = genkey(self.dir / "ca.key", bits=bits)
        self.cert = self.dir / "ca.pem"
        self.parent = parent
        subj = f"/O={org}/CN={cn}"
        if parent is None:
            run(["openssl", "req", "-x509", "-new", "-config", str(self.cnf), "-extensions", root_extensions,
                 "-key", str(self.key), f"-{md}", "-days", str(GOOD_DAYS), "-subj", subj, "-out", str(self.cert)],
                self.dir)
        else:
            parent._sign(self.dir / "ca.csr", self.key, subj, self.cert, kind="ca", pathlen=pathlen)

    def _sign(self, csr: Path, key: Path, subj: str, out: Path, *, kind: str, sans: tuple[str, ...] = (),
              pathlen: int | None = None, startdate: str | None = None, enddate: str | None = None) -> None:
        run(["openssl", "req", "-new", "-config", str(self.cnf), "-key", str(key), "-subj", subj, "-out", str(csr)],
            self.dir)
        ext = EXT[kind].format(pathlen=f", pathlen:{pathlen}" if pathlen is not None else "")
        ext += "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"
        if sans:
            ext += "subjectAltName = " + ", ".join(
                (f"IP:{s}" if s.replace(".", "").isdigit() or ":" in s else f"DNS:{s}") for s in sans) + "\n"
        extfile = csr.with_suffix(".ext")
        extfile.write_text("[ ext ]\n" + ext)
        cmd = ["openssl", "ca", "-batch", "-notext", "-config", str(self.cnf), "-in", str(csr), "-out", str(out),
               "-extfile", str(extfile), "-extensions", "ext"]
        cmd += ["-startdate", startdate, "-enddate", enddate] if startdate else ["-days", str(GOOD_DAYS)]
        run(cmd, self.dir)
        # keep only the PEM block, whatever text an openssl version puts before it
        pem = out.read_text()
        out.write_text(pem[pem.index("-----BEGIN CERTIFICATE-----"):])

    def issue(self, dest: Path, name: str, cn: str, *, kind: str = "server", sans: tuple[str, ...] = (),
              bits: int = 2048, key_kind: str = "rsa", startdate: str | None = None,
              enddate: str | None = None) -> tuple[Path, Path]:
        """Key and certificate `dest/name.key`, `dest/name.pem`."""
        dest.mkdir(parents=True, exist_ok=True)
        key = genkey(dest / f"{name}.key", bits=bits, kind=key_kind)
        cert = dest / f"{name}.pem"
        self._sign(self.dir / f"{name}.csr", key, f"/O={self.org}/CN={cn}", cert, kind=kind, sans=sans,
                   startdate=startdate, enddate=enddate)
        return cert, key

    def revoke(self, cert: Path, reason: str = "keyCompromise") -> None:
        run(["openssl", "ca", "-batch", "-config", str(self.cnf), "-revoke", str(cert), "-crl_reason", reason],
            self.dir)

    def ocsp_response(self, cert: Path, out: Path, *, ndays: int = 7) -> Path:
        """A DER OCSP response for ``cert``, signed by this CA from its index (good or revoked), as
        `openssl s_server -status_file` staples it."""
        run(["openssl", "ocsp", "-index", str(self.dir / "index.txt"), "-rsigner", str(self.cert), "-rkey",
             str(self.key), "-CA", str(self.cert), "-issuer", str(self.cert), "-cert", str(cert.resolve()),
             "-respout", str(out.resolve()), "-ndays", str(ndays)], self.dir)
        return out

    def gencrl(self, out: Path) -> Path:
        run(["openssl", "ca", "-batch", "-config", str(self.cnf), "-gencrl", "-out", str(out)], self.dir)
        return out


def bundle(out: Path, *parts: Path) -> Path:
    out.write_text("".join(p.read_text() for p in parts))
    return out
