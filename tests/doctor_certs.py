"""Test certificates made with the cryptography library: a CA, server and client certs.

make_pki(dir) writes, under dir:
  server/{ca,cert,key}.pem   server cert for the SANs given (default 127.0.0.2 only)
  good/{ca,cert,key}.pem     a client cert with clientAuth, valid for a year
  expired/{ca,cert,key}.pem  a client cert that expired yesterday
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def key():
    return ec.generate_private_key(ec.SECP256R1())


def make_ca(name="ddctl test CA"):
    k = key()
    subj = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subj)
        .issuer_name(subj)
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - DAY)
        .not_valid_after(_now() + 365 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(k, hashes.SHA256())
    )
    return cert, k


def issue(ca, ca_key, cn, usage, ips=(), names=(), start=None, end=None, k=None):
    k = k or key()
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.subject)
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start or _now() - DAY)
        .not_valid_after(end or _now() + 365 * DAY)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    sans = [x509.IPAddress(ipaddress.ip_address(i)) for i in ips] + [x509.DNSName(n) for n in names]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(ca_key, hashes.SHA256()), k


def pem(obj):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def write_set(d, ca, cert, k):
    os.makedirs(d, exist_ok=True)
    for name, obj in (("ca.pem", ca), ("cert.pem", cert), ("key.pem", k)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(pem(obj))
    os.chmod(os.path.join(d, "key.pem"), 0o600)  # as docker-machine writes it (the doctor checks)
    return d


def make_pki(base, server_ips=("127.0.0.2",), server_names=()):
    ca, ca_key = make_ca()
    server, skey = issue(
        ca, ca_key, "ddctl test daemon", ExtendedKeyUsageOID.SERVER_AUTH, server_ips, server_names
    )
    good, gkey = issue(ca, ca_key, "ddctl test client", ExtendedKeyUsageOID.CLIENT_AUTH)
    old, okey = issue(
        ca,
        ca_key,
        "ddctl expired client",
        ExtendedKeyUsageOID.CLIENT_AUTH,
        start=_now() - 400 * DAY,
        end=_now() - DAY,
    )
    return {
        "ca": ca,
        "ca_key": ca_key,
        "server": write_set(os.path.join(base, "server"), ca, server, skey),
        "good": write_set(os.path.join(base, "good"), ca, good, gkey),
        "expired": write_set(os.path.join(base, "expired"), ca, old, okey),
    }
