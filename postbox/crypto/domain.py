"""Domain-separation labels (PROTOCOL.md §2).

Every signature, hash, MAC and key derivation has its own label. The set is prefix-free
(no label is a prefix of another), which ``tests/crypto/test_domain.py`` checks, so that
no input to one construction can be read as an input to another.
"""

from __future__ import annotations

from typing import Final

BUNDLE: Final = b"postbox/v1/bundle"
LOGIN: Final = b"postbox/v1/login"
RECOVERY_LOGIN: Final = b"postbox/v1/recovery-login"
RECOVERY_KEK: Final = b"postbox/v1/recovery-kek"
RECOVERY_AUTH: Final = b"postbox/v1/recovery-auth"
KID: Final = b"postbox/v1/kid"
KEYCERT: Final = b"postbox/v1/keycert"
ORGCERT: Final = b"postbox/v1/orgcert"
ORGROOT: Final = b"postbox/v1/orgroot"
REVOKE: Final = b"postbox/v1/revoke"
TEAMWRAP: Final = b"postbox/v1/teamwrap"
PROCEDURE: Final = b"postbox/v1/procedure"
COMMIT: Final = b"postbox/v1/commit"
MESSAGE: Final = b"postbox/v1/message"
BLOB: Final = b"postbox/v1/blob"
RECEIPT: Final = b"postbox/v1/receipt"
DELIVERY: Final = b"postbox/v1/delivery"
READ: Final = b"postbox/v1/read"
STH: Final = b"postbox/v1/sth"
ACT_AUTH: Final = b"postbox/v1/act-auth"
ACT_MAC: Final = b"postbox/v1/act-mac"
ROTATE: Final = b"postbox/v1/rotate"
MEMBER: Final = b"postbox/v1/member"
SERVERKEY: Final = b"postbox/v1/serverkey"
COUNTERSIGN: Final = b"postbox/v1/countersign"
FORM: Final = b"postbox/v1/form"

ALL: Final = (
    BUNDLE, LOGIN, RECOVERY_LOGIN, RECOVERY_KEK, RECOVERY_AUTH, KID, KEYCERT, ORGCERT,
    ORGROOT, REVOKE, TEAMWRAP, PROCEDURE, COMMIT, MESSAGE, BLOB, RECEIPT, DELIVERY, READ,
    STH, ACT_AUTH, ACT_MAC, ROTATE, MEMBER, SERVERKEY, COUNTERSIGN, FORM,
)  # fmt: skip
