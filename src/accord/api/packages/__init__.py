"""Data packages over the Marti API (reference tak-protocol §4.4-4.8 and §4.10).

What a client sends is stored as a content-addressed blob (:mod:`accord.store.blobs`) plus
metadata in the store; who may see a package is decided by groups, as for events: a package
carries the uploader's IN groups (or the subset it names) and a caller sees it when one of its
OUT groups is among them. A package the caller may not see answers exactly as one that does not
exist (404), on every endpoint.

- ``POST /Marti/sync/missionupload``: ATAK/commo's upload (multipart, part ``assetfile``);
  answers the content URL as text.
- ``POST /Marti/sync/upload``: iTAK's and the Data Sync plugin's upload (TAK Server's
  UploadServlet): raw body or multipart, metadata as query parameters (any case); answers the
  metadata as JSON.
- ``GET /Marti/sync/missionquery?hash=``: the content URL, or 404.
- ``GET|HEAD /Marti/sync/content?hash=|uid=`` with ``offset``/``length`` (ATAK resumes with
  ``offset``): the bytes, streamed.
- ``GET /Marti/sync/search`` and ``GET /Marti/api/sync/search``: metadata, TAK Server's
  servlet shape and API envelope.
- ``PUT /Marti/api/sync/metadata/{hash}/tool`` (or ``mimetype``): commo marks a package it
  sends to contacts ``private``.
- ``POST|DELETE /Marti/sync/delete?hash=`` and ``DELETE /Marti/api/files/{hash}``.

Bodies are never held whole: the multipart parser is fed as the bytes arrive and the file part
goes straight into a blob writer, limit enforced on the way. An upload is acknowledged only
after its blob is durable and its metadata committed, so a restart loses nothing that was
answered 200. Every refusal is a 4xx with ``{"error": "..."}`` naming what was wrong.

Modules: :mod:`.routes` (the endpoints), :mod:`.fields` (reading and checking what a request
carries), :mod:`.upload` (receiving bodies), :mod:`.download` (sending bytes), :mod:`.views`
(the JSON shapes TAK clients parse).
"""

from accord.api.packages.routes import PackageSettings, package_routes

__all__ = ["PackageSettings", "package_routes"]
