"""What an operator hands a device: its connection package (``accord package``, the admin API).

One code path for both, so a package downloaded from the admin pages is the one the command
writes: the CA as truststore and, unless the device enrols, a fresh client certificate with a
random password (a lost package is revoked without touching any other device).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from accord.identity.ca import PkiPaths, load_authority
from accord.identity.p12 import DEFAULT_PASSWORD, encode_truststore, new_password
from accord.identity.package import (
    Endpoint,
    Flavour,
    Identity,
    P12File,
    client_filename,
    connection_package,
    enrollment_package,
    truststore_filename,
)
from accord.identity.pki import issue_client_bundle


def issue_package(
    paths: PkiPaths,
    endpoint: Endpoint,
    username: str,
    now: dt.datetime,
    *,
    uid: str,
    random_bytes: Callable[[int], bytes],
    flavour: Flavour = "atak",
    enroll: bool = False,
) -> bytes:
    """The zip for ``username`` (a client certificate is issued unless ``enroll``)."""
    ca = load_authority(paths)
    host = endpoint.host
    truststore = P12File(
        truststore_filename(host), encode_truststore([ca.cert], DEFAULT_PASSWORD), DEFAULT_PASSWORD
    )
    identity = Identity(callsign=username)
    if enroll:
        return enrollment_package(
            endpoint, truststore, uid=uid, now=now, flavour=flavour, identity=identity
        )
    password = new_password(random_bytes)
    bundle = issue_client_bundle(paths, username, now, password=password)
    client = P12File(client_filename(username, host), bundle, password)
    return connection_package(
        endpoint, truststore, client, uid=uid, now=now, flavour=flavour, identity=identity
    )
