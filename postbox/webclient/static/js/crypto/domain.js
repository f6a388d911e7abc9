// Domain-separation labels (PROTOCOL.md §2), mirroring domain.py; prefix-free (tested).
const enc = new TextEncoder();
const L = (s) => enc.encode(s);

export const BUNDLE = L('postbox/v1/bundle');
export const LOGIN = L('postbox/v1/login');
export const RECOVERY_LOGIN = L('postbox/v1/recovery-login');
export const RECOVERY_KEK = L('postbox/v1/recovery-kek');
export const RECOVERY_AUTH = L('postbox/v1/recovery-auth');
export const KID = L('postbox/v1/kid');
export const KEYCERT = L('postbox/v1/keycert');
export const ORGCERT = L('postbox/v1/orgcert');
export const ORGROOT = L('postbox/v1/orgroot');
export const REVOKE = L('postbox/v1/revoke');
export const TEAMWRAP = L('postbox/v1/teamwrap');
export const PROCEDURE = L('postbox/v1/procedure');
export const COMMIT = L('postbox/v1/commit');
export const MESSAGE = L('postbox/v1/message');
export const BLOB = L('postbox/v1/blob');
export const RECEIPT = L('postbox/v1/receipt');
export const DELIVERY = L('postbox/v1/delivery');
export const READ = L('postbox/v1/read');
export const STH = L('postbox/v1/sth');
export const ACT_AUTH = L('postbox/v1/act-auth');
export const ACT_MAC = L('postbox/v1/act-mac');
export const ROTATE = L('postbox/v1/rotate');
export const MEMBER = L('postbox/v1/member');
export const SERVERKEY = L('postbox/v1/serverkey');
export const COUNTERSIGN = L('postbox/v1/countersign');
export const FORM = L('postbox/v1/form');

export const ALL = Object.freeze([
  BUNDLE, LOGIN, RECOVERY_LOGIN, RECOVERY_KEK, RECOVERY_AUTH, KID, KEYCERT, ORGCERT,
  ORGROOT, REVOKE, TEAMWRAP, PROCEDURE, COMMIT, MESSAGE, BLOB, RECEIPT, DELIVERY, READ,
  STH, ACT_AUTH, ACT_MAC, ROTATE, MEMBER, SERVERKEY, COUNTERSIGN, FORM,
]);
