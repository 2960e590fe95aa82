"""The credentials domain on the web: blueprints that parse a request, call one
domain function and render.

    registrar  /registrar: issue one, upload a CSV, batches, credentials, revoke, certificates
    verify     /verify and /v/<id>: the public verification page and the QR link
    api        /api/v1: the verification API and its OpenAPI description
    identity   the DID document, and the registrar's institution and trust-list pages
"""
