"""The OpenAPI description of the admin routes for users, groups, certificates, packages, QR
codes and partners (admin_users, admin_certs, admin_partners), merged into
:data:`accord.api.openapi.SPEC` as :data:`FULL_SPEC`, which the admin API serves."""

from __future__ import annotations

from typing import Any

from accord.api.openapi import _DENIED, _INT, _STR, _TIME, SPEC, _error, _json, _obj

_NAME = {"name": "name", "in": "path", "required": True, "schema": _STR}
_CSRF = {
    "403": _error(
        "not an administrator, or a browser's request without X-Accord-CSRF or from another site"
    ),
}
_CHANGE = {**_DENIED, **_CSRF, "400": _error("the body is not valid (the reason)")}
_NULLABLE_TIME = {"oneOf": [{"type": "null"}, _TIME]}
_NAMES = {"type": "array", "items": _STR}
_DIRECTIONS = _obj({"in": _NAMES, "out": _NAMES})
_GROUP_FIELDS: dict[str, Any] = {
    "groups": {**_NAMES, "description": "member both ways"},
    "in": {**_NAMES, "description": "sends into (IN only)"},
    "out": {**_NAMES, "description": "hears (OUT only)"},
}
_GROUPS_BODY = {"type": "object", "additionalProperties": False, "properties": _GROUP_FIELDS}
_USER = _obj(
    {
        "name": _STR,
        "groups": _DIRECTIONS,
        "disabled": {"type": "boolean"},
        "created_at": _NULLABLE_TIME,
        "updated_at": _NULLABLE_TIME,
        "sessions": {**_INT, "description": "live streaming sessions of this user"},
    }
)
_GROUP = _obj(
    {
        "name": _STR,
        "members": {**_DIRECTIONS, "description": "users in the group each way"},
        "sessions": _obj({"in": _INT, "out": _INT}),
    }
)
_CERTIFICATE = _obj(
    {
        "name": {**_STR, "description": "the CN (the user)"},
        "kind": {"enum": ["client", "server"]},
        "serial": {**_STR, "description": "hexadecimal"},
        "not_after": _STR,
        "revoked": {"type": "boolean"},
        "revoked_at": {"oneOf": [{"type": "null"}, _STR]},
    }
)
_LINK = _obj(
    {
        "direction": {"enum": ["outgoing", "incoming"]},
        "state": {"enum": ["connecting", "up", "down"]},
        "since": _TIME,
        "last_error": _STR,
        "events_in": _INT,
        "events_out": _INT,
        "withheld": _INT,
        "dropped": _INT,
    }
)
_LOG = _obj(
    {
        "direction": {"enum": ["in", "out"]},
        "entries": _INT,
        "checkpoint_size": _INT,
        "cosigned_size": _INT,
        "cosignature_lag": {**_INT, "description": "entries checkpointed, not yet cosigned"},
        "receipted": _INT,
    }
)
_PARTNER = _obj(
    {
        "partner": _STR,
        "links": {"type": "array", "items": {"$ref": "#/components/schemas/Link"}},
        "policy": {
            "type": "object",
            "description": "release decisions so far: {rule: {outcome: count}}",
            "additionalProperties": {"type": "object", "additionalProperties": _INT},
        },
        "ledger": {"type": "array", "items": {"$ref": "#/components/schemas/LedgerLog"}},
    }
)
_VERIFIED = {
    "type": "object",
    "required": ["direction", "consistent", "error"],
    "properties": {
        "direction": {"enum": ["in", "out"]},
        "consistent": {"type": "boolean"},
        "error": {"oneOf": [{"type": "null"}, _STR], "description": "the first inconsistency"},
        "entries": _INT,
        "checkpoints": _INT,
        "cosigned": _INT,
        "receipts": _INT,
        "unchecked": _NAMES,
    },
}
_PACKAGE = _obj(
    {
        "hash": _STR,
        "name": _STR,
        "size": _INT,
        "mimetype": _STR,
        "tool": _STR,
        "keywords": _NAMES,
        "groups": _NAMES,
        "submitter": _STR,
        "creator_uid": _STR,
        "submitted_at": _NULLABLE_TIME,
    }
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(key: str, schema: str) -> dict[str, Any]:
    return _obj({key: {"type": "array", "items": _ref(schema)}})


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


_HANDOUT_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "host": {**_STR, "description": "the name devices dial (default: server_names)"},
        "flavour": {"enum": ["atak", "itak"]},
        "enroll": {"type": "boolean", "description": "no client key: the device enrols"},
        "itak": {"type": "boolean", "description": "QR: iTAK's server QR instead of ATAK's"},
    },
}

PATHS: dict[str, Any] = {
    "/api/admin/cluster": {
        "get": {
            "operationId": "clusterStatus",
            "summary": "With [cluster] or serve --workers: every node (pid, sessions, bus "
            "counters, NATS server), the NATS servers' health, the latest-SA stream",
            "responses": {
                "200": _json(_obj({"nodes": {"type": "array"}}), "the cluster"),
                **_DENIED,
                "404": _error("not in a cluster"),
                "503": _error("NATS did not answer"),
            },
        }
    },
    "/api/admin/users": {
        "get": {
            "operationId": "listUsers",
            "summary": "Every user of the user store, its groups and live sessions",
            "responses": {"200": _json(_list("users", "User"), "the users"), **_DENIED},
        },
        "post": {
            "operationId": "addUser",
            "summary": "Add a user with a password and groups",
            "requestBody": _body(
                {
                    **_GROUPS_BODY,
                    "required": ["name", "password"],
                    "properties": {
                        "name": _STR,
                        "password": _STR,
                        **_GROUP_FIELDS,
                    },
                }
            ),
            "responses": {
                "201": _json(_ref("User"), "added"),
                **_CHANGE,
                "409": _error("the name is taken"),
            },
        },
    },
    "/api/admin/users/{name}/groups": {
        "put": {
            "operationId": "regroupUser",
            "summary": "Set a user's groups; its live sessions follow within revocation_check_s",
            "parameters": [_NAME],
            "requestBody": _body(_GROUPS_BODY),
            "responses": {
                "200": _json(_ref("User"), "regrouped"),
                **_CHANGE,
                "404": _error("no such user"),
            },
        }
    },
    "/api/admin/users/{name}/password": {
        "put": {
            "operationId": "setPassword",
            "summary": "Set a user's password",
            "parameters": [_NAME],
            "requestBody": _body(_obj({"password": _STR})),
            "responses": {
                "200": _json(_ref("User"), "changed"),
                **_CHANGE,
                "404": _error("no such user"),
            },
        }
    },
    "/api/admin/users/{name}": {
        "delete": {
            "operationId": "removeUser",
            "summary": "Remove a user (its certificates stay valid until revoked)",
            "parameters": [_NAME],
            "responses": {
                "200": _json(_obj({"removed": _STR}), "removed"),
                **_DENIED,
                **_CSRF,
                "404": _error("no such user"),
            },
        }
    },
    "/api/admin/users/{name}/package": {
        "post": {
            "operationId": "connectionPackage",
            "summary": "A connection package for the user (issues a fresh client certificate)",
            "parameters": [_NAME],
            "requestBody": _body(_HANDOUT_BODY, required=False),
            "responses": {
                "200": {
                    "description": "the zip (ATAK/WinTAK data package, or iTAK's flat zip)",
                    "content": {"application/zip": {"schema": {**_STR, "format": "binary"}}},
                },
                **_CHANGE,
                "404": _error("no such user"),
            },
        }
    },
    "/api/admin/users/{name}/qr": {
        "post": {
            "operationId": "enrollmentQr",
            "summary": "The enrolment QR code (sets a new one-time password, returned in "
            "X-Accord-Password), or iTAK's server QR",
            "parameters": [
                _NAME,
                {"name": "format", "in": "query", "schema": {"enum": ["png", "svg"]}},
            ],
            "requestBody": _body(_HANDOUT_BODY, required=False),
            "responses": {
                "200": {
                    "description": "the QR code",
                    "content": {
                        "image/png": {"schema": {**_STR, "format": "binary"}},
                        "image/svg+xml": {"schema": _STR},
                    },
                },
                **_CHANGE,
                "404": _error("no such user"),
            },
        }
    },
    "/api/admin/groups": {
        "get": {
            "operationId": "listGroups",
            "summary": "Every group: the users in it each way and its live sessions",
            "responses": {"200": _json(_list("groups", "Group"), "the groups"), **_DENIED},
        }
    },
    "/api/admin/certificates": {
        "get": {
            "operationId": "listCertificates",
            "summary": "Every certificate the CA issued, and its state",
            "responses": {
                "200": _json(_list("certificates", "Certificate"), "in issue order"),
                **_DENIED,
            },
        }
    },
    "/api/admin/certificates/{serial}": {
        "delete": {
            "operationId": "revokeCertificate",
            "summary": "Revoke a certificate; that device's live sessions are closed within "
            "revocation_check_s",
            "parameters": [{"name": "serial", "in": "path", "required": True, "schema": _STR}],
            "responses": {
                "200": _json(_ref("Certificate"), "revoked"),
                **_CHANGE,
                "404": _error("no certificate with that serial"),
                "409": _error("already revoked"),
            },
        }
    },
    "/api/admin/partners": {
        "get": {
            "operationId": "listPartners",
            "summary": "Partners: link state and traffic, release decisions per rule, ledger "
            "sizes and cosignature lag",
            "responses": {"200": _json(_list("partners", "Partner"), "by name"), **_DENIED},
        }
    },
    "/api/admin/partners/{name}/ledger": {
        "get": {
            "operationId": "verifyLedger",
            "summary": "Replay the partner's ledger logs through the verifier",
            "parameters": [_NAME],
            "responses": {
                "200": _json(
                    _obj(
                        {
                            "partner": _STR,
                            "logs": {"type": "array", "items": _ref("LedgerVerification")},
                        }
                    ),
                    "one result per log",
                ),
                **_DENIED,
                "404": _error("no ledger entries with that partner"),
            },
        }
    },
    "/api/admin/packages": {
        "get": {
            "operationId": "listPackages",
            "summary": "The data packages in the store, newest first",
            "responses": {"200": _json(_list("packages", "Package"), "the packages"), **_DENIED},
        }
    },
    "/api/admin/packages/{hash}": {
        "delete": {
            "operationId": "deletePackage",
            "summary": "Delete a data package (metadata and bytes)",
            "parameters": [{"name": "hash", "in": "path", "required": True, "schema": _STR}],
            "responses": {
                "200": _json(_obj({"deleted": _STR}), "deleted"),
                **_DENIED,
                **_CSRF,
                "404": _error("no package with that hash"),
            },
        }
    },
}

SCHEMAS: dict[str, Any] = {
    "User": _USER,
    "Group": _GROUP,
    "Certificate": _CERTIFICATE,
    "Link": _LINK,
    "LedgerLog": _LOG,
    "LedgerVerification": _VERIFIED,
    "Partner": _PARTNER,
    "Package": _PACKAGE,
}

FULL_SPEC: dict[str, Any] = {
    **SPEC,
    "info": {
        **SPEC["info"],
        "description": SPEC["info"]["description"]
        + " Also users, groups, certificates, connection packages and QR codes, partners and "
        "their ledgers, data packages. A state-changing request from a browser must carry "
        "the X-Accord-CSRF header and come from this server's own origin.",
    },
    "paths": {**SPEC["paths"], **PATHS},
    "components": {
        **SPEC["components"],
        "schemas": {**SPEC["components"]["schemas"], **SCHEMAS},
    },
}
