#!/usr/bin/env node
// Records tests/goldens/triggers.json and tests/goldens/mappings.json from
// Segment's runtime: the trigger language of @segment/destination-subscriptions
// (parseFql + validate, as actions-core's onSubscription uses them) and the
// directives of @segment/actions-core's mapping-kit (transform).
//
// The corpus is built here, deterministically (a seeded PRNG, no clock, no
// Math.random): re-recording gives byte-identical files.
'use strict'

const fs = require('fs')
const path = require('path')
const { parseFql, validate } = require('@segment/destination-subscriptions')
const validateModule = require('@segment/actions-core/mapping-kit/validate')
const { transform } = require('@segment/actions-core/mapping-kit')

const GOLDENS = path.join(__dirname, '..', '..', 'tests', 'goldens')

// ---------------------------------------------------------------- helpers

function mulberry32(seed) {
  return function () {
    seed |= 0
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const rand = mulberry32(20240611)
const pick = (list) => list[Math.floor(rand() * list.length)]
const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)))

function messageOf(err) {
  if (err && (err.name === 'AggregateError' || typeof err[Symbol.iterator] === 'function')) {
    return [...err].map((e) => e.message).join('; ')
  }
  return err && err.message !== undefined ? String(err.message) : String(err)
}

// Nested values too deep for Python's json module are described, not stored.
function nest(spec) {
  if (spec.kind === 'json_text') return '['.repeat(spec.depth) + ']'.repeat(spec.depth)
  let value = spec.leaf === undefined ? 1 : spec.leaf
  for (let i = 0; i < spec.depth; i++) {
    value = spec.kind === 'array' ? [value] : { [spec.key || 'a']: value, n: null }
  }
  return value
}
function buildEvent(c) {
  const event = clone(c.event)
  if (c.event_gen) {
    event.properties = event.properties || {}
    event.properties[c.event_gen.field] = nest(c.event_gen)
  }
  return event
}

// ================================================================ triggers

function recordTriggers() {
  const valuePool = [
    null, true, false, 0, 1, -1, 3, 3.5, 10, 100, -0.5, 1e21, 42, '', '0', '3', '10', '3.5', 'abc', 'ABC',
    'Abc Def', 'track', 'true', 'false', 'null', 'héllo wörld', '😀x', 'x😀', 'Order Completed',
    [], [1, 2], ['a', 'b'], {}, { x: 1 }, { x: 'abc', y: { z: 2 } }
  ]
  const fixedEvents = [
    { type: 'track', event: 'Order Completed', userId: 'u1', properties: { a: 'abc', n: 3, b: true, nested: { x: 5, s: 'abc' }, items: [1, 2, 3], total: 10 }, traits: { email: 'a@b.c', age: 30, vip: true }, context: { ip: '1.2.3.4', page: { url: 'https://x.io/a', path: '/a' }, n: 1 } },
    { type: 'track', event: 'order completed', userId: null, properties: { a: 'ABC', n: '3', b: 'true', total: 0 }, context: {} },
    { type: 'page', name: 'Home', userId: 'u2', properties: { path: '/', n: 3.5, url: 'https://x.io/' } },
    { type: 'page', name: '', properties: {}, anonymousId: 'anon' },
    { type: 'identify', userId: 'u3', traits: { email: 'x@y.z', age: '30', vip: false, n: 0, name: 'Zoë' } },
    { type: 'group', groupId: 'g1', userId: 'u4', traits: { plan: 'pro', seats: 10 } },
    { type: 'alias', userId: 'u5', previousId: 'p5' },
    { type: 'screen', name: 'Main', properties: { n: -1 } },
    { type: 'TRACK', event: 'Order Completed' },
    { type: 'track', event: 'Signed Up', properties: { a: null, n: null, b: false, nested: null, items: [] } },
    { type: 'track', event: 'Signed Up', properties: 'abc' },
    { type: 'track', event: 'Signed Up', properties: [1, 2], traits: 'x', context: 5 },
    { type: 'track', event: 42, userId: 7, name: true, properties: { a: 0, n: 1e21, nested: { x: '5' } } },
    { type: 'track', event: '😀 emoji', userId: 'ü', properties: { a: 'x😀', n: 100, 'with space': 'yes', 'a.b': 'dotted', a2: { b: 'nested a2' } } },
    { type: 'track', event: 'Product Viewed', properties: { a: '', n: '', b: 'false', nested: { x: [1, { y: 2 }] }, items: 'abc' } },
    { type: 'track' },
    {},
    { type: null, event: null, name: null, userId: '' },
    { type: 'track', event: 'Deep', properties: { l1: { l2: { l3: { l4: { l5: 'deep' } } } }, nested: { x: { length: 3 } } } },
    { type: 'track', event: 'Numbers', properties: { n: 3, total: -0.5, price: 42, qty: '42' }, context: { n: 3 } }
  ]
  const keys = ['a', 'n', 'b', 'total', 'nested', 'items', 'x']
  const genEvents = []
  for (let i = 0; i < 10; i++) {
    const props = {}
    const traits = {}
    for (const k of keys) {
      if (rand() < 0.7) props[k] = clone(pick(valuePool))
      if (rand() < 0.4) traits[k] = clone(pick(valuePool))
    }
    genEvents.push({
      type: pick(['track', 'page', 'identify', 'group', 'screen', 'alias', 'Track', '']),
      event: pick(['Order Completed', 'Signed Up', 'abc', '', undefined, 3, null]),
      name: pick(['Home', 'abc', undefined, null, '']),
      userId: pick(['u1', undefined, null, '', 5, true]),
      properties: props,
      traits,
      context: { n: pick(valuePool), page: { url: pick(['https://x.io/a', 'http://y', undefined]) } }
    })
  }
  const events = [...fixedEvents, ...genEvents].map((e) => clone(e))

  const handWritten = [
    // event types and names
    'type = "track"', 'type = "page"', 'type = "identify"', 'type = "group"', 'type = "alias"', 'type = "screen"',
    'type != "track"', 'type = "Track"', 'type = track', 'type = "track" or type = "page"',
    'type = "track" and event = "Order Completed"', 'event = "Order Completed"', 'event != "Order Completed"',
    'event = "order completed"', "event = 'Order Completed'", 'event = 42', 'event = "42"', 'event = null',
    'event != null', 'event = true', 'event = "😀 emoji"', 'event = "Signed Up" or event = "Product Viewed"',
    'name = "Home"', 'name != "Home"', 'name = null', 'name != null', 'name = ""', 'name = true',
    'userId = "u1"', 'userId != "u1"', 'userId = null', 'userId != null', 'userId = true', 'userId = false',
    'userId = 7', 'userId = ""', 'userId = "ü"',
    // properties
    'properties.a = "abc"', 'properties.a = "ABC"', 'properties.a != "abc"', 'properties.a = null', 'properties.a != null',
    'properties.n = 3', 'properties.n = 3.0', 'properties.n = "3"', 'properties.n != 3', 'properties.n != "3"',
    'properties.n > 2', 'properties.n >= 3', 'properties.n < 3', 'properties.n <= 3', 'properties.n > "2"',
    'properties.n < "abc"', 'properties.n > -1', 'properties.n >= -0.5', 'properties.n < 1e3', 'properties.n > 100',
    'properties.total > 0', 'properties.total <= 0', 'properties.total = 0', 'properties.total = -0.5', 'properties.total = -.5',
    'properties.n = +3', 'properties.n > true', 'properties.n < null', 'properties.n > null',
    'properties.b = true', 'properties.b = false', 'properties.b != true', 'properties.b = "true"', 'properties.b != false',
    'properties.nested.x = 5', 'properties.nested.x = "5"', 'properties.nested.x > 4', 'properties.nested.s = "abc"',
    'properties.nested = null', 'properties.nested != null', 'properties.nested.x.length = 3', 'properties.items.length = 3',
    'properties.items.0 = 1', 'properties.a.length = 3', 'properties.a.length > 2', 'properties.a.0 = "a"',
    'properties.items != null', 'properties.items = null', 'properties.l1.l2.l3.l4.l5 = "deep"', 'properties.l1.l2.l3.l4.l5 != null',
    'properties.missing = null', 'properties.missing != null', 'properties.missing != "x"', 'properties.missing = "x"',
    'properties.with\\ space = "yes"', 'properties.a\\.b = "dotted"', 'properties.a2.b = "nested a2"',
    'properties.a = "x😀"', 'properties.price = 42', 'properties.qty = 42', 'properties.qty = "42"',
    'properties.n = 1e21', 'properties.n = 1000000000000000000000', 'properties = "abc"', 'properties.0 = 1',
    'properties.nested.x.0 = 1', 'properties.nested.x.1.y = 2',
    // traits and context
    'traits.email = "a@b.c"', 'traits.email != null', 'traits.age > 18', 'traits.age = 30', 'traits.age = "30"',
    'traits.vip = true', 'traits.vip = false', 'traits.name = "Zoë"', 'traits.seats >= 10', 'traits.missing = null',
    'traits.length = 1', 'traits.n = 0',
    'context.ip = "1.2.3.4"', 'context.page.url = "https://x.io/a"', 'context.page.path != null', 'context.n = 1',
    'context.n > 0', 'context = 5', 'context.page = null', 'context.n = 3',
    // functions
    'contains(event, "Order")', 'contains(event, "order")', '!contains(event, "Order")', 'contains(name, "om")',
    'contains(userId, "u")', 'contains(properties.a, "b")', '!contains(properties.a, "b")', 'contains(traits.email, "@")',
    'contains(context.page.url, "x.io")', 'contains(type, "track")', 'contains(properties.n, "3")', 'contains(event, "")',
    'contains(event, 42)', 'contains(event,"Order")', 'contains( event , "Order" )', "contains(event, 'Order')",
    'match(event, "Order*")', 'match(event, "*Completed")', '!match(event, "Order*")', '!match(event, "*Completed")',
    'match(event, "Completed")', 'match(event, "*")', 'match(properties.a, "ab*")', 'match(traits.email, "*.c")',
    'match(context.page.url, "https*")', 'match(name, "H*")', 'match(userId, "u*")', 'match(event, 42)',
    "match(event, 'Order*')", 'match(event, "😀*")', 'match(event, "😀 emoji")', 'match(properties.a, "*😀")',
    'match(properties.a, "x😀")',
    // combinations and grouping
    'type = "track" and properties.n > 2', 'type = "track" and (event = "Order Completed" or event = "Signed Up")',
    '(type = "page" or type = "screen") and name != null', '(type = "track")', '(type = "track" or type = "page")',
    'type = "track" and event = "Signed Up" or type = "page"', 'type = "page" or event = "Signed Up" and userId != null',
    'type = "track" and !contains(event, "Signed")', '!(type = "track")', '!type = "track"',
    'type = "track" and ()', '() or type = "track"', 'type = "page" and ()',
    '(type = "track") and (event = "Signed Up")', '(type = "track" and (event = "x"))', '((type = "track"))',
    'type = "track" and properties.a = "abc" and properties.n = 3 and properties.b = true',
    'type = "identify" or type = "group" or type = "alias"',
    // whitespace and layout
    'type="track"', 'type= "track"', 'type ="track"', '  type = "track"  ', 'type = "track"\nand event = "Order Completed"',
    'type = "track"\tor type = "page"', 'type = "track" and\n  properties.n > 2',
    // lexer and parser quirks
    'event = an', 'event = a', 'event = and', 'event = o', 'event = Signed', 'event = android', 'event = nul',
    'event = nullx', 'event = -', 'event = +', 'event = 1.5', 'event = 007', 'event = 1.50', 'event = -0',
    'event =', 'name = null and', 'type = "track" and', 'type = "track" or', 'and type = "track"',
    'properties.a != "x" and properties.n <= 3', 'properties.n <=3', 'properties.n >=3', 'properties.n<3', 'properties.n > 2 ',
    'properties.a!="abc"', 'properties.a !="abc"', 'type = "track"and event = "x"', 'type = "track" andevent = "x"',
    'event contains "Order"', 'event starts_with "Order"', 'properties.n number_equals 3', 'properties.b is_true x',
    'userId exists x', 'event = "a" "b"', 'constructor = 1', 'toString = "x" and type = "track"', '__proto__ = 1',
    'hasOwnProperty = 1 or type = "page"', 'properties.constructor != null', 'properties.toString = null',
    'properties.hasOwnProperty != null', 'properties.a.toUpperCase != null', 'properties.items.map != null',
    'properties.n.toFixed != null', 'properties.constructor.name = "Object"', 'properties.a.constructor.name = "String"',
    'properties.\\. = 1', 'type = "track" or properties.\\. = 1', 'properties.[] = 1',
    'foo = "bar"', 'foo = "bar" and type = "track"', 'foo', 'type', 'type =', '!', '!contains', 'contains(',
    'contains(event', 'contains(event,', 'contains(event, "x"', 'match(', 'match(event, ', '(', ')', '()', '( )',
    '(type = "track"', 'type = "track")', 'type = "track" )', '"track"', '42', 'true', 'null', 'and', 'or',
    'type = "unterminated', "type = 'single'", "type = 'track'", 'type = "a\\"b"', 'type = "tr"ack"', 'type @ "track"',
    'type = "track" # comment', 'type = "track";', 'type == "track"', 'type === "track"', 'type <> "track"',
    'type = "track" && event = "x"', 'type = "track" || event = "x"', 'type = "track" AND event = "x"',
    'type = "track" OR type = "page"', 'TYPE = "track"', 'Type = "track"', 'types = "track"', 'type.foo = "track"',
    'properties = null', 'properties != null', 'traits != null', 'context != null', 'properties',
    'type = "track" or type = "page" and type = "identify"', 'type = "track" and type = "page" or type = "identify"',
    'type = "track"\r\n', 'type\u00a0= "track"', 'type = "tráck"', 'type = "track" and event = "😀 emoji"',
    'userId = "u1" and userId != null', 'userId != "u1" and userId != null', 'properties.n > 2.5.1',
    'properties.n > 2.', 'properties.n > .5', 'properties.n > 5.a', 'event = \\"quoted\\"', 'event = Order\\ Completed',
    'properties.a = abc', 'properties.a = true', 'properties.a != false', 'properties.n = -1', 'properties.n != -1',
    'properties.n = 3 and properties.n != 3', 'properties.n = "NaN"', 'properties.n > "0x2"', 'properties.n < " 4 "',
    'properties.n > "Infinity"', 'properties.n < "Infinity"', 'properties.n < "-Infinity"', 'properties.n < "1e3"',
    'properties.n > ""', 'properties.n >= ""', 'properties.n < "0b11"', 'properties.n = "3.0"'
  ]
  // Generated combinations.
  const atoms = [
    'type = "track"', 'type = "page"', 'event = "Order Completed"', 'event != "Signed Up"', 'name != null',
    'userId = null', 'userId != null', 'properties.a = "abc"', 'properties.n > 2', 'properties.n <= 3',
    'properties.b = true', 'properties.total = 0', 'traits.age >= 18', 'traits.vip = false', 'context.n != null',
    'contains(event, "e")', '!contains(event, "Signed")', 'match(event, "Order*")', '!match(properties.a, "*c")',
    'properties.items.length > 1', 'properties.nested.x = 5', 'properties.missing = null'
  ]
  const generated = []
  for (let i = 0; i < 80; i++) {
    const n = 2 + Math.floor(rand() * 3)
    const parts = []
    for (let j = 0; j < n; j++) parts.push(pick(atoms))
    let text = parts[0]
    for (let j = 1; j < n; j++) text += ` ${pick(['and', 'or'])} ${parts[j]}`
    if (rand() < 0.4) {
      const a = pick(atoms)
      const b = pick(atoms)
      text = `${pick(atoms)} ${pick(['and', 'or'])} (${a} ${pick(['and', 'or'])} ${b})`
    }
    generated.push(text)
  }
  const all = [...handWritten, ...generated, '']
  const seen = new Set()
  const cases = []
  for (const subscribe of all) {
    if (seen.has(subscribe)) continue
    seen.add(subscribe)
    let error = null
    let parsed = null
    if (!subscribe || typeof subscribe !== 'string') {
      error = 'Failed to validate subscription' // actions-core's check before parseFql
    } else {
      parsed = parseFql(subscribe)
      if (parsed.error) error = parsed.error.message
    }
    const results = []
    if (!error) {
      for (const event of events) {
        try {
          results.push({ event, match: validate(parsed, event) })
        } catch (e) {
          results.push({ event, match: null, error: messageOf(e) })
        }
      }
    }
    cases.push({ subscribe, error, ast: error ? null : parsed, events: results })
  }
  return { cases }
}

// ================================================================ mappings

let phase = 'resolve'
const originalValidate = validateModule.default
validateModule.default = function (mapping, stack) {
  if (phase === 'compile') {
    originalValidate(mapping, stack)
    phase = 'resolve'
    return null
  }
  return originalValidate(mapping, stack)
}

function runMapping(mapping, event) {
  phase = 'compile'
  try {
    const output = transform(clone(mapping), event)
    return { output }
  } catch (e) {
    if (phase === 'compile') return { invalid: messageOf(e) }
    return { error: messageOf(e) }
  } finally {
    phase = 'resolve'
  }
}

const baseEvent = {
  type: 'track',
  event: 'Order Completed',
  userId: 'user-1',
  anonymousId: 'anon-1',
  messageId: 'msg-1',
  timestamp: '2024-05-01T10:00:00.000Z',
  properties: {
    revenue: 19.99,
    quantity: 3,
    zero: 0,
    negative: -2.5,
    big: 1e21,
    small: 1e-7,
    float_int: 2,
    free: false,
    paid: true,
    empty: '',
    space: ' ',
    nothing: null,
    name: 'Blue Shirt',
    mixed: 'MiXeD Case ß İ Σ',
    unicode: 'héllo wörld 😀 ✓',
    product: { id: 'p1', price: 10, tags: ['a', 'b'], meta: { color: 'blue', size: null } },
    products: [
      { id: 'p1', price: 10, qty: 1 },
      { id: 'p2', price: 20, qty: null, extra: { x: 1 } },
      { id: 'p3' }
    ],
    tags: ['x', 'y', 'z'],
    nums: [1, 2, 3],
    nested_arrays: [[1, 2], [3, [4, 5]], []],
    mixed_list: [null, 1, 'a', true, { k: 'v' }, [2]],
    empty_list: [],
    empty_obj: {},
    numeric_keys: { b: 1, 2: 'two', a: 3, 1: 'one', 10: 'ten', '01': 'zero-one' },
    json_text: '{"a":1,"b":[true,null],"c":"x"}',
    json_bad: '{"a":',
    json_num: '42',
    json_str: '"quoted"',
    template_like: '{{userId}}',
    dotted: { 'a.b': 'dot-key', a: { b: 'nested-ab' } },
    'key with space': 'spaced',
    "quote'd": 'quoted-key',
    kameleoonVisitorCode: 'vc-123',
    url: 'https://example.com/a?b=c&d=e#f',
    email: 'Someone@Example.COM',
    phone: '+1 (555) 123-4567',
    long: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    dollar: 'price $5 and $10'
  },
  traits: { email: 'trait@example.com', name: 'Trait Name', kameleoonVisitorCode: 'vc-trait', age: 42, plan: null },
  context: {
    ip: '10.0.0.1',
    locale: 'en-US',
    page: { url: 'https://example.com/page', path: '/page', title: 'Page', search: '?q=1', referrer: '' },
    library: { name: 'analytics.js', version: '1.0.0' },
    traits: { email: 'ctx@example.com' }
  }
}
const sparseEvent = { type: 'track', event: 'Sparse', properties: {} }
const emptyEvent = {}
const oddEvent = {
  type: 'page',
  name: 42,
  userId: 0,
  event: '',
  properties: 'not-an-object',
  traits: ['t0', 't1'],
  context: null,
  $: 'dollar-key',
  '': 'empty-key',
  '0': 'zero-key'
}
const nullsEvent = {
  type: 'identify',
  userId: null,
  properties: { a: null, b: { c: null, d: { e: null, f: 1 } }, list: [null, { x: null }], s: 'x' },
  traits: { plan: null, email: null, nested: { inner: null } }
}
const EVENTS = { base: baseEvent, sparse: sparseEvent, empty: emptyEvent, odd: oddEvent, nulls: nullsEvent }

function mappingCases() {
  const cases = []
  // add(name, mapping, eventNames = [...]) records one case per event.
  const add = (name, mapping, eventNames = ['base'], extra = {}) => {
    for (const ev of eventNames) cases.push({ name: `${name} [${ev}]`, mapping, event: clone(EVENTS[ev]), ...extra })
  }
  const ALL = ['base', 'sparse', 'empty', 'odd', 'nulls']

  // ---- plain values
  add('plain/scalars', { s: 'text', n: 1, f: 1.5, t: true, fa: false, z: null, e: '', zero: 0 })
  add('plain/nested object', { a: { b: { c: 'x', d: [1, 'two', null, { e: 3 }] } } })
  add('plain/array top-level', ['a', { '@path': '$.userId' }, 3])
  add('plain/empty', {})
  add('plain/numeric keys order', { b: 1, 2: 'two', a: { '@path': '$.userId' }, 1: 'one', '01': 'x' })
  add('plain/array of directives', { list: [{ '@path': '$.userId' }, { '@path': '$.missing' }, 'lit', null] })
  add('plain/_metadata only', { x: { _metadata: { a: 1 } } })
  add('plain/odd numbers', { big: 1e21, small: 1e-7, neg: -0, exp: 123e-20, frac: 0.1, third: 1 / 3 })

  // ---- @path
  const paths = [
    '$.userId', '$.properties.revenue', '$.properties', '$.properties.product.price', '$.properties.products',
    '$.properties.products[0]', '$.properties.products[1].id', '$.properties.products.1.id', '$.properties.products[5]',
    "$.properties['key with space']", '$.properties["key with space"]', "$.properties[\"quote'd\"]", "$.properties.quote'd",
    '$.properties.dotted.a.b', "$.properties.dotted['a.b']", '$.properties.dotted["a.b"]', '$.properties.dotted[a.b]',
    '$.properties.tags[1]', '$.properties.tags.length', '$.properties.name.length', '$.properties.name[0]',
    '$.properties.name.0', '$.properties.unicode.length', '$.properties.unicode[12]', '$.properties.nested_arrays[1][1][0]',
    '$.properties.nested_arrays.1.1.0', '$.properties.missing', '$.properties.missing.deeper', '$.properties.nothing',
    '$.properties.nothing.x', '$.properties.zero', '$.properties.zero.x', '$.properties.free', '$.properties.free.x',
    '$.properties.empty', '$.properties.empty.x', '$.properties.numeric_keys', '$.properties.numeric_keys.2',
    '$.properties.numeric_keys[10]', '$.properties.numeric_keys.01', '$', '$.', '.', '', 'userId', 'properties.revenue',
    '$.$.userId', 'a.$.userId', '$$.userId', '$..userId', '$.properties..revenue', '$.properties.', '$.context.page.url',
    '$.context.page.search', '$.context.page.search.length', '$.properties.constructor', '$.properties.name.search',
    '$.properties.tags.map', '$.properties.revenue.toFixed', '$.properties.hasOwnProperty', '$.properties.name.constructor.name',
    '$.properties.products[0][price]', '$.properties.products[0]["price"]', '$.properties[products][0]', '$.properties.tags[-1]',
    '$.properties.tags[01]', '$.properties.tags[1.0]', '$.properties.tags["1"]', '$[properties][revenue]', '$["properties"]',
    '$.properties.mixed_list', '$.traits', '$.context', '$.0', '$.', '$.properties.products[0]]]', '$.properties.products[[0]',
    "$.properties.products['0']", '$.properties.json_text.length', '$.properties.empty_list.length', '$.properties.empty_obj'
  ]
  paths.forEach((p, i) => add(`@path/${i} ${p}`, { out: { '@path': p } }, i % 5 === 0 ? ALL : ['base']))
  add('@path/top-level directive', { '@path': '$.properties' })
  add('@path/top-level scalar result', { '@path': '$.userId' })
  add('@path/array result root', { '@path': '$.properties.tags' })
  add('@path/from template', { out: { '@path': { '@template': '$.properties.{{event}}' } } })
  add('@path/from template 2', { out: { '@path': { '@template': '$.{{type}}' } } }, ALL)
  add('@path/from path non-string', { out: { '@path': { '@path': '$.properties.revenue' } } })
  add('@path/from path string', { out: { '@path': { '@path': '$.properties.name' } } })
  add('@path/from path undefined', { out: { '@path': { '@path': '$.properties.missing' } } })
  add('@path/invalid number', { out: { '@path': 5 } })
  add('@path/invalid null', { out: { '@path': null } })
  add('@path/invalid bool', { out: { '@path': true } })
  add('@path/invalid array', { out: { '@path': ['$.a'] } })
  add('@path/invalid object', { out: { '@path': { a: 1 } } })
  add('@path/with _metadata', { out: { '@path': '$.userId', _metadata: { label: 'x' } } })
  add('@path/with other key', { out: { '@path': '$.userId', other: 1 } })
  add('@path/two directives', { out: { '@path': '$.userId', '@template': 'x' } })
  add('@path/in array not validated', { out: [{ '@path': 5 }] })
  add('@path/in array with other key', { out: [{ '@path': '$.userId', other: 1 }] })
  add('@path/in array two directives', { out: [{ '@template': '{{userId}}', '@path': '$.event' }] })
  add('@unknown directive', { out: { '@unknown': '$.userId' } })
  add('@unknown directive in array', { out: [{ '@unknown': 1 }] })
  add('@bad name', { out: { '@': 1 } })
  add('deep invalid', { a: { b: [{ '@path': 1 }], c: { d: { '@path': 2 } }, e: { '@template': 3 } } })
  add('multiple invalid', { 2: { '@path': 1 }, a: { '@template': false }, 1: { '@literal': undefined }, b: { '@if': 'x' } })

  // ---- @template
  const templates = [
    'Hello {{userId}}', '{{properties.name}} x{{properties.quantity}}', '{{ properties.name }}', '{{properties.missing}}',
    '{{properties.nothing}}', '{{properties.free}}', '{{properties.zero}}', '{{properties.product}}', '{{properties.tags}}',
    '{{properties.nested_arrays}}', '{{properties.mixed_list}}', '{{properties.revenue}}', '{{properties.big}}',
    '{{properties.small}}', '{{properties.negative}}', '{{{properties.name}}}', '{{{properties.template_like}}}',
    '{{properties.template_like}}', 'no placeholders', '', '{{}}', '{{ }}', '{{{}}}', '{ {userId} }', '{{userId}',
    '{{{userId}}', '{{userId}}}', '{{{{userId}}}}', '{{a{b}}', '{{properties.products[0].id}}', "{{properties['key with space']}}",
    '{{properties.dotted.a.b}}', '{{$.userId}}', '{{userId}}{{userId}}', '{{ userId }} and {{{ event }}}',
    '$& {{userId}} $1 $$', '{{properties.dollar}}', '{{properties.name.length}}', '{{properties.constructor}}',
    '{{properties.tags.map}}', '{{\u00a0userId\u00a0}}', '{{\tuserId\n}}', '{{properties.unicode}}', '{{type}}:{{event}}',
    '{{properties.empty_list}}', '{{properties.empty_obj}}', '{{properties.numeric_keys.1}}', '{{properties.mixed}}'
  ]
  templates.forEach((t, i) => add(`@template/${i} ${JSON.stringify(t)}`, { out: { '@template': t } }, i % 4 === 0 ? ALL : ['base']))
  add('@template/from path', { out: { '@template': { '@path': '$.properties.template_like' } } })
  add('@template/from path non-string', { out: { '@template': { '@path': '$.properties.revenue' } } })
  add('@template/invalid number', { out: { '@template': 1 } })
  add('@template/invalid object', { out: { '@template': { a: 1 } } })

  // ---- @literal
  add('@literal/string', { out: { '@literal': 'lit' } })
  add('@literal/number', { out: { '@literal': 0 } })
  add('@literal/null', { out: { '@literal': null } })
  add('@literal/false', { out: { '@literal': false } })
  add('@literal/object', { out: { '@literal': { a: 1, b: [1, 2] } } })
  add('@literal/array', { out: { '@literal': [1, { '@path': '$.userId' }] } })
  add('@literal/directive inside', { out: { '@literal': { '@path': '$.userId' } } })
  add('@literal/nested directive in object', { out: { '@literal': { a: { '@path': '$.userId' } } } })
  add('@literal/empty string', { out: { '@literal': '' } })

  // ---- @if
  const ifs = [
    { exists: { '@path': '$.userId' }, then: 'yes', else: 'no' },
    { exists: { '@path': '$.properties.missing' }, then: 'yes', else: 'no' },
    { exists: { '@path': '$.properties.nothing' }, then: 'yes', else: 'no' },
    { exists: { '@path': '$.properties.zero' }, then: 'yes', else: 'no' },
    { exists: { '@path': '$.properties.empty' }, then: 'yes', else: 'no' },
    { exists: { '@path': '$.properties.free' }, then: { '@path': '$.properties.free' }, else: 'no' },
    { blank: { '@path': '$.properties.empty' }, then: 'yes', else: 'no' },
    { blank: { '@path': '$.properties.space' }, then: 'yes', else: 'no' },
    { blank: { '@path': '$.properties.zero' }, then: 'yes', else: 'no' },
    { blank: { '@path': '$.properties.free' }, then: 'yes', else: 'no' },
    { blank: { '@path': '$.properties.paid' }, then: 'yes', else: 'no' },
    { blank: { '@path': '$.properties.empty_list' }, then: 'yes', else: 'no' },
    { blank: { '@path': '$.properties.empty_obj' }, then: 'yes', else: 'no' },
    { blank: { '@path': '$.properties.mixed_list' }, then: 'yes', else: 'no' },
    { blank: { '@path': '$.properties.nothing' }, then: 'yes', else: 'no' },
    { blank: { '@path': '$.properties.missing' }, then: 'yes', else: 'no' },
    { blank: { '@path': '$.properties.name' }, then: 'yes', else: 'no' },
    { blank: { '@literal': [[]] }, then: 'yes', else: 'no' },
    { blank: { '@literal': [null] }, then: 'yes', else: 'no' },
    { blank: { '@literal': [0] }, then: 'yes', else: 'no' },
    { blank: { '@literal': [[], []] }, then: 'yes', else: 'no' },
    { blank: 'literal', then: 'yes', else: 'no' },
    { exists: { '@path': '$.userId' } },
    { exists: { '@path': '$.missing' }, then: 'yes' },
    { exists: { '@path': '$.missing' }, else: 0 },
    { exists: { '@path': '$.missing' }, else: false },
    { exists: { '@path': '$.missing' }, else: '' },
    { exists: { '@path': '$.missing' }, else: null },
    { exists: { '@path': '$.missing' }, else: { '@path': '$.userId' } },
    { exists: { '@path': '$.userId' }, then: null, else: 'no' },
    { exists: { '@path': '$.userId' }, then: { nested: { '@path': '$.event' } } },
    { exists: 'literal', then: 'yes', else: 'no' },
    { exists: 0, then: 'yes', else: 'no' },
    { exists: '', then: 'yes', else: 'no' },
    { exists: null, then: 'yes', else: 'no' },
    { exists: false, blank: { '@path': '$.userId' }, then: 'yes', else: 'no' },
    { exists: { '@path': '$.properties.missing' }, blank: { '@path': '$.userId' }, then: 'yes', else: 'no' },
    { then: 'yes', else: 'no' },
    {},
    { exists: { '@path': '$.userId' }, then: 'yes', extra: 1 },
    { exists: { '@path': 5 }, then: 'yes' },
    { blank: { '@path': 5 }, then: 'yes' },
    { blank: { '@nope': 5 }, then: 'yes' },
    { exists: { '@path': '$.userId' }, then: { '@path': 1 } },
    { exists: { '@path': '$.userId' }, then: { '@if': { exists: { '@path': '$.event' }, then: 'both' } } },
    { exists: { '@if': { exists: { '@path': '$.event' }, then: 'x' } }, then: 'outer' }
  ]
  ifs.forEach((opts, i) => add(`@if/${i}`, { out: { '@if': opts } }, i % 3 === 0 ? ALL : ['base', 'nulls']))
  add('@if/not object string', { out: { '@if': 'x' } })
  add('@if/not object array', { out: { '@if': [] } })
  add('@if/null', { out: { '@if': null } })
  add('@if/directive as opts', { out: { '@if': { '@path': '$.userId' } } })
  add('@if/in array not object', { out: [{ '@if': 'x' }] })
  add('@if/in array no exists', { out: [{ '@if': { then: 1 } }] })

  // ---- @case
  const cases_ = [
    { operator: 'lower', value: { '@path': '$.properties.mixed' } },
    { operator: 'upper', value: { '@path': '$.properties.mixed' } },
    { operator: 'upper', value: { '@path': '$.properties.unicode' } },
    { operator: 'lower', value: { '@path': '$.properties.email' } },
    { operator: 'lower', value: 'LITERAL Text' },
    { operator: 'upper', value: 'ǆ ŉ ﬀ ΐ straße' },
    { operator: 'lower', value: 'ΑΣ ΟΔΟΣ Σ İSTANBUL ẞ' },
    { operator: 'lower', value: { '@path': '$.properties.revenue' } },
    { operator: 'lower', value: { '@path': '$.properties.missing' } },
    { operator: 'lower', value: { '@path': '$.properties.product' } },
    { operator: 'lower', value: { '@path': '$.properties.nothing' } },
    { operator: 'sideways', value: { '@path': '$.properties.name' } },
    { operator: 'sideways', value: { '@path': '$.properties.revenue' } },
    { operator: 'LOWER', value: 'X' },
    { operator: 'lower', value: '' },
    { operator: 'lower' },
    { value: 'X' },
    { operator: '', value: 'X' },
    { operator: 1, value: 'X' },
    { operator: 'lower', value: 5 },
    { operator: 'lower', value: { a: 1 } },
    { operator: 'lower', value: 'X', extra: true },
    {}
  ]
  cases_.forEach((opts, i) => add(`@case/${i}`, { out: { '@case': opts } }, i % 4 === 0 ? ALL : ['base']))
  add('@case/not object', { out: { '@case': 'lower' } })
  add('@case/in array bad operator', { out: [{ '@case': { operator: 1, value: 'X' } }] })
  add('@case/in array no operator', { out: [{ '@case': { value: 'X' } }] })

  // ---- @replace
  const replaces = [
    { pattern: 'Blue', replacement: 'Red', value: { '@path': '$.properties.name' } },
    { pattern: 'blue', replacement: 'Red', value: { '@path': '$.properties.name' } },
    { pattern: 'blue', replacement: 'Red', ignorecase: true, value: { '@path': '$.properties.name' } },
    { pattern: 'a', replacement: 'b', value: { '@path': '$.properties.long' } },
    { pattern: 'a', replacement: 'b', global: false, value: { '@path': '$.properties.long' } },
    { pattern: 'aa', replacement: 'b', value: { '@path': '$.properties.long' } },
    { pattern: ' ', replacement: '_', value: { '@path': '$.properties.name' } },
    { pattern: ' ', value: { '@path': '$.properties.name' } },
    { pattern: '.', replacement: '!', value: 'a.b.c' },
    { pattern: '*', replacement: '+', value: 'a*b*c' },
    { pattern: '(', replacement: '[', value: 'f(x)(y)' },
    { pattern: '$', replacement: 'USD', value: { '@path': '$.properties.dollar' } },
    { pattern: '\\', replacement: '/', value: 'a\\b\\c' },
    { pattern: '^', replacement: 'x', value: 'a^b' },
    { pattern: '[a]', replacement: 'x', value: '[a][a]' },
    { pattern: 'a', replacement: '$&$&', value: 'banana' },
    { pattern: 'n', replacement: '$`', value: 'banana' },
    { pattern: 'n', replacement: "$'", value: 'banana' },
    { pattern: 'n', replacement: '$$', value: 'banana' },
    { pattern: 'n', replacement: '$1', value: 'banana' },
    { pattern: 'n', replacement: '$<x>', value: 'banana' },
    { pattern: 'n', replacement: '$0$', value: 'banana' },
    { pattern: 'ß', replacement: 'ss', ignorecase: true, value: 'STRASSE straße STRAẞE' },
    { pattern: 'σ', replacement: 's', ignorecase: true, value: 'ΟΔΟΣ οδος ς' },
    { pattern: 's', replacement: 'z', ignorecase: true, value: 'sS ſ' },
    { pattern: 'k', replacement: 'q', ignorecase: true, value: 'kK K' },
    { pattern: 'i', replacement: '1', ignorecase: true, value: 'iI İ ı' },
    { pattern: '😀', replacement: ':)', value: { '@path': '$.properties.unicode' } },
    { pattern: 'é', replacement: 'e', ignorecase: true, value: 'ÉéE' },
    { pattern: '1', replacement: 'one', value: { '@path': '$.properties.revenue' } },
    { pattern: '1', replacement: 'one', value: { '@path': '$.properties.big' } },
    { pattern: 'e', replacement: 'E', value: { '@path': '$.properties.paid' } },
    { pattern: 'x', replacement: 'y', value: { '@path': '$.properties.product' } },
    { pattern: 'x', replacement: 'y', value: { '@path': '$.properties.missing' } },
    { pattern: 'x', replacement: 'y', value: { '@path': '$.properties.nothing' } },
    { pattern: 'x', replacement: 'y', value: { '@path': '$.properties.tags' } },
    { pattern: 'e', replacement: 'E', pattern2: 'l', replacement2: 'L', value: 'hello' },
    { pattern: 'e', replacement: 'E', pattern2: 'l', value: 'hello' },
    { pattern: 'e', replacement: 'E', pattern2: 'l', replacement2: 5, value: 'hello' },
    { pattern: 'e', replacement: 'E', pattern2: 5, value: 'hello' },
    { pattern: 'e', replacement: 'E', pattern2: 'abcdefghijk', replacement2: 'x', value: 'hello' },
    { pattern: 'e', replacement: 'E', pattern2: 'l', replacement2: 'abcdefghijk', value: 'hello' },
    { pattern: 'e', replacement: 'E', pattern2: 'L', replacement2: '_', ignorecase: true, global: false, value: 'hello' },
    { pattern: '0123456789', replacement: 'x', value: 'a0123456789' },
    { pattern: '01234567890', replacement: 'x', value: 'a' },
    { pattern: '', replacement: 'x', value: 'a' },
    { pattern: 'a', replacement: '0123456789', value: 'a' },
    { pattern: 'a', replacement: '01234567890', value: 'a' },
    { pattern: 'a', replacement: '', value: 'banana' },
    { pattern: 'a', replacement: null, value: 'banana' },
    { pattern: 5, replacement: 'x', value: 'a5' },
    { pattern: 'a', replacement: 5, value: 'a' },
    { pattern: 'a', replacement: 'b', value: 5 },
    { pattern: 'a', replacement: 'b', value: '' },
    { pattern: 'a', replacement: 'b' },
    { replacement: 'b', value: 'a' },
    { pattern: 'a', replacement: 'b', value: 'a', ignorecase: 'yes' },
    { pattern: 'a', replacement: 'b', value: 'a', global: 1 },
    { pattern: 'a', replacement: 'b', value: 'a', global: null },
    { pattern: '😀😀😀😀😀', replacement: 'x', value: '😀😀😀😀😀' },
    { pattern: '😀😀😀😀😀😀', replacement: 'x', value: '😀' },
    { pattern: '\n', replacement: ' ', value: 'a\nb' },
    { pattern: '\u00a0', replacement: ' ', value: 'a\u00a0b' }
  ]
  replaces.forEach((opts, i) => add(`@replace/${i}`, { out: { '@replace': opts } }, i % 6 === 0 ? ALL : ['base']))
  add('@replace/not object', { out: { '@replace': 'x' } })
  add('@replace/in array pattern number', { out: [{ '@replace': { pattern: 5, value: 'a5' } }] })
  add('@replace/in array long pattern', { out: [{ '@replace': { pattern: 'abcdefghijk', value: 'a' } }] })
  add('@replace/in array bool ignorecase', { out: [{ '@replace': { pattern: 'a', value: 'A', ignorecase: 'yes' } }] })
  add('@replace/in array no pattern', { out: [{ '@replace': { value: 'A' } }] })

  // ---- @arrayPath
  const arrayPaths = [
    ['$.properties.products', { id: { '@path': '$.id' }, price: { '@path': '$.price' } }],
    ['$.properties.products', { id: { '@path': '$.id' }, qty: { '@path': '$.qty' }, fixed: 'x' }],
    ['$.properties.products'],
    ['$.properties.products', {}],
    ['$.properties.product', { id: { '@path': '$.id' } }],
    ['$.properties.tags', { v: { '@path': '$' } }],
    ['$.properties.tags', { v: { '@path': '$.length' } }],
    ['$.properties.name', { v: { '@path': '$' } }],
    ['$.properties.missing', { v: { '@path': '$' } }],
    ['$.properties.nothing', { v: { '@path': '$' } }],
    ['$.properties.empty_list', { v: { '@path': '$' } }],
    [{ '@path': '$.properties.products' }, { id: { '@path': '$.id' } }],
    [{ '@literal': [{ a: 1 }, { a: 2 }] }, { b: { '@path': '$.a' } }],
    [{ '@literal': { a: 5 } }, { b: { '@path': '$.a' } }],
    ['$.properties.products', { '@path': '$.id' }],
    ['$.properties.products', { '@template': '{{id}}-{{price}}' }],
    ['$.properties.products', ['a']],
    ['$.properties.products', 'x'],
    ['$.properties.nested_arrays', { first: { '@path': '$[0]' }, len: { '@path': '$.length' } }],
    ['$.properties.mixed_list', { k: { '@path': '$.k' } }],
    ['properties.products', { id: { '@path': '$.id' } }],
    ['$.properties.products', { inner: { '@arrayPath': ['$.extra', { x: { '@path': '$.x' } }] } }],
    ['$.properties.products', { t: { '@transform': { apply: { p: { '@path': '$.price' } }, mapping: { q: { '@path': '$.p' } } } } }],
    [5, {}],
    [null, { a: 1 }],
    [],
    ['$.properties.products', { id: { '@path': 1 } }],
    ['$.properties.products', { id: { '@path': '$.id' } }, 'extra']
  ]
  arrayPaths.forEach((opts, i) => add(`@arrayPath/${i}`, { out: { '@arrayPath': opts } }, i % 5 === 0 ? ALL : ['base']))
  add('@arrayPath/not array', { out: { '@arrayPath': '$.properties.products' } })
  add('@arrayPath/object', { out: { '@arrayPath': { a: 1 } } })
  add('@arrayPath/in array not array', { out: [{ '@arrayPath': '$.properties.products' }] })
  add('@arrayPath/number items transform', { out: { '@arrayPath': ['$.properties.nums', { t: { '@transform': { apply: { a: 1 }, mapping: { b: { '@path': '$.a' } } } } }] } })

  // ---- @json
  const jsons = [
    { mode: 'encode', value: { '@path': '$.properties.product' } },
    { mode: 'encode', value: { '@path': '$.properties.numeric_keys' } },
    { mode: 'encode', value: { '@path': '$.properties.unicode' } },
    { mode: 'encode', value: { '@path': '$.properties.mixed_list' } },
    { mode: 'encode', value: { '@path': '$.properties.big' } },
    { mode: 'encode', value: { '@path': '$.properties.small' } },
    { mode: 'encode', value: { '@path': '$.properties.missing' } },
    { mode: 'encode', value: { '@path': '$.properties.nothing' } },
    { mode: 'encode', value: { '@path': '$.properties.constructor' } },
    { mode: 'encode', value: { '@literal': 'a"b\\c\n\t\u0001\u001f\u007f\u2028 é 😀' } },
    { mode: 'encode', value: { a: { '@path': '$.missing' }, b: [{ '@path': '$.missing' }, null], c: 1 } },
    { mode: 'encode', value: 'plain' },
    { mode: 'encode', value: 5 },
    { mode: 'encode', value: true },
    { mode: 'encode', value: [1, 2] },
    { mode: 'encode', value: { '@flatten': { separator: '.', value: { '@path': '$.properties.product' } } } },
    { mode: 'decode', value: { '@path': '$.properties.json_text' } },
    { mode: 'decode', value: { '@path': '$.properties.json_bad' } },
    { mode: 'decode', value: { '@path': '$.properties.json_num' } },
    { mode: 'decode', value: { '@path': '$.properties.json_str' } },
    { mode: 'decode', value: { '@path': '$.properties.revenue' } },
    { mode: 'decode', value: { '@path': '$.properties.product' } },
    { mode: 'decode', value: { '@path': '$.properties.missing' } },
    { mode: 'decode', value: { '@path': '$.properties.empty' } },
    { mode: 'decode', value: ' [1, 2.50, 1e2, -0, 12345678901234567890, 1E400, {"b":1,"2":2,"a":3,"1":1}] ' },
    { mode: 'decode', value: 'NaN' },
    { mode: 'decode', value: 'Infinity' },
    { mode: 'decode', value: '{"a":1,}' },
    { mode: 'decode', value: "{'a':1}" },
    { mode: 'decode', value: '{"a":1,"a":2}' },
    { mode: 'decode', value: '"\\ud83d\\ude00 \\u00e9"' },
    { mode: 'decode', value: '\t\r\n 1 \n' },
    { mode: 'decode', value: '\u00a01' },
    { mode: 'decode', value: '01' },
    { mode: 'decode', value: '1.' },
    { mode: 'decode', value: '.5' },
    { mode: 'decode', value: 'true' },
    { mode: 'decode', value: 'null' },
    { mode: 'decode', value: '"tab\there"' },
    { mode: 'decode', value: '[1,[2,[3,[4]]]]' },
    { mode: 'ENCODE', value: 'x' },
    { mode: 'Decode', value: '1' },
    { mode: 'both', value: 'x' },
    { mode: 'encode', value: 0 },
    { mode: 'encode', value: '' },
    { mode: 'encode', value: null },
    { mode: 'encode', value: false },
    { mode: 'encode' },
    { value: 'x' },
    { mode: 5, value: 'x' },
    { mode: '', value: 'x' }
  ]
  jsons.forEach((opts, i) => add(`@json/${i}`, { out: { '@json': opts } }, i % 7 === 0 ? ALL : ['base']))
  add('@json/not object', { out: { '@json': 'encode' } })
  add('@json/in array falsy value', { out: [{ '@json': { mode: 'encode', value: 0 } }] })
  add('@json/in array no mode', { out: [{ '@json': { value: 'x' } }] })
  add('@json/in array mode ENCODE', { out: [{ '@json': { mode: 'ENCODE', value: 'x' } }] })

  // ---- @flatten
  const flattens = [
    { separator: '.', value: { '@path': '$.properties.product' } },
    { separator: '_', value: { '@path': '$.properties' } },
    { separator: '.', value: { '@path': '$.properties.products' } },
    { separator: '.', value: { '@path': '$.properties.products' }, omitArrays: true },
    { separator: '.', value: { '@path': '$.properties.product' }, omitArrays: true },
    { separator: '.', value: { '@path': '$.properties.nested_arrays' } },
    { separator: '', value: { '@path': '$.properties.product' } },
    { separator: '.', value: { '@path': '$.properties.name' } },
    { separator: '.', value: { '@path': '$.properties.missing' } },
    { separator: '.', value: { '@path': '$.properties.nothing' } },
    { separator: '.', value: { '@path': '$.properties.empty_obj' } },
    { separator: '.', value: { '@path': '$.properties.dotted' } },
    { separator: '.', value: { '@path': '$.properties.numeric_keys' } },
    { separator: '.', value: { '@literal': { '': { a: 1, '': { b: 2 } }, x: { '': 3 } } } },
    { separator: '.', value: { '@literal': { 'a.b': 1, a: { b: 2 }, c: { d: {} } } } },
    { separator: '.', value: { '@literal': { a: { 1: 'x', b: 'y', 0: 'z' }, 5: { c: 1 } } } },
    { separator: '.', value: { a: { '@path': '$.missing' }, b: 1 } },
    { separator: '.', value: [{ a: [1, [2]] }] },
    { separator: '.', value: 'scalar' },
    { separator: '.', value: { '@path': '$.traits' }, omitArrays: 1 },
    { separator: 5, value: 'x' },
    { separator: '.' },
    { value: { a: 1 } },
    { separator: '', value: { a: 1 } }
  ]
  flattens.forEach((opts, i) => add(`@flatten/${i}`, { out: { '@flatten': opts } }, i % 5 === 0 ? ALL : ['base']))
  add('@flatten/not object', { out: { '@flatten': '.' } })
  add('@flatten/in array no separator', { out: [{ '@flatten': { value: { a: { b: 1 } } } }] })
  add('@flatten/in array separator path', { out: [{ '@flatten': { separator: { '@path': '$.properties.revenue' }, value: { a: { b: 1 } } } }] })
  add('@flatten/in array separator template', { out: [{ '@flatten': { separator: { '@template': '-{{type}}-' }, value: { a: { b: 1 } } } }] })

  // ---- @merge
  const merges = [
    { direction: 'right', objects: [{ '@path': '$.properties.product' }, { '@path': '$.properties.product.meta' }] },
    { direction: 'left', objects: [{ '@path': '$.properties.product' }, { id: 'override', extra: 1 }] },
    { direction: 'right', objects: [{ '@path': '$.properties.product' }, { id: 'override', extra: 1 }] },
    { direction: 'right', objects: [{ a: 1, b: 2 }, { a: { '@path': '$.missing' } }] },
    { direction: 'right', objects: [{ '@path': '$.properties.missing' }, { a: 1 }] },
    { direction: 'right', objects: [{ '@path': '$.properties.name' }, { a: 1 }] },
    { direction: 'right', objects: [{ '@path': '$.properties.tags' }, { 1: 'one' }] },
    { direction: 'right', objects: [{ '@path': '$.properties.revenue' }, { '@path': '$.properties.paid' }] },
    { direction: 'right', objects: [{ '@path': '$.properties.numeric_keys' }, { z: 1, 0: 'zero' }] },
    { direction: 'right', objects: [{ '@path': '$.properties.nothing' }] },
    { direction: 'right', objects: [] },
    { direction: 'LEFT', objects: [{ a: 1 }, { a: 2 }] },
    { direction: 'up', objects: [{ a: 1 }] },
    { objects: [{ a: 1 }] },
    { direction: 'right' },
    { direction: 'right', objects: 'x' },
    { direction: 'right', objects: ['x'] },
    { direction: 'right', objects: [{ '@path': 5 }] },
    { direction: 'right', objects: [{ a: { '@path': 5 } }] },
    { direction: 'right', objects: [{ '@unknown': 1 }] },
    { direction: 5, objects: [{ a: 1 }] }
  ]
  merges.forEach((opts, i) => add(`@merge/${i}`, { out: { '@merge': opts } }, i % 4 === 0 ? ALL : ['base']))
  add('@merge/not object', { out: { '@merge': [] } })
  add('@merge/in array objects not array', { out: [{ '@merge': { direction: 'right', objects: { a: 1 } } }] })
  add('@merge/in array objects string', { out: [{ '@merge': { direction: 'right', objects: 'abc' } }] })
  add('@merge/in array no direction', { out: [{ '@merge': { objects: [{ a: 1 }] } }] })
  add('@merge/in array direction path', { out: [{ '@merge': { direction: { '@path': '$.properties.name' }, objects: [{ a: 1 }, { a: 2 }] } }] })
  add('@merge/in array string source', { out: [{ '@merge': { direction: 'right', objects: ['ab', { '@path': '$.properties.unicode' }] } }] })

  // ---- @transform
  const transforms = [
    { apply: { p: { '@path': '$.properties.product' } }, mapping: { id: { '@path': '$.p.id' } } },
    { apply: { a: { '@path': '$.missing' }, b: 1 }, mapping: { has_a: { '@if': { exists: { '@path': '$.a' }, then: 'y', else: 'n' } }, b: { '@path': '$.b' } } },
    { apply: { '@path': '$.properties' }, mapping: { n: { '@path': '$.name' } } },
    { apply: { '@path': '$.properties.name' }, mapping: { n: { '@path': '$.length' } } },
    { apply: { p: 1 }, mapping: { '@path': '$.p' } },
    { apply: { p: 1 }, mapping: 'x' },
    { apply: 'x', mapping: { a: 1 } },
    { apply: {}, mapping: { a: 1 } },
    { mapping: { a: 1 } },
    { apply: { a: 1 } },
    { apply: { a: { '@path': 1 } }, mapping: { a: 1 } },
    { apply: { __segment_internal_directive: { '@path': '$.properties' } }, mapping: { x: { '@path': '$.name' } } }
  ]
  transforms.forEach((opts, i) => add(`@transform/${i}`, { out: { '@transform': opts } }, i % 4 === 0 ? ALL : ['base']))
  add('@transform/not object', { out: { '@transform': 'x' } })
  add('@transform/in array apply string', { out: [{ '@transform': { apply: 'x', mapping: { a: 1 } } }] })
  add('@transform/in array apply array', { out: [{ '@transform': { apply: [1], mapping: { a: 1 } } }] })
  add('@transform/in array invalid apply', { out: [{ '@transform': { apply: { a: { '@path': 1 } }, mapping: { a: 1 } } }] })
  add('@transform/in array invalid apply multi', { out: [{ '@transform': { apply: { a: { '@path': 1 }, b: { '@template': 2 } }, mapping: { a: 1 } } }] })
  add('@transform/in array no mapping', { out: [{ '@transform': { apply: { a: 1 } } }] })

  // ---- @excludeWhenNull
  const excludes = [
    { '@path': '$.properties.nothing' },
    { '@path': '$.properties.missing' },
    { '@path': '$.properties.product' },
    { '@path': '$.properties' },
    { '@path': '$.properties.mixed_list' },
    { '@path': '$.traits' },
    { '@path': '$.userId' },
    null,
    { a: null, b: { c: null } },
    'literal',
    [null, 1]
  ]
  excludes.forEach((v, i) => add(`@excludeWhenNull/${i}`, { out: { '@excludeWhenNull': v } }, i % 3 === 0 ? ALL : ['base', 'nulls']))

  // ---- @liquid (rejected by our implementation; recorded for reference)
  add('@liquid/simple', { out: { '@liquid': '{{ userId | upcase }}' } })
  add('@liquid/not string', { out: { '@liquid': 5 } })
  add('@liquid/in array', { out: [{ '@liquid': '{{ event }}' }] })

  // ---- root directive
  add('root/transform', { __segment_internal_directive: { '@transform': { apply: { p: { '@path': '$.properties' } } } }, x: { '@path': '$.p.name' } })
  add('root/two keys', { __segment_internal_directive: { '@path': '$.a', '@template': 'x' }, x: 1 })
  add('root/not object', { __segment_internal_directive: { '@path': 'x' }, x: 1 })
  add('root/null', { __segment_internal_directive: null, x: 1 })
  add('root/string', { __segment_internal_directive: 'ab', x: 1 })
  add('root/empty', { __segment_internal_directive: {}, x: 1 })
  add('root/merge', { __segment_internal_directive: { '@merge': { direction: 'right', objects: [{ a: 1 }] } }, x: 1 })
  add('root/if', { __segment_internal_directive: { '@if': { exists: { '@path': '$.userId' }, then: 'y' } }, x: 1 })
  add('root/excludeWhenNull object', { __segment_internal_directive: { '@excludeWhenNull': { a: { '@path': '$.properties.nothing' } } }, x: 1 })
  add('root/array', { __segment_internal_directive: { '@literal': [1] }, x: { '@path': '$.userId' } })

  // ---- combinations
  add('combo/kameleoon-like', {
    event: { '@if': { exists: { '@path': '$.event' }, then: { '@path': '$.event' }, else: { '@path': '$.name' } } },
    type: { '@path': '$.type' },
    properties: { '@if': { exists: { '@path': '$.properties' }, then: { '@path': '$.properties' }, else: { '@path': '$.traits' } } },
    kameleoonVisitorCode: { '@if': { exists: { '@path': '$.properties.kameleoonVisitorCode' }, then: { '@path': '$.properties.kameleoonVisitorCode' }, else: { '@path': '$.traits.kameleoonVisitorCode' } } },
    timestamp: { '@path': '$.timestamp' },
    context: { '@path': '$.context' },
    messageId: { '@path': '$.messageId' },
    userId: { '@path': '$.userId' },
    anonymousId: { '@path': '$.anonymousId' }
  }, ALL)
  add('combo/nested', {
    a: { '@case': { operator: 'upper', value: { '@replace': { pattern: ' ', replacement: '-', value: { '@template': '{{event}} {{userId}}' } } } } },
    b: { '@json': { mode: 'encode', value: { '@merge': { direction: 'left', objects: [{ '@path': '$.properties.product' }, { '@excludeWhenNull': { '@path': '$.properties.product.meta' } }] } } } },
    c: { '@arrayPath': ['$.properties.products', { label: { '@template': '{{id}}:{{price}}' }, q: { '@if': { blank: { '@path': '$.qty' }, then: { '@path': '$.qty' }, else: 0 } } }] },
    d: { '@flatten': { separator: '/', value: { '@json': { mode: 'decode', value: { '@path': '$.properties.json_text' } } } } },
    e: [{ '@literal': { x: { '@path': '$.type' } } }, [{ '@path': '$.properties.tags' }]]
  }, ALL)

  // ---- deep nesting (events described by event_gen, rebuilt by the tests)
  const deep = (depth, kind) => ({ field: 'deep', depth, kind })
  for (const [depth, kind] of [[50, 'object'], [500, 'object'], [1500, 'object'], [1500, 'array']]) {
    const gen = deep(depth, kind)
    const extra = { event_gen: gen }
    cases.push({ name: `deep/${kind} ${depth} path`, mapping: { out: { '@path': '$.properties.deep' } }, event: { type: 'track', properties: {} }, ...extra })
    cases.push({ name: `deep/${kind} ${depth} whole properties`, mapping: { '@path': '$.properties' }, event: { type: 'track', properties: {} }, ...extra })
    cases.push({ name: `deep/${kind} ${depth} excludeWhenNull`, mapping: { out: { '@excludeWhenNull': { '@path': '$.properties.deep' } } }, event: { type: 'track', properties: {} }, ...extra })
    cases.push({ name: `deep/${kind} ${depth} template`, mapping: { out: { '@template': '{{properties.deep}}' } }, event: { type: 'track', properties: {} }, ...extra })
    cases.push({ name: `deep/${kind} ${depth} long path`, mapping: { out: { '@path': '$.properties.deep' + (kind === 'array' ? '[0]' : '.a').repeat(Math.min(depth, 40)) } }, event: { type: 'track', properties: {} }, ...extra })
    if (depth <= 500) {
      cases.push({ name: `deep/${kind} ${depth} flatten`, mapping: { out: { '@flatten': { separator: '.', value: { '@path': '$.properties.deep' } } } }, event: { type: 'track', properties: {} }, ...extra })
      cases.push({ name: `deep/${kind} ${depth} json`, mapping: { out: { '@json': { mode: 'encode', value: { '@path': '$.properties.deep' } } } }, event: { type: 'track', properties: {} }, ...extra })
    }
  }
  for (const depth of [50, 1500]) {
    const extra = { event_gen: { field: 'deep_text', depth, kind: 'json_text' } }
    cases.push({ name: `deep/json_text ${depth} decode`, mapping: { out: { '@json': { mode: 'decode', value: { '@path': '$.properties.deep_text' } } } }, event: { type: 'track', properties: {} }, ...extra })
    cases.push({ name: `deep/json_text ${depth} decode flatten`, mapping: { out: { '@flatten': { separator: '.', value: { '@json': { mode: 'decode', value: { '@path': '$.properties.deep_text' } } } } } }, event: { type: 'track', properties: {} }, ...extra })
  }

  // ---- lone surrogates (JSON allows them as escapes)
  const lone = { type: 'track', event: 'x\ud800y', userId: '\udc00', properties: { s: 'a\ud83d', t: '\ude00b', pair: '\ud83d\ude00' } }
  EVENTS.lone = lone
  add('lone/path', { a: { '@path': '$.event' }, b: { '@path': '$.properties.s' }, c: { '@path': '$.properties.pair.length' }, d: { '@path': '$.properties.pair[0]' } }, ['lone'])
  add('lone/template', { out: { '@template': '{{properties.s}}{{properties.t}}|{{event}}' } }, ['lone'])
  add('lone/json encode', { out: { '@json': { mode: 'encode', value: { '@path': '$.properties' } } } }, ['lone'])
  add('lone/json encode literal', { out: { '@json': { mode: 'encode', value: { '@literal': '\ud800\udbff\udfff' } } } }, ['lone'])
  add('lone/replace', { out: { '@replace': { pattern: '\ud83d', replacement: '?', value: { '@path': '$.properties.pair' } } } }, ['lone'])
  add('lone/case', { out: { '@case': { operator: 'upper', value: { '@path': '$.event' } } } }, ['lone'])
  add('lone/merge string', { out: { '@merge': { direction: 'right', objects: [{ '@path': '$.properties.pair' }] } } }, ['lone'])
  add('lone/json decode', { out: { '@json': { mode: 'decode', value: '["\\ud800", "\\udc00x"]' } } }, ['lone'])
  return cases
}

function recordMappings() {
  const out = []
  const names = new Set()
  for (const c of mappingCases()) {
    if (names.has(c.name)) throw new Error(`duplicate case name ${c.name}`)
    names.add(c.name)
    const event = buildEvent(c)
    const result = runMapping(c.mapping, event)
    const rec = { name: c.name, mapping: c.mapping, event: c.event }
    if (c.event_gen) rec.event_gen = c.event_gen
    rec.invalid = result.invalid === undefined ? null : result.invalid
    if (result.invalid === undefined) {
      if (result.error !== undefined) {
        rec.error = result.error
      } else if (result.output === undefined) {
        rec.output_undefined = true
      } else if (c.event_gen) {
        rec.output_json = JSON.stringify(result.output)
      } else {
        rec.output = result.output
      }
    }
    out.push(rec)
  }
  return { cases: out }
}

// One case per line (a trigger's events one per line): small, diffable files.
function format(data) {
  const lines = data.cases.map((c) => {
    if (!c.events) return ' ' + JSON.stringify(c)
    const { events, ...head } = c
    const start = JSON.stringify(head).slice(0, -1)
    if (events.length === 0) return ` ${start},"events":[]}`
    return ` ${start},"events":[\n` + events.map((e) => '  ' + JSON.stringify(e)).join(',\n') + '\n ]}'
  })
  return '{"cases":[\n' + lines.join(',\n') + '\n]}\n'
}

function write(name, data) {
  const file = path.join(GOLDENS, name)
  fs.writeFileSync(file, format(data))
  console.log(`wrote ${path.relative(process.cwd(), file)}: ${data.cases.length} cases`)
}

write('triggers.json', recordTriggers())
write('mappings.json', recordMappings())
