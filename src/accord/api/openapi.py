"""The admin API described as OpenAPI 3.1, written by hand next to the routes it describes.

(Starlette's SchemaGenerator would read YAML out of docstrings; a dict here needs no YAML
parser and is checked against the OpenAPI schema and the routes in the tests.)
"""

from __future__ import annotations

from typing import Any

from accord import __version__


def _obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), **extra}


_INT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_DROPS = _obj(
    {
        "malformed": {**_INT, "description": "refused as malformed (the stream is kept)"},
        "rate_limited": {**_INT, "description": "over the per-session input_rate"},
        "queue_full": {**_INT, "description": "dropped for a full send queue"},
    }
)
_CLIENT = _obj(
    {
        "id": {**_INT, "description": "for DELETE /api/admin/clients/{id}; never reused"},
        "uid": {**_STR, "description": "from its first SA; empty until then"},
        "callsign": _STR,
        "user": {**_STR, "description": "certificate CN, or the <auth> user name on plain TCP"},
        "groups": _obj(
            {"in": {"type": "array", "items": _STR}, "out": {"type": "array", "items": _STR}}
        ),
        "address": {**_STR, "description": "the peer's ip:port"},
        "listener": {"enum": ["tcp", "tls"]},
        "wire_format": {"enum": ["xml", "protobuf"]},
        "device": _obj(
            {"device": _STR, "platform": _STR, "os": _STR, "version": _STR},
            description="the <takv> of its latest SA; empty strings when it sent none",
        ),
        "connected_at": _TIME,
        "last_event_at": {"type": ["string", "null"], "format": "date-time"},
        "events_in": {**_INT, "description": "events it sent that were routed"},
        "events_out": {**_INT, "description": "events taken for it (written or queued)"},
        "drops": _DROPS,
        "coalesced": {**_INT, "description": "queued positions replaced by newer ones"},
        "queued_events": {**_INT, "description": "waiting while its socket is full"},
        "write_buffer_bytes": _INT,
    }
)
_LISTENER = _obj(
    {
        "name": {"enum": ["tcp", "tls", "udp"]},
        "port": _INT,
        "sessions": _INT,
        "events_in": _INT,
        "events_out": _INT,
        "drops": _DROPS,
        "coalesced": _INT,
        "malformed": {
            "type": "object",
            "additionalProperties": _INT,
            "description": "by reason: too_large, not_well_formed, forbidden_xml, too_deep, "
            "not_protobuf, unknown_format, invalid_event",
        },
        "queued_events": _INT,
        "max_queued_events": _INT,
        "write_buffer_bytes": _INT,
    }
)
_DRONE_FEED = _obj(
    {
        "name": {**_STR, "description": "in uids <org>.<name>.<sysid>; for DELETE"},
        "kind": {"enum": ["udp", "udpout", "tcp", "tlog", "serial"]},
        "where": {**_STR, "description": "its address, or its file or device path"},
        "adhoc": {
            "type": "boolean",
            "description": "added by POST: not in the configuration, gone at the next start",
        },
        "port": {"type": ["integer", "null"], "description": "UDP port listened on (udp)"},
        "vehicles": {**_INT, "description": "vehicles seen"},
        "vehicles_live": {**_INT, "description": "heard from within the link timeout"},
        "counters": {
            "type": "object",
            "additionalProperties": _INT,
            "description": "link_errors (tcp, serial: could not open, or broke), bytes_in, "
            "messages, bad_data (CRC failures, bad frames), "
            "truncated, unknown (message ids), ignored_components, conflicts (two vehicles "
            "claiming one system id), events, links_lost",
        },
    }
)
# One [[drone_feeds]] table of the configuration, as JSON.
_DRONE_FEED_TABLE = {
    "type": "object",
    "required": ["name", "kind"],
    "additionalProperties": False,
    "properties": {
        "name": {**_STR, "description": "unique, no dot"},
        "kind": {"enum": ["udp", "udpout", "tcp", "tlog", "serial"]},
        "address": {**_STR, "description": "host:port (udp: to listen on; udpout, tcp: to reach)"},
        "path": {**_STR, "description": "the .tlog file (tlog), the device (serial)"},
        "baud": {"type": "integer", "minimum": 1, "description": "serial: default 57600"},
        "org": _STR,
        "affiliation": {"enum": ["f", "a", "n", "u", "s", "h", "j", "k", "p", "o", "x"]},
        "callsign": {**_STR, "description": "may use {feed} and {sysid}"},
        "video_url": _STR,
        "groups": {"type": "array", "items": _STR},
        "speed": {"type": "number", "exclusiveMinimum": 0},
        "rate_hz": {"type": "number", "exclusiveMinimum": 0},
        "link_timeout_s": {"type": "number", "exclusiveMinimum": 0},
    },
}
_STATUS = _obj(
    {
        "server": {"const": "Accord"},
        "version": _STR,
        "started_at": _TIME,
        "uptime_s": {"type": "number"},
        "bind": _STR,
        "ports": {
            "type": "object",
            "additionalProperties": _INT,
            "description": "bound ports by name: tcp, tls, udp, https, enroll, metrics",
        },
        "sessions": _INT,
        "listeners": {"type": "array", "items": {"$ref": "#/components/schemas/Listener"}},
        "queues": _obj(
            {"queued_events": _INT, "max_queued_events": _INT, "write_buffer_bytes": _INT}
        ),
        "counters": {"type": "object", "additionalProperties": _INT},
        "store": {
            "oneOf": [
                {"type": "null"},
                _obj(
                    {
                        "backend": _STR,
                        "history_events": _INT,
                        "oldest": {"type": ["string", "null"], "format": "date-time"},
                        "newest": {"type": ["string", "null"], "format": "date-time"},
                    }
                ),
                _obj({"backend": _STR, "error": _STR}),
            ]
        },
        "history_backlog": _obj(
            {
                "queued_events": _INT,
                "lag_s": {"type": "number", "description": "age of the oldest unwritten event"},
            }
        ),
        "drone_feeds": {"type": "array", "items": {"$ref": "#/components/schemas/DroneFeed"}},
    }
)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json({"$ref": "#/components/schemas/Error"}, description)


_DENIED = {
    "401": _error("no valid client certificate (or it was revoked)"),
    "403": _error("the certificate's CN is not in admin_users"),
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Accord admin API",
        "version": __version__,
        "description": "Read the live state of an Accord server, disconnect clients, and "
        "start and stop drone feeds. "
        "HTTPS with a client certificate whose CN is listed in admin_users.",
    },
    "security": [{"clientCertificate": []}],
    "paths": {
        "/api/admin/clients": {
            "get": {
                "operationId": "listClients",
                "summary": "Every connected streaming client",
                "responses": {
                    "200": _json(
                        _obj(
                            {
                                "clients": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Client"},
                                }
                            }
                        ),
                        "the clients, by id",
                    ),
                    **_DENIED,
                },
            }
        },
        "/api/admin/clients/{id}": {
            "delete": {
                "operationId": "disconnectClient",
                "summary": "Close a client's session (it may reconnect)",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": _INT},
                ],
                "responses": {
                    "200": _json(_obj({"disconnected": _INT}), "the session is closing"),
                    **_DENIED,
                    "404": _error("no connected client has that id"),
                },
            }
        },
        "/api/admin/status": {
            "get": {
                "operationId": "status",
                "summary": "Version, uptime, listeners, counters, history",
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Status"}, "the status"),
                    **_DENIED,
                },
            }
        },
        "/api/admin/drone-feeds": {
            "get": {
                "operationId": "listDroneFeeds",
                "summary": "The running MAVLink feeds, with their counters",
                "responses": {
                    "200": _json(
                        _obj(
                            {
                                "feeds": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/DroneFeed"},
                                }
                            }
                        ),
                        "the feeds, by name",
                    ),
                    **_DENIED,
                },
            },
            "post": {
                "operationId": "addDroneFeed",
                "summary": "Start a MAVLink feed (ad hoc: not written to the configuration, "
                "gone at the next start)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/DroneFeedTable"}
                        }
                    },
                },
                "responses": {
                    "201": _json({"$ref": "#/components/schemas/DroneFeed"}, "started"),
                    "400": _error("not a valid table, or the feed cannot start (the reason)"),
                    **_DENIED,
                    "409": _error("a feed of that name is running"),
                },
            },
        },
        "/api/admin/drone-feeds/{name}": {
            "delete": {
                "operationId": "removeDroneFeed",
                "summary": "Stop a MAVLink feed (a configured one returns at the next start)",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": _STR},
                ],
                "responses": {
                    "200": _json(_obj({"removed": _STR}), "stopped"),
                    **_DENIED,
                    "404": _error("no feed has that name"),
                },
            }
        },
        "/api/admin/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": _json({"type": "object"}, "OpenAPI 3.1"),
                    **_DENIED,
                },
            }
        },
        "/api/admin/docs": {
            "get": {
                "operationId": "docs",
                "summary": "This document as a page",
                "responses": {
                    "200": {"description": "HTML", "content": {"text/html": {"schema": _STR}}},
                    **_DENIED,
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (text exposition format, or OpenMetrics)",
                "description": "Also served without sign-in on 127.0.0.1:metrics_port when set.",
                "responses": {
                    "200": {
                        "description": "the metrics",
                        "content": {"text/plain": {"schema": _STR}},
                    },
                    **_DENIED,
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "clientCertificate": {
                "type": "mutualTLS",
                "description": "a certificate from Accord's CA whose CN is in admin_users",
            }
        },
        "schemas": {
            "Client": _CLIENT,
            "Listener": _LISTENER,
            "Status": _STATUS,
            "DroneFeed": _DRONE_FEED,
            "DroneFeedTable": _DRONE_FEED_TABLE,
            "Error": _obj({"error": _STR}),
        },
    },
}
