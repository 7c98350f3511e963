"""The certificates the API server is started with chain up and name the right things."""

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tailor_devcluster.pki import create_pki


def test_certificates_chain_to_the_ca_and_carry_what_kubernetes_reads(tmp_path):
    pki = create_pki(tmp_path)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    admin = x509.load_pem_x509_certificate(pki.admin_cert.read_bytes())
    for cert in (server, admin):
        cert.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert any(str(ip) == "127.0.0.1" for ip in names.get_values_for_type(x509.IPAddress))
    # The API server maps the organisation to a group: system:masters is cluster-admin.
    groups = [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert groups == ["system:masters"]
    assert oct(pki.admin_key.stat().st_mode & 0o777) == "0o600"
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
