"""Certificate checks with the cryptography library; pure functions on files and bytes.

check_client_files() looks at DOCKER_CERT_PATH's ca.pem / cert.pem / key.pem the way the
daemon will; server_names() and name_matches() read and compare the SANs of the server
certificate obtained in a handshake (see checks.check_server_cert).
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

SOON = datetime.timedelta(days=30)


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def not_after(cert):
    return getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(
        tzinfo=datetime.timezone.utc
    )


def not_before(cert):
    return getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before.replace(
        tzinfo=datetime.timezone.utc
    )


def load_cert(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        return x509.load_der_x509_certificate(data)


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def _public_bytes(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def issued_by(cert, ca):
    """True when `ca` signed `cert`."""
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except Exception:
        return False


def validity_problem(cert, what, at=None):
    """(status, sentence) about the validity window, or None when it is fine."""
    at = at or now()
    end, start = not_after(cert), not_before(cert)
    if end < at:
        return "fail", f"{what} expired on {end:%Y-%m-%d}"
    if start > at:
        return "fail", f"{what} is not valid before {start:%Y-%m-%d} (is the clock right?)"
    if end - at < SOON:
        return "warn", f"{what} expires on {end:%Y-%m-%d}, in {(end - at).days} days"
    return None


def check_client_files(ca_path, cert_path, key_path, at=None):
    """Problems with a client's TLS files: a list of (status, sentence), worst first.

    Looks for: missing or unreadable files, unparsable PEM, a key that is not the
    certificate's, a certificate not signed by ca.pem, no clientAuth usage, expiry.
    """
    problems, loaded = [], {}
    for label, path, loader in (
        ("ca.pem", ca_path, load_cert),
        ("cert.pem", cert_path, load_cert),
        ("key.pem", key_path, load_key),
    ):
        if not path:
            continue
        if not os.path.exists(path):
            problems.append(("fail", f"{label} is missing ({path})"))
            continue
        if not os.access(path, os.R_OK):
            problems.append(("fail", f"{label} is not readable by this user ({path})"))
            continue
        try:
            loaded[label] = loader(path)
        except Exception as exc:
            problems.append(("fail", f"{label} cannot be read as PEM ({type(exc).__name__}: {exc})"))
    ca, cert, key = loaded.get("ca.pem"), loaded.get("cert.pem"), loaded.get("key.pem")
    if (
        cert is not None
        and key is not None
        and _public_bytes(cert.public_key()) != _public_bytes(key.public_key())
    ):
        problems.append(("fail", "key.pem is not the key of cert.pem"))
    if cert is not None and ca is not None and not issued_by(cert, ca):
        problems.append(
            (
                "fail",
                f"cert.pem was not issued by ca.pem (issuer {cert.issuer.rfc4514_string()}, "
                f"ca.pem is {ca.subject.rfc4514_string()})",
            )
        )
    if cert is not None:
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
                problems.append(
                    (
                        "fail",
                        "cert.pem is not usable for client authentication "
                        "(no clientAuth in its extended key usage)",
                    )
                )
        except x509.ExtensionNotFound:
            pass
        p = validity_problem(cert, "cert.pem", at)
        if p:
            problems.append(p)
    if ca is not None:
        p = validity_problem(ca, "ca.pem", at)
        if p:
            problems.append(p)
    problems.sort(key=lambda p: p[0] != "fail")
    return problems


def server_names(cert):
    """The SAN IP addresses and DNS names of a certificate (CN when it has no SAN)."""
    ips, names = [], []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        names = list(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        names = [c.value for c in cns]
    return ips, names


def name_matches(host, ips, names):
    """Would a client that checks hostnames accept `host` for these SANs?"""
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
        return any(ipaddress.ip_address(i) == addr for i in ips)
    except ValueError:
        pass
    host = host.lower().rstrip(".")
    for n in names:
        n = n.lower().rstrip(".")
        if n == host:
            return True
        if n.startswith("*.") and "." in host and host.split(".", 1)[1] == n[2:]:
            return True
    return False
