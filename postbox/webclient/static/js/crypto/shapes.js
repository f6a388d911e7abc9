// Validators for the closed v1 objects of PROTOCOL.md (mirrors shapes.py). A shape is a
// function (value, path) that throws MalformedObject naming the offending path.
import { b64d, ID_BYTES, MAX_SAFE_INTEGER } from './encoding.js';
import { MalformedObject } from './errors.js';

export function check(shape, value, what) {
  shape(value, what);
}

export function b64(size) {
  return (value, path) => {
    try {
      b64d(value, size);
    } catch (e) {
      throw new MalformedObject(`${path}: ${e.message}`);
    }
  };
}

export const ID = b64(ID_BYTES);
export const KID = ID;

export function integer(lo = -MAX_SAFE_INTEGER, hi = MAX_SAFE_INTEGER) {
  return (value, path) => {
    if (!Number.isSafeInteger(value) || value < lo || value > hi) {
      throw new MalformedObject(`${path}: expected an integer in [${lo}, ${hi}]`);
    }
  };
}

export const TIME = integer(0);
export const COUNT = integer(0);

const enc = new TextEncoder();

export function string(maxBytes = null) {
  return (value, path) => {
    if (typeof value !== 'string') throw new MalformedObject(`${path}: expected a string`);
    if (maxBytes !== null && enc.encode(value).length > maxBytes) {
      throw new MalformedObject(`${path}: longer than ${maxBytes} bytes`);
    }
  };
}

export function constant(expected) {
  return (value, path) => {
    if (value !== expected) throw new MalformedObject(`${path}: expected ${JSON.stringify(expected)}`);
  };
}

export function oneOf(...allowed) {
  return (value, path) => {
    if (typeof value !== 'string' || !allowed.includes(value)) {
      throw new MalformedObject(`${path}: expected one of ${allowed.join(', ')}`);
    }
  };
}

export function nullable(inner) {
  return (value, path) => {
    if (value !== null) inner(value, path);
  };
}

export function array(item, maxItems = null) {
  return (value, path) => {
    if (!Array.isArray(value)) throw new MalformedObject(`${path}: expected an array`);
    if (maxItems !== null && value.length > maxItems) {
      throw new MalformedObject(`${path}: more than ${maxItems} items`);
    }
    value.forEach((v, i) => item(v, `${path}[${i}]`));
  };
}

function isPlainObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function freeObject(value, path) {
  if (!isPlainObject(value)) throw new MalformedObject(`${path}: expected an object`);
}

/** A closed object with exactly these members. */
export function obj(fields) {
  const names = Object.keys(fields);
  return (value, path) => {
    if (!isPlainObject(value)) throw new MalformedObject(`${path}: expected an object`);
    const keys = Object.keys(value);
    const missing = names.filter((n) => !Object.hasOwn(value, n));
    const unknown = keys.filter((k) => !Object.hasOwn(fields, k));
    if (missing.length || unknown.length) {
      const detail = [];
      if (missing.length) detail.push(`missing ${missing.sort().join(', ')}`);
      if (unknown.length) detail.push(`unknown ${unknown.sort().map((k) => JSON.stringify(k)).join(', ')}`);
      throw new MalformedObject(`${path}: ${detail.join('; ')}`);
    }
    for (const name of names) fields[name](value[name], `${path}.${name}`);
  };
}

export function enumBool() {
  return (value, path) => {
    if (typeof value !== 'boolean') throw new MalformedObject(`${path}: expected true or false`);
  };
}
