"""The holder's side of a credential: its public share page, the holder's
secret management link, and the "Add to LinkedIn profile" link.

The holder has no account. The registrar makes a *holder's link*
(`/h/<token>`) and hands it to the graduate; whoever holds the token manages
the credential's share page. Only sha256 of the token is stored, so the
database alone cannot open anyone's holder page; making a new link replaces the
old one (a leaked link is cured by making another).

The share page (`/s/<slug>`) is a persistent public URL per credential. Its
slug is random and unrelated to the credential id, so a share link does not
let anyone guess other credentials' links. Sharing is on when the holder's
link is made (the certificate's QR link `/v/<id>` shows the same verification
already); the holder turns it off and on.

Plain functions over a SQLAlchemy session, no Flask: the web layer and the
tests call them alike. Migrations 1201-1299 are this module's and
`credentials.oid4vci`'s.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote, urlencode

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, String, select
from sqlalchemy.orm import Session

from kernel.database import Base, create_tables, migration, utcnow

LINKEDIN_ADD_URL = "https://www.linkedin.com/profile/add"
# 128 bits for the public slug (it only has to be unguessable), 256 for the
# holder's secret token.
SLUG_BYTES = 16
TOKEN_BYTES = 32


class CredentialShare(Base):
    """One row per credential that has a holder's link or a share page."""

    __tablename__ = "credential_shares"
    credential_id = Column(String(64), ForeignKey("credentials.id"), primary_key=True)
    slug = Column(String(64), nullable=False, unique=True)
    sharing = Column(Boolean, nullable=False, default=True)
    # sha256 hex of the holder's token; None until the registrar makes a link.
    holder_token_hash = Column(String(64), nullable=True, unique=True)
    holder_link_made_at = Column(DateTime, nullable=True)
    holder_link_made_by = Column(String(255), nullable=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow)


@migration("1201_credential_shares")
def _create_shares(conn) -> None:
    create_tables(conn, CredentialShare)


def token_hash(token: str) -> str:
    """What is stored for a secret token (tokens carry 256 bits, so a plain
    sha256 cannot be reversed by guessing)."""
    return hashlib.sha256(token.encode()).hexdigest()


def get_share(session: Session, credential_id: str) -> CredentialShare | None:
    return session.get(CredentialShare, credential_id)


def ensure_share(session: Session, credential_id: str) -> CredentialShare:
    """The credential's share row, made (sharing on, a fresh slug) if missing."""
    share = get_share(session, credential_id)
    if share is None:
        share = CredentialShare(credential_id=credential_id, slug=secrets.token_urlsafe(SLUG_BYTES),
                                sharing=True, created_at=utcnow(), updated_at=utcnow())
        session.add(share)
        session.flush()
    return share


def make_holder_link(session: Session, credential_id: str, actor: str) -> tuple[CredentialShare, str]:
    """A new holder's token for the credential (the old one stops working).
    Returns the share row and the token, which is shown once and never stored."""
    share = ensure_share(session, credential_id)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    share.holder_token_hash = token_hash(token)
    share.holder_link_made_at = share.updated_at = utcnow()
    share.holder_link_made_by = actor
    return share, token


def share_for_token(session: Session, token: str) -> CredentialShare | None:
    """The share whose holder's token is `token`, or None (a wrong, replaced or
    malformed token alike)."""
    if not token or len(token) > 128:
        return None
    wanted = token_hash(token)
    share = session.scalar(select(CredentialShare).where(CredentialShare.holder_token_hash == wanted))
    # The lookup is by hash already; compare once more in constant time so a
    # database collation quirk can never make two different hashes "equal".
    if share is None or not hmac.compare_digest(share.holder_token_hash or "", wanted):
        return None
    return share


def share_for_slug(session: Session, slug: str) -> CredentialShare | None:
    if not slug or len(slug) > 64:
        return None
    return session.scalar(select(CredentialShare).where(CredentialShare.slug == slug))


def set_sharing(share: CredentialShare, on: bool) -> bool:
    """Turn the share page on or off; True when that changed anything."""
    if share.sharing == on:
        return False
    share.sharing = on
    share.updated_at = utcnow()
    return True


# ----- LinkedIn ---------------------------------------------------------------------

@dataclass(frozen=True)
class LinkedInCertification:
    """What LinkedIn's "Add to profile" form is pre-filled with."""

    name: str
    organization_name: str
    issued: date
    cert_url: str
    cert_id: str
    expires: date | None = None
    # LinkedIn's numeric company id, when the institution knows its own: LinkedIn
    # then links the entry to the organisation's page instead of plain text.
    organization_id: str | None = None


def linkedin_add_url(cert: LinkedInCertification) -> str:
    """LinkedIn's add-to-profile URL for a certification (the documented
    "Add to Profile for Certifications" link): `startTask=CERTIFICATION_NAME`,
    `name`, `organizationId` or `organizationName`, `issueYear`/`issueMonth`,
    `expirationYear`/`expirationMonth` (only when the credential expires),
    `certUrl` and `certId`. Months are 1-12."""
    params: list[tuple[str, str]] = [("startTask", "CERTIFICATION_NAME"), ("name", cert.name)]
    if cert.organization_id:
        params.append(("organizationId", cert.organization_id))
    else:
        params.append(("organizationName", cert.organization_name))
    params += [("issueYear", str(cert.issued.year)), ("issueMonth", str(cert.issued.month))]
    if cert.expires is not None:
        params += [("expirationYear", str(cert.expires.year)), ("expirationMonth", str(cert.expires.month))]
    params += [("certUrl", cert.cert_url), ("certId", cert.cert_id)]
    # %20 rather than "+" for spaces: every URL parser reads it the same way.
    return f"{LINKEDIN_ADD_URL}?{urlencode(params, quote_via=quote)}"


def share_url(public_base: str, slug: str) -> str:
    """The absolute URL of a share page."""
    return f"{public_base.rstrip('/')}/s/{slug}"


def holder_url(public_base: str, token: str) -> str:
    """The absolute URL of the holder's page (secret: shown once)."""
    return f"{public_base.rstrip('/')}/h/{token}"
