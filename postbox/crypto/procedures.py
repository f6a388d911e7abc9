"""Procedures (PROTOCOL.md §3): the signed definitions of the forms an organisation offers,
and the digest that binds a submitted form to its definition.

:mod:`postbox.crypto.certs` re-exports everything here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, TypedDict, cast

from postbox.crypto import domain, shapes
from postbox.crypto.encoding import DIGEST_BYTES, SIGNATURE_BYTES, b64d, b64e, cj
from postbox.crypto.errors import CertificateInvalid, MalformedObject
from postbox.crypto.kid import derive_kid
from postbox.crypto.primitives import H, sign, sign_keypair, verify
from postbox.crypto.signed import SIG, V1, cert_pk, signed_bytes

if TYPE_CHECKING:  # only a type here: certs re-exports this module
    from postbox.crypto.certs import Cert


class Procedure(TypedDict):
    v: int
    org: str
    id: str
    version: int
    schema: dict[str, Any]
    labels: dict[str, Any]
    documents: list[dict[str, Any]]


class SignedProcedure(TypedDict):
    procedure: Procedure
    sig: str
    by: str


# --- shapes ------------------------------------------------------------------------------
DOCUMENT_SHAPE = shapes.obj(
    {"name": shapes.string(100), "required": shapes.enum_bool(), "max_size": shapes.COUNT}
)
PROCEDURE_SHAPE = shapes.obj(
    {
        "v": V1,
        "org": shapes.ID,
        "id": shapes.ID,
        "version": shapes.integer(1),
        "schema": shapes.free_object,
        "labels": shapes.free_object,
        "documents": shapes.array(DOCUMENT_SHAPE, 50),
    }
)
SIGNED_PROCEDURE_SHAPE = shapes.obj({"procedure": PROCEDURE_SHAPE, "sig": SIG, "by": shapes.KID})


_NUMERIC_TYPES: Final = frozenset({"number", "integer"})
#: schema keywords whose values are (or list) instance values, which may not be numbers
_VALUE_KEYWORDS: Final = frozenset({"const", "default", "enum", "examples"})


def _has_number(value: Any) -> bool:
    """True if ``value`` is, or contains at any depth, a JSON number."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, list):
        return any(_has_number(v) for v in value)
    if isinstance(value, dict):
        return any(_has_number(v) for v in value.values())
    return False


def _check_schema_types(node: Any, path: str) -> None:
    """Form data carries no JSON numbers (numbers are strings), so schemas may not ask for any.

    Refused: ``"type": "number"|"integer"`` and numbers as instance values (``const``,
    ``default``, ``enum``, ``examples``). Integer constraints such as ``maxLength`` stay.
    """
    if isinstance(node, dict):
        t = node.get("type")
        types = t if isinstance(t, list) else [t]
        if any(isinstance(x, str) and x in _NUMERIC_TYPES for x in types):
            raise MalformedObject(f"{path}: schemas use no JSON numbers (use strings)")
        for keyword in _VALUE_KEYWORDS & node.keys():
            value = node[keyword]
            if _has_number(value):
                raise MalformedObject(f"{path}.{keyword}: schemas use no JSON numbers")
        for k, v in node.items():
            _check_schema_types(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_schema_types(v, f"{path}[{i}]")


def check_procedure(procedure: Any) -> Procedure:
    shapes.check(PROCEDURE_SHAPE, procedure, "procedure")
    p = cast(Procedure, procedure)
    cj(p)  # free-form members must be canonical JSON (this also bounds the depth to 32)
    _check_schema_types(p["schema"], "procedure.schema")
    return p


def sign_procedure(procedure: Procedure, admin_seed: bytes) -> SignedProcedure:
    check_procedure(procedure)
    pk, _ = sign_keypair(admin_seed)
    return {
        "procedure": procedure,
        "sig": b64e(sign(admin_seed, signed_bytes(domain.PROCEDURE, procedure))),
        "by": derive_kid("sign", pk),
    }


def verify_procedure(signed: Any, admin_identity: Cert) -> Procedure:
    """Verify a procedure definition before rendering it: an admin of its org signed it."""
    shapes.check(SIGNED_PROCEDURE_SHAPE, signed, "signed procedure")
    s = cast(SignedProcedure, signed)
    p = check_procedure(s["procedure"])
    if (
        admin_identity["kind"] != "admin"
        or admin_identity["use"] != "sign"
        or admin_identity["org"] != p["org"]
    ):
        raise CertificateInvalid("procedures are signed by an admin of their org")
    if s["by"] != admin_identity["kid"]:
        raise CertificateInvalid("procedure signed by another key")
    verify(
        cert_pk(admin_identity),
        signed_bytes(domain.PROCEDURE, p),
        b64d(s["sig"], SIGNATURE_BYTES),
    )
    return p


def form_digest(procedure: Procedure) -> bytes:
    """``H("postbox/v1/form" ‖ cj(procedure), 64)``: binds a submitted form to its definition."""
    return H(domain.FORM + cj(procedure), DIGEST_BYTES)
