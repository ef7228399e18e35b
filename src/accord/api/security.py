"""TAK Server's security-authentication API, read-only (what CloudTAK's admin pages show).

- ``GET /Marti/api/security/config`` (admin): the TLS and CA settings as ``SecurityConfigInfo``;
  passwords are never sent (Accord's keys are PEM files without one).
- ``GET /Marti/api/authentication/config`` (admin): the LDAP settings as
  ``AuthenticationConfigInfo``; Accord has no LDAP, so every member is empty.
- ``GET /Marti/api/security/isSecure``: ``"true"`` when no listener accepts unencrypted
  traffic, else the list of those ports (``"[8087, 8080]"``), as TAK Server answers.
- ``GET /Marti/api/security/verifyConfig``: ``"true"`` when the server certificate and the CA
  certificate are in place, else 400 naming the missing file.

The ``PUT``/``POST`` variants (changing TLS or LDAP settings at run time) are not served:
Accord's settings live in its configuration file and its PKI directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from accord.api.marti import AdminCheck, Caller, admin_only, authorised, envelope
from accord.domain.groups import Membership
from accord.identity.ca import PkiPaths

TLS_VERSION = "TLSv1.2"  # the lowest version every Accord listener accepts
CA_TYPE = "TAKServer"  # TAK Server's CAType for a CA the server itself holds


@dataclass(frozen=True)
class SecuritySettings:
    pki: PkiPaths
    enrollment: bool  # the enrollment port is on
    validity_days: int  # of the client certificates the CA issues
    plain_ports: Callable[[], list[int]]  # listeners without TLS, now


def security_config(settings: SecuritySettings) -> dict[str, Any]:
    pki = settings.pki
    return {
        "keystoreFile": str(pki.server_cert),
        "truststoreFile": str(pki.ca_cert),
        "keystorePass": "",
        "truststorePass": "",
        "tlsVersion": TLS_VERSION,
        "x509Groups": True,  # a certificate's OUs are its groups (unless the groups file says)
        "x509addAnon": False,
        "enableEnrollment": settings.enrollment,
        "caType": CA_TYPE,
        "signingKeystoreFile": str(pki.ca_cert),
        "signingKeystorePass": "",
        "validityDays": settings.validity_days,
        "mscaUserName": None,
        "mscaPassword": None,
        "mscaTruststore": None,
        "mscaTruststorePass": None,
        "mscaTemplateName": None,
    }


AUTHENTICATION_CONFIG: dict[str, Any] = {
    "url": "",
    "userString": "",
    "updateInterval": 0,
    "groupPrefix": "",
    "serviceAccountDN": "",
    "serviceAccountCredential": "",
    "groupBaseRDN": "",
}


def security_routes(
    settings: SecuritySettings, caller: Caller, is_admin: AdminCheck
) -> list[BaseRoute]:
    async def sec_config(request: Request, who: Membership) -> Response:
        return JSONResponse(
            envelope("com.bbn.marti.remote.SecurityConfigInfo", security_config(settings))
        )

    async def auth_config(request: Request, who: Membership) -> Response:
        return JSONResponse(
            envelope("com.bbn.marti.remote.AuthenticationConfigInfo", AUTHENTICATION_CONFIG)
        )

    async def is_secure(request: Request, who: Membership) -> Response:
        plain = sorted(settings.plain_ports())
        answer = "true" if not plain else "[" + ", ".join(str(p) for p in plain) + "]"
        return JSONResponse(envelope("isSecure?", answer))

    async def verify_config(request: Request, who: Membership) -> Response:
        for what, path in (
            ("Keystore", settings.pki.server_cert),
            ("Truststore", settings.pki.ca_cert),
        ):
            if not path.is_file():
                message = f"Failed to verify config - {what} File specified does not exist"
                return JSONResponse(envelope("verifyConfig?", message), status_code=400)
        return JSONResponse(envelope("verifyConfig?", "true"))

    return [
        Route(
            "/Marti/api/security/config",
            admin_only(caller, is_admin, sec_config),
            methods=["GET"],
        ),
        Route(
            "/Marti/api/authentication/config",
            admin_only(caller, is_admin, auth_config),
            methods=["GET"],
        ),
        Route("/Marti/api/security/isSecure", authorised(caller, is_secure), methods=["GET"]),
        Route(
            "/Marti/api/security/verifyConfig", authorised(caller, verify_config), methods=["GET"]
        ),
    ]
