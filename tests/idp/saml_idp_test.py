#!/usr/bin/python3
"""The SAML 2.0 IdP stand-in (scripts/lib/idp.sh) as an independent party: started on a
free port, driven over HTTP like a browser, its response checked with pysaml2 as the SP.
Exit status 0 when every check holds."""

import base64
import html.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

import requests
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import AuthnContextClassRef
from saml2.samlp import RequestedAuthnContext

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SP_ENTITY = "http://127.0.0.1:8080/api/v1/auth/saml/bundid/metadata"
SP_ACS = "http://127.0.0.1:8080/api/v1/auth/saml/bundid/acs"
OID = {
    "given_name": "urn:oid:2.5.4.42",
    "family_name": "urn:oid:2.5.4.4",
    "birth_date": "urn:oid:1.2.40.0.10.2.1.1.55",
    "email": "urn:oid:0.9.2342.19200300.100.1.3",
    "postal_address": "urn:oid:2.5.4.16",
    "street": "urn:oid:2.5.4.9",
    "postal_code": "urn:oid:2.5.4.17",
    "locality": "urn:oid:2.5.4.7",
    "bpk2": "urn:oid:1.3.6.1.4.1.25484.494450.3",
}
URI_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"

failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)
    return condition


def bash(script, *args):
    """Runs a shell snippet with scripts/lib/common.sh and idp.sh sourced; its stdout."""
    prelude = f'source "{ROOT}/scripts/lib/common.sh"; source "{ROOT}/scripts/lib/idp.sh"; '
    return subprocess.run(["bash", "-c", prelude + script, "bash", *args], check=True,
                          stdout=subprocess.PIPE, text=True).stdout.strip()


class Forms(html.parser.HTMLParser):
    """The forms of a page: action and the named inputs' values."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action") or "", "fields": {}})
        elif tag in ("input", "button") and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value") or ""


def forms_of(page):
    parser = Forms()
    parser.feed(page)
    return parser.forms


def sp_config(tmp, idp_metadata=None):
    conf = {
        "entityid": SP_ENTITY,
        "xmlsec_binary": shutil.which("xmlsec1") or "/usr/bin/xmlsec1",
        "key_file": f"{tmp}/sp.key",
        "cert_file": f"{tmp}/sp.crt",
        "encryption_keypairs": [{"key_file": f"{tmp}/sp.key", "cert_file": f"{tmp}/sp.crt"}],
        "service": {"sp": {
            "endpoints": {"assertion_consumer_service": [(SP_ACS, BINDING_HTTP_POST)]},
            "authn_requests_signed": True,
            "want_assertions_signed": True,
            "want_response_signed": True,
            "allow_unsolicited": False,
            "name_id_format": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        }},
    }
    if idp_metadata:
        conf["metadata"] = {"local": [idp_metadata]}
    config = SPConfig()
    config.load(conf)
    return config


def log_in(client, idp_entity, user, password, level="STORK-QAA-Level-3", sign=True):
    """A browser's round trip: the signed AuthnRequest by HTTP-Redirect, the login form,
    the auto-posting form back. Returns (request id, SAMLResponse or None, last page)."""
    requested = RequestedAuthnContext(
        authn_context_class_ref=[AuthnContextClassRef(text=level)], comparison="minimum")
    req_id, info = client.prepare_for_authenticate(
        entityid=idp_entity, relay_state="/after-login", binding=BINDING_HTTP_REDIRECT,
        requested_authn_context=requested, sign=sign,
        sigalg="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    location = dict(info["headers"])["Location"]
    browser = requests.Session()
    page = browser.get(location, timeout=20)
    form = next((f for f in forms_of(page.text) if "password" in f["fields"]), None)
    if form is None:
        return req_id, None, page.text
    fields = dict(form["fields"], username=user, password=password)
    page = browser.post(urllib.parse.urljoin(page.url, form["action"]), data=fields, timeout=20)
    for f in forms_of(page.text):
        if "SAMLResponse" in f["fields"]:
            check(f["action"] == SP_ACS, f"{user}: the response is posted to our ACS ({f['action']})")
            check(f["fields"].get("RelayState") == "/after-login", f"{user}: RelayState comes back")
            return req_id, f["fields"]["SAMLResponse"], page.text
    return req_id, None, page.text


def main():
    tmp = tempfile.mkdtemp(prefix="saml-idp-test.")
    idp_dir = f"{tmp}/idp"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                        "-days", "30", "-subj", "/CN=stadtportal SAML SP (test)",
                        "-keyout", f"{tmp}/sp.key", "-out", f"{tmp}/sp.crt"],
                       check=True, stderr=subprocess.DEVNULL)
        with open(f"{tmp}/sp-metadata.xml", "w") as f:
            f.write(create_metadata_string(None, config=sp_config(tmp)).decode())

        port = bash("sp_free_port")
        pid = bash('sp_start_saml_idp "$1" "$2" "$3" "$4"', idp_dir, port,
                   f"{tmp}/sp-metadata.xml", f"{tmp}/idp.log")
        check(pid.isdigit(), f"the IdP started (pid {pid})")

        idp_entity = f"http://127.0.0.1:{port}/simplesaml/saml2/idp/metadata.php"
        metadata = requests.get(idp_entity, timeout=20)
        check(metadata.status_code == 200, "the IdP publishes its metadata")
        with open(f"{idp_dir}/cert/idp.crt") as f:
            idp_cert = "".join(f.read().split("\n")[1:-2])
        check(re.search(r'<md:KeyDescriptor use="signing">', metadata.text) is not None
              and idp_cert in metadata.text, "its metadata carries the IdP's signing certificate")
        with open(f"{tmp}/idp-metadata.xml", "w") as f:
            f.write(metadata.text)
        client = Saml2Client(config=sp_config(tmp, f"{tmp}/idp-metadata.xml"))

        # Erika, substantial (STORK-QAA-Level-3).
        req_id, saml_response, _ = log_in(client, idp_entity, "erika", "erika-test-1")
        if check(saml_response is not None, "erika: a SAMLResponse after the right password"):
            raw = base64.b64decode(saml_response).decode()
            check("EncryptedAssertion" in raw and "<saml:Assertion" not in raw,
                  "erika: the assertion is encrypted for the SP")
            # pysaml2 checks the signatures against the IdP's metadata, decrypts with our
            # key, and checks audience, recipient, InResponseTo and validity.
            response = client.parse_authn_request_response(
                saml_response, BINDING_HTTP_POST, outstanding={req_id: "/after-login"})
            check(response is not None and response.assertion is not None,
                  "erika: pysaml2 accepts the response")
            check(response.assertion.signature is not None, "erika: the assertion itself is signed")
            check(response.response.signature is not None, "erika: the response is signed")
            check(response.assertion.issuer.text == idp_entity, "erika: issued by the IdP")
            attrs = {a.name: (a.name_format, [v.text for v in a.attribute_value])
                     for st in response.assertion.attribute_statement for a in st.attribute}
            expected = {"given_name": "Erika", "family_name": "Mustermann",
                        "birth_date": "1964-08-12", "email": "erika.mustermann@example.org",
                        "postal_code": "51147", "locality": "Köln",
                        "bpk2": "bPK2-erika-0c7f3a9e5d1b4c2a"}
            for key, value in expected.items():
                check(attrs.get(OID[key]) == (URI_FORMAT, [value]),
                      f"erika: {OID[key]} ({key}) = {value!r}, NameFormat uri")
            check("assurance" not in attrs, "erika: no internal attributes released")
            classes = [c[0] for c in response.authn_info()]
            check(classes == ["STORK-QAA-Level-3"], f"erika: AuthnContextClassRef {classes}")
            check(response.assertion.subject.name_id.text == "bPK2-erika-0c7f3a9e5d1b4c2a"
                  and response.assertion.subject.name_id.format
                  == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
                  "erika: the persistent NameID is the bPK2")

        # Max, high (STORK-QAA-Level-4).
        req_id, saml_response, _ = log_in(client, idp_entity, "max", "max-test-1")
        if check(saml_response is not None, "max: a SAMLResponse"):
            response = client.parse_authn_request_response(
                saml_response, BINDING_HTTP_POST, outstanding={req_id: "/after-login"})
            classes = [c[0] for c in response.authn_info()]
            check(classes == ["STORK-QAA-Level-4"], f"max: AuthnContextClassRef {classes}")

        # A wrong password gives no assertion.
        _, saml_response, page = log_in(client, idp_entity, "erika", "wrong")
        check(saml_response is None and "SAMLResponse" not in page,
              "erika with a wrong password: no SAMLResponse")

        # An unsigned AuthnRequest gets no login form.
        _, saml_response, page = log_in(client, idp_entity, "erika", "erika-test-1", sign=False)
        check(saml_response is None and 'name="password"' not in page,
              "an unsigned AuthnRequest is refused")

        # A response for another request is refused (InResponseTo), and so is one
        # checked against a foreign IdP certificate.
        req_id, saml_response, _ = log_in(client, idp_entity, "erika", "erika-test-1")
        try:
            client.parse_authn_request_response(
                saml_response, BINDING_HTTP_POST, outstanding={"id-other": "/"})
            check(False, "a response to an unknown request is refused")
        except Exception as e:  # pysaml2 raises its own error types
            check(True, f"a response to an unknown request is refused ({type(e).__name__})")
        foreign = re.sub(re.escape(idp_cert), lambda _: open(f"{tmp}/sp.crt").read()
                         .split("\n", 1)[1].rsplit("-----END", 1)[0].replace("\n", ""),
                         metadata.text)
        with open(f"{tmp}/foreign-idp-metadata.xml", "w") as f:
            f.write(foreign)
        foreign_client = Saml2Client(config=sp_config(tmp, f"{tmp}/foreign-idp-metadata.xml"))
        try:
            r = foreign_client.parse_authn_request_response(
                saml_response, BINDING_HTTP_POST, outstanding={req_id: "/after-login"})
            check(r is None, "a response not signed by the trusted IdP key is refused")
        except Exception as e:
            check(True, f"a response not signed by the trusted IdP key is refused ({type(e).__name__})")

        # The IdP is stopped again.
        bash('sp_stop_saml_idp "$1"', idp_dir)
    finally:
        subprocess.run(["bash", "-c", f'source "{ROOT}/scripts/lib/common.sh"; '
                        f'source "{ROOT}/scripts/lib/idp.sh"; sp_stop_saml_idp "$1"',
                        "bash", idp_dir])
        if failures and os.path.exists(f"{tmp}/idp.log"):
            print("--- IdP log ---")
            print(open(f"{tmp}/idp.log").read()[-4000:])
            for name in os.listdir(f"{idp_dir}/log") if os.path.isdir(f"{idp_dir}/log") else []:
                print(open(f"{idp_dir}/log/{name}").read()[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
