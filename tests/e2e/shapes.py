"""The JSON shapes TAK clients validate, written down from node-tak's TypeBox schemas
(``lib/api/*.ts``), and a checker that names the first member that does not fit."""

from __future__ import annotations

import datetime as dt
from typing import Any

NULL = type(None)
DATE_TIME = "date-time"  # an RFC 3339 string (TypeBox ``format: 'date-time'``)
# A member the schema marks Optional: absent, or of the given type.
Optional = tuple[str, Any]


def envelope(data: Any) -> dict[str, Any]:
    """``TAKItem``: version and type strings, the data, optional messages and nodeId."""
    return {"version": str, "type": str, "data": data}


GROUP = {
    "name": str,
    "direction": str,
    "created": str,
    "type": str,
    "bitpos": int,
    "active": bool,
}

SUBSCRIPTION = {
    "dn": (str, NULL),
    "callsign": str,
    "clientUid": str,
    "lastReportMilliseconds": int,
    "takClient": str,
    "takVersion": str,
    "username": str,
    "groups": [GROUP],
    "role": str,
    "team": str,
    "ipAddress": str,
    "port": str,
    "pendingWrites": int,
    "numProcessed": int,
    "protocol": str,
    "xpath": (str, NULL),
    "subscriptionUid": str,
    "appFramerate": str,
    "battery": str,
    "batteryStatus": str,
    "batteryTemp": str,
    "deviceDataRx": str,
    "deviceDataTx": str,
    "heapCurrentSize": str,
    "heapFreeSize": str,
    "heapMaxSize": str,
    "deviceIPAddress": str,
    "storageAvailable": str,
    "storageTotal": str,
    "incognito": bool,
    "handlerType": str,
    "lastReportDiffMilliseconds": int,
}

CERTIFICATE = {
    "id": int,
    "creatorDn": str,
    "subjectDn": str,
    "userDn": str,
    "certificate": str,
    "hash": str,
    "clientUid": str,
    "issuanceDate": DATE_TIME,
    "expirationDate": DATE_TIME,
    "effectiveDate": DATE_TIME,
    "revocationDate": ("optional", DATE_TIME),
    "token": str,
    "serialNumber": str,
}

SECURITY_CONFIG = {
    "keystoreFile": str,
    "truststoreFile": str,
    "keystorePass": str,
    "truststorePass": str,
    "tlsVersion": str,
    "x509Groups": bool,
    "x509addAnon": bool,
    "enableEnrollment": bool,
    "caType": str,
    "signingKeystoreFile": str,
    "signingKeystorePass": str,
    "validityDays": (int, float),
    "mscaUserName": (str, NULL),
    "mscaPassword": (str, NULL),
    "mscaTruststore": (str, NULL),
    "mscaTruststorePass": (str, NULL),
    "mscaTemplateName": (str, NULL),
}

AUTH_CONFIG = {
    "url": str,
    "userString": str,
    "updateInterval": (int, float),
    "groupPrefix": str,
    "serviceAccountDN": str,
    "serviceAccountCredential": str,
    "groupBaseRDN": str,
}

FEED = {
    "uuid": str,
    "active": bool,
    "alias": str,
    "url": str,
    "order": (int, NULL),
    "macAddress": str,
    "roverPort": str,
    "ignoreEmbeddedKLV": str,
    "source": (str, NULL),
    "networkTimeout": str,
    "bufferTime": str,
    "rtspReliable": str,
    "thumbnail": (str, NULL),
    "classification": (str, NULL),
    "latitude": (str, NULL),
    "longitude": (str, NULL),
    "fov": (str, NULL),
    "heading": (str, NULL),
    "range": (str, NULL),
    "width": (int, NULL),
    "height": (int, NULL),
    "bitrate": (int, NULL),
}

VIDEO_CONNECTION = {
    "uuid": str,
    "active": bool,
    "alias": str,
    "thumbnail": (str, NULL),
    "classification": (str, NULL),
    "feeds": [FEED],
}

SYNC_RESULT = {  # /Marti/sync/search results (node-tak's Content, plus EXPIRATION)
    "UID": str,
    "SubmissionDateTime": str,
    "Keywords": [str],
    "MIMEType": str,
    "SubmissionUser": str,
    "PrimaryKey": str,
    "Hash": str,
    "CreatorUid": str,
    "Name": str,
    "EXPIRATION": str,
}


def check(value: Any, shape: Any, where: str = "$") -> None:
    """Raise AssertionError naming the first member of ``value`` that ``shape`` rejects."""
    if isinstance(shape, dict):
        assert isinstance(value, dict), f"{where}: {value!r} is not an object"
        for key, member in shape.items():
            if isinstance(member, tuple) and member and member[0] == "optional":
                if key in value:
                    check(value[key], member[1], f"{where}.{key}")
                continue
            assert key in value, f"{where}: no member {key!r}"
            check(value[key], member, f"{where}.{key}")
    elif isinstance(shape, list):
        assert isinstance(value, list), f"{where}: {value!r} is not a list"
        for index, item in enumerate(value):
            check(item, shape[0], f"{where}[{index}]")
    elif shape == DATE_TIME:
        assert isinstance(value, str), f"{where}: {value!r} is not a string"
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif isinstance(shape, tuple):
        assert any(_is(value, kind) for kind in shape), f"{where}: {value!r} is none of {shape}"
    else:
        assert _is(value, shape), f"{where}: {value!r} is not {shape.__name__}"


def _is(value: Any, kind: Any) -> bool:
    if kind is int or kind is float:
        return isinstance(value, (int, float) if kind is float else int) and not isinstance(
            value, bool
        )
    return isinstance(value, kind)
