"""A wallet-style OID4VCI client for the tests: what a wallet such as the
Learner Credential Wallet does with a credential offer, over real HTTP.

It shares no code with the issuer's side on purpose: its JOSE library is
jwcrypto (the issuer checks proofs with PyJWT), and it parses the offer link,
derives the well-known URLs and builds the token and credential requests from
the spec's field names itself.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import requests
from jwcrypto import jwk, jwt

PRE_AUTHORIZED_GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"


def new_key(kind: str = "EC") -> jwk.JWK:
    """A fresh holder key: P-256 (ES256) or Ed25519 (EdDSA)."""
    if kind == "Ed25519":
        return jwk.JWK.generate(kty="OKP", crv="Ed25519")
    return jwk.JWK.generate(kty="EC", crv="P-256")


def did_key(key: jwk.JWK) -> str:
    """did:key of an Ed25519 key (multicodec 0xed01, base58btc)."""
    from credentials.multibase import b58encode

    raw = json.loads(key.export_public())
    x = base64.urlsafe_b64decode(raw["x"] + "=" * (-len(raw["x"]) % 4))
    return "did:key:z" + b58encode(b"\xed\x01" + x)


def sign_proof(key: jwk.JWK, *, audience: str, nonce: str | None, iat: float | None = None,
               typ: str = "openid4vci-proof+jwt", kid: str | None = None, extra_header: dict | None = None) -> str:
    """A key proof JWT, signed with `key`; the key travels as `jwk`, or as `kid`."""
    public = json.loads(key.export_public())
    alg = "EdDSA" if public["kty"] == "OKP" else "ES256"
    header: dict = {"typ": typ, "alg": alg}
    if kid:
        header["kid"] = kid
    else:
        header["jwk"] = public
    header.update(extra_header or {})
    claims: dict = {"aud": audience, "iat": int(iat if iat is not None else time.time())}
    if nonce is not None:
        claims["nonce"] = nonce
    token = jwt.JWT(header=header, claims=claims)
    token.make_signed_token(key)
    return token.serialize()


@dataclass
class WalletClient:
    """One holder's wallet: a key, and the HTTP steps of the pre-authorized flow."""

    key: jwk.JWK = field(default_factory=new_key)
    use_kid: bool = False
    http: requests.Session = field(default_factory=requests.Session)
    log: list[str] = field(default_factory=list)

    def _get(self, url: str) -> dict:
        response = self.http.get(url, timeout=30)
        self.log.append(f"GET {url} -> {response.status_code}")
        assert response.status_code == 200, (url, response.status_code, response.text)
        assert response.headers["Content-Type"].startswith("application/json"), response.headers
        return response.json()

    def read_offer(self, link: str) -> dict:
        """The offer object from an openid-credential-offer:// link (by value or reference)."""
        parts = urlsplit(link)
        assert parts.scheme == "openid-credential-offer", link
        query = parse_qs(parts.query)
        if "credential_offer_uri" in query:
            return self._get(query["credential_offer_uri"][0])
        return json.loads(query["credential_offer"][0])

    @staticmethod
    def well_known(issuer: str, name: str) -> str:
        """RFC 8414 / OID4VCI: the well-known segment goes between host and path."""
        parts = urlsplit(issuer)
        return f"{parts.scheme}://{parts.netloc}/.well-known/{name}{parts.path.rstrip('/')}"

    def collect(self, link: str, tx_code: str | None = None) -> dict:
        """Redeem the offer and return the credential (the whole flow)."""
        offer = self.read_offer(link)
        issuer = offer["credential_issuer"]
        metadata = self._get(self.well_known(issuer, "openid-credential-issuer"))
        # The spec: the metadata names the very issuer it was fetched for, or it is not used.
        assert metadata["credential_issuer"] == issuer, (metadata["credential_issuer"], issuer)
        [configuration_id] = offer["credential_configuration_ids"]
        configuration = metadata["credential_configurations_supported"][configuration_id]
        assert configuration["format"] == "ldp_vc"
        algs = configuration["proof_types_supported"]["jwt"]["proof_signing_alg_values_supported"]
        assert ("EdDSA" if json.loads(self.key.export_public())["kty"] == "OKP" else "ES256") in algs
        auth_server = (metadata.get("authorization_servers") or [issuer])[0]
        as_metadata = self._get(self.well_known(auth_server, "oauth-authorization-server"))
        assert PRE_AUTHORIZED_GRANT in as_metadata["grant_types_supported"]

        grant = offer["grants"][PRE_AUTHORIZED_GRANT]
        form = {"grant_type": PRE_AUTHORIZED_GRANT, "pre-authorized_code": grant["pre-authorized_code"]}
        if "tx_code" in grant:
            assert tx_code is not None, "the offer asks for a PIN"
            form["tx_code"] = tx_code
        self.token = self.redeem(as_metadata["token_endpoint"], form)
        nonce = self.fresh_nonce(metadata["nonce_endpoint"])
        kid = did_key(self.key) if self.use_kid else None
        proof = sign_proof(self.key, audience=issuer, nonce=nonce,
                           kid=f"{kid}#{kid.removeprefix('did:key:')}" if kid else None)
        response = self.request_credential(metadata["credential_endpoint"], self.token["access_token"],
                                           {"credential_configuration_id": configuration_id,
                                            "proofs": {"jwt": [proof]}})
        assert response.status_code == 200, response.text
        [issued] = response.json()["credentials"]
        return issued["credential"]

    def redeem(self, token_endpoint: str, form: dict) -> dict:
        response = self.http.post(token_endpoint, data=form, timeout=30)
        self.log.append(f"POST {token_endpoint} -> {response.status_code}")
        assert response.status_code == 200, response.text
        assert response.headers.get("Cache-Control") == "no-store"
        body = response.json()
        assert body["token_type"] == "Bearer" and body["access_token"], body
        return body

    def fresh_nonce(self, nonce_endpoint: str) -> str:
        response = self.http.post(nonce_endpoint, timeout=30)
        self.log.append(f"POST {nonce_endpoint} -> {response.status_code}")
        assert response.status_code == 200 and response.headers.get("Cache-Control") == "no-store"
        return response.json()["c_nonce"]

    def request_credential(self, endpoint: str, access_token: str, body: dict) -> requests.Response:
        response = self.http.post(endpoint, json=body, headers={"Authorization": f"Bearer {access_token}"},
                                  timeout=30)
        self.log.append(f"POST {endpoint} -> {response.status_code}")
        return response
