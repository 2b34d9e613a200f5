#!/usr/bin/env node
'use strict'
// Records tests/goldens/actions.json and tests/goldens/datetimes.json by
// running Segment's runtime (Destination.executeAction: transform ->
// removeEmptyValues -> ajv validation -> perform) on fixed payloads.
//
// Every payload is fed through a mapping {field: {'@path': '$.<field>'}} over
// all fields of the action, in the action's field order. The payload given to
// the runtime is the one a JSON reader gets from the fixture (see lib/json.js).

const path = require('path')
const rt = require('./lib/runtime')
const { raw, viaJson } = require('./lib/json')
const { DATETIMES, timestampSample } = require('./lib/datetimes')

const ACTIONS = ['logEvent', 'identify', 'page', 'group']

function actionMeta(slug) {
  const def = rt.destinationDefinition.actions[slug]
  if (!def) rt.die(`no action ${slug}`)
  const fields = Object.keys(def.fields)
  const required = fields.filter((f) => def.fields[f].required === true)
  const optional = fields.filter((f) => def.fields[f].required !== true)
  const stringFields = fields.filter((f) => def.fields[f].type === 'string')
  const objectFields = fields.filter((f) => def.fields[f].type === 'object')
  const mapping = {}
  for (const f of fields) mapping[f] = { '@path': `$.${f}` }
  return { slug, def, fields, required, optional, stringFields, objectFields, mapping }
}

async function runPayload(dest, meta, payload) {
  const event = viaJson(payload)
  const r = await rt.capture(() =>
    dest.executeAction(meta.slug, {
      event,
      mapping: meta.mapping,
      settings: { ...rt.SETTINGS },
      features: {},
      statsContext: {},
      logger: { info() {}, error() {}, warn() {}, debug() {} },
      transactionContext: {},
      stateContext: {},
      subscriptionMetadata: {}
    })
  )
  if (r.thrown) {
    if (r.requests.length) rt.die(`${meta.slug}: request sent although the payload was rejected`)
    return { error: rt.errorRecord(r.thrown) }
  }
  if (r.requests.length !== 1) rt.die(`${meta.slug}: expected one request, got ${r.requests.length}`)
  return { request: r.requests[0] }
}

// ---------------------------------------------------------------------------
// Corpus

const CONTEXT = {
  ip: '203.0.113.7',
  locale: 'fr-FR',
  userAgent: 'Mozilla/5.0 (X11; Linux x86_64)',
  library: { name: 'analytics.js', version: '4.1.0' },
  page: { path: '/pricing', referrer: '', title: 'Pricing', url: 'https://example.com/pricing?plan=pro' },
  campaign: { name: 'spring', source: 'newsletter' }
}

const NATURAL = {
  logEvent: {
    anonymousId: 'anon-0001',
    userId: 'user-0001',
    event: 'Product Viewed',
    type: 'track',
    properties: { product_id: 'p-1', price: 19.99, quantity: 2, tags: ['a', 'b'], in_stock: true, discount: null },
    kameleoonVisitorCode: 'kvc-0001',
    timestamp: '2024-03-15T12:34:56.789Z',
    context: CONTEXT,
    messageId: 'msg-track-0001'
  },
  identify: {
    anonymousId: 'anon-0002',
    userId: 'user-0002',
    type: 'identify',
    properties: { email: 'ada@example.com', name: 'Ada Lovelace', age: 36, plan: 'pro', verified: false },
    kameleoonVisitorCode: 'kvc-0002',
    timestamp: '2024-03-15T12:34:56.789Z',
    messageId: 'msg-identify-0002'
  },
  page: {
    anonymousId: 'anon-0003',
    userId: 'user-0003',
    type: 'page',
    properties: { path: '/pricing', referrer: 'https://google.com/', title: 'Pricing', url: 'https://example.com/pricing' },
    kameleoonVisitorCode: 'kvc-0003',
    name: 'Pricing',
    context: CONTEXT,
    timestamp: '2024-03-15T12:34:56.789Z',
    messageId: 'msg-page-0003'
  },
  group: {
    anonymousId: 'anon-0004',
    userId: 'user-0004',
    type: 'group',
    groupId: 'grp-0042',
    properties: { name: 'Acme Inc.', employees: 120, industry: 'Technology', plan: null },
    kameleoonVisitorCode: 'kvc-0004',
    timestamp: '2024-03-15T12:34:56.789Z',
    messageId: 'msg-group-0004'
  }
}

const UNICODE = {
  emoji: 'Grinning 😀 family 👨‍👩‍👧‍👦 flag 🇫🇷 skin 👍🏽',
  cjk: '漢字かなカナ한국어',
  rtl: 'שלום עולם مرحبا بالعالم',
  combining: 'e\u0301 a\u0308 n\u0303 Zalgo Z\u0351\u0307\u0358a\u0344\u0315',
  'line-separators': 'a\u2028b\u2029c\u0085d',
  'control-chars': 'tab\there nl\nhere cr\rhere nul\u0000 bell\u0007 esc\u001b del\u007f',
  'quotes-backslashes': 'she said "hi" \\ back\\slash / slash \'single\'',
  html: '</script><script>alert(1)</script> &amp; <b>',
  'bidi-and-zero-width': '\u202eevil\u202c \u200b\u200c\u200d\ufeff',
  'astral-and-bmp-edge': '\uffff \ufffd 𐍈 𝄞 \u00ff \u0100'
}

// Number spellings, written verbatim into the payload text.
const NUMBERS = [
  ['zero', '0'],
  ['negative-zero', '-0.0'],
  ['int-42', '42'],
  ['float-42-0', '42.0'],
  ['float-42-5', '42.5'],
  ['negative', '-17'],
  ['negative-float', '-1.5'],
  ['1e21', '1e21'],
  ['1e20', '1e20'],
  ['1e16', '1e16'],
  ['1e15-plus-frac', '1000000000000000.3'],
  ['1e-7', '1e-7'],
  ['1e-6', '1e-6'],
  ['0-00001', '0.00001'],
  ['0-000001', '0.000001'],
  ['2-pow-53', '9007199254740992'],
  ['2-pow-53-plus-1', '9007199254740993'],
  ['2-pow-63', '9223372036854775808'],
  ['20-digit-int', '12345678901234567890'],
  ['2-pow-31', '2147483648'],
  ['max-double', '1.7976931348623157e308'],
  ['min-subnormal', '5e-324'],
  ['min-normal', '2.2250738585072014e-308'],
  ['point-one-plus-point-two', '0.30000000000000004'],
  ['one-third', '0.3333333333333333'],
  ['pi', '3.141592653589793'],
  ['upper-e', '1E2'],
  ['e-plus', '1e+2'],
  ['float-100-0', '100.0'],
  ['trailing-zeros', '1.50000'],
  ['1-5e300', '1.5e300'],
  ['neg-1e-7', '-1e-7'],
  ['123456789-123', '123456789.123'],
  ['0-1', '0.1'],
  ['1e-5', '1e-5'],
  ['large-mantissa', '123456789012345678'],
  ['1e22', '1e22'],
  ['99999999999999999999', '99999999999999999999']
]

function omit(obj, keys) {
  const out = {}
  for (const k of Object.keys(obj)) if (!keys.includes(k)) out[k] = obj[k]
  return out
}

function pick(obj, keys) {
  const out = {}
  for (const k of Object.keys(obj)) if (keys.includes(k)) out[k] = obj[k]
  return out
}

// Rebuild with keys in field order.
function ordered(meta, payload) {
  const out = {}
  for (const f of meta.fields) if (f in payload) out[f] = payload[f]
  for (const k of Object.keys(payload)) if (!(k in out)) out[k] = payload[k]
  return out
}

function buildCases(meta) {
  const a = meta.slug
  const all = NATURAL[a]
  const reqOnly = pick(all, meta.required)
  const cases = []
  const add = (name, payload) => cases.push({ name: `${a}/${name}`, action: a, payload })
  const hasField = (f) => meta.fields.includes(f)
  const naturalType = all.type

  add('all-fields', all)
  add('required-only', reqOnly)
  for (const f of meta.optional) add(`required-plus-${kebab(f)}`, ordered(meta, { ...reqOnly, [f]: all[f] }))
  for (const f of meta.required) add(`missing-${kebab(f)}`, omit(all, [f]))
  add('missing-all-required', omit(all, meta.required))
  add('empty-payload', {})

  // Empty strings and whitespace.
  for (const f of meta.stringFields) add(`empty-string-${kebab(f)}`, { ...all, [f]: '' })
  const emptyOpt = { ...all }
  for (const f of meta.optional) if (meta.stringFields.includes(f)) emptyOpt[f] = ''
  add('empty-strings-all-optional', emptyOpt)
  const emptyAll = {}
  for (const f of meta.fields) emptyAll[f] = meta.stringFields.includes(f) ? '' : {}
  add('empty-everything', emptyAll)
  const spaces = { ...all }
  for (const f of meta.stringFields) if (f !== 'timestamp') spaces[f] = ' '
  add('whitespace-string-fields', spaces)
  const padded = { ...all }
  for (const f of meta.stringFields) if (f !== 'timestamp') padded[f] = `  ${all[f]}\n`
  add('padded-string-fields', padded)
  for (const f of meta.objectFields) add(`empty-object-${kebab(f)}`, { ...all, [f]: {} })
  add('empty-object-properties-required-only', { ...reqOnly, properties: {} })

  // Unicode in every string field (timestamp excepted) and in properties.
  for (const [name, text] of Object.entries(UNICODE)) {
    const p = { ...all }
    for (const f of meta.stringFields) if (f !== 'timestamp') p[f] = `${text} ${f}`
    p.properties = { [text]: text, nested: { [`k ${text}`]: [text, { v: text }] } }
    add(`unicode-${name}`, p)
  }
  add('unicode-only-properties', { ...reqOnly, properties: { text: Object.values(UNICODE).join(' | ') } })

  // Long strings.
  const long = { ...all }
  for (const f of meta.stringFields) if (f !== 'timestamp') long[f] = `${f}-` + 'x'.repeat(10000)
  long.properties = { blob: 'é'.repeat(5000) + '😀'.repeat(2500) }
  add('long-strings', long)

  // Strings that look like other JSON values.
  const lookalike = { ...all }
  const lookVals = ['42', 'true', 'null', '{}', '[]', '-0', '1e21', 'undefined', 'NaN']
  meta.stringFields.filter((f) => f !== 'timestamp').forEach((f, i) => {
    lookalike[f] = lookVals[i % lookVals.length]
  })
  add('strings-that-look-like-json', lookalike)

  // Properties (traits) content.
  add('properties-nested', {
    ...reqOnly,
    properties: {
      str: 'v',
      t: true,
      f: false,
      n: null,
      empty: '',
      space: ' ',
      zero: 0,
      obj: { a: { b: { c: { d: 'deep', e: null, f: [] } } }, empty: {} },
      arr: [1, 'two', null, true, { three: 3 }, [4, [5, [6]]], [], {}],
      emptyArr: [],
      emptyObj: {},
      arrOfEmpty: ['', null, {}, []]
    }
  })
  const deep = {}
  let cur = deep
  for (let i = 0; i < 40; i++) {
    cur.level = i
    cur.child = {}
    cur = cur.child
  }
  cur.leaf = [[[[[[['bottom']]]]]]]
  add('properties-deep-nesting', { ...reqOnly, properties: { deep } })
  add('properties-large-array', {
    ...reqOnly,
    properties: { items: Array.from({ length: 200 }, (_, i) => ({ i, s: `item-${i}`, even: i % 2 === 0 })) }
  })
  add('properties-null-values', { ...reqOnly, properties: { a: null, b: null, c: { d: null } } })
  add('properties-empty-string-values', { ...reqOnly, properties: { a: '', b: { c: '' }, d: [''] } })
  add('properties-booleans', { ...reqOnly, properties: { yes: true, no: false, list: [true, false] } })
  add('properties-integer-like-keys', {
    ...reqOnly,
    properties: raw('{"b":1,"10":2,"a":3,"2":4,"-1":5,"01":6,"1.5":7,"4294967294":8,"4294967295":9,"0":10,"9007199254740993":11}')
  })
  add('properties-special-keys', {
    ...reqOnly,
    properties: raw(
      '{"":"empty key"," ":"space key","a.b":"dotted","$.x":"jsonpath","__proto__":{"polluted":true},"constructor":"c","toString":"t","hasOwnProperty":1,"a/b~c":"slash tilde","é":"accent"}'
    )
  })
  add('properties-duplicate-keys', { ...reqOnly, properties: raw('{"a":1,"b":2,"a":3}') })
  add('properties-key-order', { ...reqOnly, properties: { zeta: 1, alpha: 2, Mu: 3, beta: { z: 1, a: 2 } } })

  // Numbers.
  for (const [name, text] of NUMBERS) {
    add(`number-${name}`, { ...reqOnly, properties: raw(`{"value":${text},"list":[${text}],"nested":{"v":${text}}}`) })
  }
  add('numbers-mixed', {
    ...reqOnly,
    properties: raw(`{${NUMBERS.map(([n, t]) => JSON.stringify(n) + ':' + t).join(',')}}`)
  })
  add('numbers-overflow', { ...reqOnly, properties: raw('{"big":1e400,"negbig":-1e400,"tiny":1e-400}') })

  // Visitor code.
  const kvc = all.kameleoonVisitorCode
  const props = all.properties
  add('visitor-code-only', { ...reqOnly, kameleoonVisitorCode: kvc })
  add('visitor-code-without-properties', ordered(meta, { ...reqOnly, kameleoonVisitorCode: kvc }))
  add('visitor-code-in-properties-only', { ...omit(all, ['kameleoonVisitorCode']), properties: { ...props, kameleoonVisitorCode: 'from-properties' } })
  add('visitor-code-in-properties-and-field-same', { ...all, properties: { ...props, kameleoonVisitorCode: kvc } })
  add('visitor-code-in-properties-and-field-different', { ...all, properties: { ...props, kameleoonVisitorCode: 'from-properties' } })
  add('visitor-code-first-key-in-properties', { ...all, properties: { kameleoonVisitorCode: 'from-properties', ...props } })
  add('visitor-code-in-properties-not-string-no-field', { ...omit(all, ['kameleoonVisitorCode']), properties: { kameleoonVisitorCode: 12345, x: 1 } })
  add('visitor-code-in-properties-not-string-with-field', { ...all, properties: { kameleoonVisitorCode: { nested: true }, x: 1 } })
  add('visitor-code-in-properties-null-with-field', { ...all, properties: { kameleoonVisitorCode: null, x: 1 } })
  add('visitor-code-in-properties-null-no-field', { ...omit(all, ['kameleoonVisitorCode']), properties: { kameleoonVisitorCode: null, x: 1 } })
  add('visitor-code-empty-string', { ...all, kameleoonVisitorCode: '' })
  add('visitor-code-empty-string-in-properties', { ...all, kameleoonVisitorCode: '', properties: { kameleoonVisitorCode: 'from-properties' } })
  add('visitor-code-whitespace', { ...all, kameleoonVisitorCode: '  ' })
  add('visitor-code-unicode', { ...all, kameleoonVisitorCode: 'ṽïšïțøř-😀' })
  add('visitor-code-with-empty-properties', { ...all, properties: {} })
  add('visitor-code-case-variant-in-properties', { ...all, properties: { KameleoonVisitorCode: 'upper', kameleoonvisitorcode: 'lower' } })

  // Context.
  if (hasField('context')) {
    add('context-absent', omit(all, ['context']))
    add('context-minimal', { ...all, context: { ip: '198.51.100.1' } })
    add('context-nested', { ...all, context: { ...CONTEXT, device: { id: 'd1', advertisingId: null, adTrackingEnabled: false }, traits: { a: [1, 2, { b: 'c' }] }, personas: { computation_key: 'k' } } })
    add('context-personas-null', { ...all, context: { ip: '198.51.100.1', personas: null } })
    add('context-personas-string', { ...all, context: { personas: 'p' } })
    add('context-personas-audience-membership', { ...all, properties: { aud: true }, context: { personas: { computation_class: 'audience', computation_key: 'aud' } } })
    add('context-with-personas-audience-settings', { ...all, context: { personas: { audience_settings: { x: 1 }, computation_class: 'audience' } } })
  }

  // Type values.
  const TYPES = [
    ['track', 'track'], ['identify', 'identify'], ['page', 'page'], ['group', 'group'], ['alias', 'alias'],
    ['screen', 'screen'], ['upper-track', 'TRACK'], ['capital-page', 'Page'], ['custom', 'custom-type'],
    ['padded-page', ' page '], ['cyrillic', 'типа'], ['emoji', '😀']
  ]
  for (const [name, t] of TYPES) {
    if (t === naturalType) continue
    add(`type-${name}`, { ...all, type: t })
  }

  // Timestamps.
  timestampSample().forEach((ts, i) => {
    add(`timestamp-${String(i).padStart(2, '0')}-${slugify(ts)}`, { ...all, timestamp: ts })
  })

  const seen = new Set()
  for (const c of cases) {
    if (seen.has(c.name)) rt.die(`duplicate case ${c.name}`)
    seen.add(c.name)
  }
  return cases
}

function kebab(s) {
  return s
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/[^A-Za-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .toLowerCase()
}

function slugify(ts) {
  const s = kebab(ts.replace(/\+/g, ' plus ').replace(/(\d)-(\d)/g, '$1$2'))
  if (s) return s.slice(0, 40)
  return 'x' + Buffer.from(ts).toString('hex').slice(0, 16)
}

// ---------------------------------------------------------------------------

async function main() {
  const dest = rt.newDestination()
  const out = { settings: { ...rt.SETTINGS }, cases: [] }
  const counts = {}
  for (const slug of ACTIONS) {
    const meta = actionMeta(slug)
    const cases = buildCases(meta)
    counts[slug] = cases.length
    for (const c of cases) {
      const result = await runPayload(dest, meta, c.payload)
      out.cases.push({ name: c.name, action: c.action, payload: c.payload, result })
    }
  }
  rt.writeJson(path.join(rt.GOLDENS, 'actions.json'), out)

  // date-time: run each value as the timestamp of a minimal logEvent payload.
  const meta = actionMeta('logEvent')
  const base = pick(NATURAL.logEvent, meta.required)
  const dt = { cases: [] }
  for (const value of DATETIMES) {
    const result = await runPayload(dest, meta, { ...base, timestamp: value })
    let valid
    if (result.request) valid = true
    else if (result.error.fields.length === 1 && result.error.fields[0] === 'timestamp') valid = false
    else rt.die(`datetime ${JSON.stringify(value)}: unexpected error ${JSON.stringify(result.error)}`)
    const c = { value, valid }
    if (!valid) c.message = result.error.message
    dt.cases.push(c)
  }
  rt.writeJson(path.join(rt.GOLDENS, 'datetimes.json'), dt)
  const nValid = dt.cases.filter((c) => c.valid).length
  console.log(`actions: ${JSON.stringify(counts)}; datetimes: ${dt.cases.length} (${nValid} valid)`)
  if (rt.interceptorCalls() === 0) rt.die('no request was intercepted')
}

main().catch((err) => rt.die('recording failed', err))
