"""The OpenAPI 3.1 description of the HTTP API v1 (``GET /api/v1/openapi.json``)."""
