'use strict'
// A JSON writer that matches JSON.stringify(value, null, indent) byte for byte,
// with two additions needed to describe inputs exactly:
//   - raw(text): JSON text spliced in verbatim (to keep a key order JS objects
//     cannot hold, e.g. integer-like keys after others, duplicate keys, or
//     number spellings such as 9007199254740993, 100.0, 1E2, 1e400);
//   - negative zero is written as -0.0 (JSON.stringify writes 0).
// parse(stringify(x)) is what a JSON reader of the fixture sees, and that is
// what the oracle feeds to Segment's runtime.

class Raw {
  constructor(text) {
    JSON.parse(text) // must be valid JSON
    this.text = text
  }
}

function raw(text) {
  return new Raw(text)
}

function stringify(value, indent = 1) {
  const pad = typeof indent === 'number' ? ' '.repeat(indent) : indent
  const out = write(value, '', pad)
  if (out === undefined) throw new Error('cannot serialize top-level value')
  return out
}

function write(value, cur, pad) {
  if (value instanceof Raw) return value.text
  if (value === null) return 'null'
  if (value && typeof value.toJSON === 'function') value = value.toJSON()
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value)
    case 'number':
      if (Object.is(value, -0)) return '-0.0'
      return JSON.stringify(value)
    case 'boolean':
      return value ? 'true' : 'false'
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined
    case 'bigint':
      throw new TypeError('bigint in fixture')
  }
  const inner = cur + pad
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]'
    const parts = value.map((v) => {
      const s = write(v, inner, pad)
      return s === undefined ? 'null' : s
    })
    if (!pad) return '[' + parts.join(',') + ']'
    return '[\n' + inner + parts.join(',\n' + inner) + '\n' + cur + ']'
  }
  const parts = []
  for (const key of Object.keys(value)) {
    const s = write(value[key], inner, pad)
    if (s === undefined) continue
    parts.push(JSON.stringify(key) + (pad ? ': ' : ':') + s)
  }
  if (parts.length === 0) return '{}'
  if (!pad) return '{' + parts.join(',') + '}'
  return '{\n' + inner + parts.join(',\n' + inner) + '\n' + cur + '}'
}

// What a JSON reader of the fixture gets, as a JS value.
function viaJson(value) {
  return JSON.parse(stringify(value, ''))
}

module.exports = { raw, Raw, stringify, viaJson }
