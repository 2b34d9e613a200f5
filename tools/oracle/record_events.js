#!/usr/bin/env node
'use strict'
// Records tests/goldens/events.json and tests/goldens/presets.json: raw
// Segment events routed through subscriptions by Segment's runtime
// (Destination.onEvent -> onSubscriptions -> onSubscription: parseFql +
// validate the trigger, then executeAction with the subscription's mapping).
//
// Each subscription of a suite is run on its own, in list order, as
// onEvent(event, {...settings, subscriptions: [subscription]}), so that one
// subscription's rejection does not hide the others' requests (onSubscriptions
// runs them with Promise.all and rethrows the first error). A subscription
// whose trigger does not match is left out of the case's results.

const path = require('path')
const rt = require('./lib/runtime')
const { raw, Raw, viaJson, stringify } = require('./lib/json')
const { DATETIMES } = require('./lib/datetimes')

let mappingValidate
try {
  mappingValidate = require(require.resolve('@segment/actions-core/mapping-kit/validate', { paths: [__dirname] })).default
} catch (err) {
  rt.die('cannot load actions-core mapping validation', err)
}
if (typeof mappingValidate !== 'function') rt.die('mapping-kit/validate has no default export')

const PRESETS = rt.destinationDefinition.presets
if (!Array.isArray(PRESETS) || PRESETS.length !== 4) rt.die('expected 4 presets on the Kameleoon destination')

// ---------------------------------------------------------------------------
// Running

function clone(x) {
  return viaJson(x)
}

async function runSubscription(dest, subscription, eventSpec) {
  const event = viaJson(eventSpec)
  const sub = clone(subscription)
  const r = await rt.capture(() => dest.onEvent(event, { ...rt.SETTINGS, subscriptions: [sub] }))
  if (r.thrown) {
    if (r.requests.length) rt.die(`${subscription.name}: request sent and error thrown`)
    return { error: rt.errorRecord(r.thrown) }
  }
  const out = r.value
  if (!Array.isArray(out)) rt.die(`${subscription.name}: unexpected onEvent result ${JSON.stringify(out)}`)
  if (out.length === 1 && out[0].output === 'not subscribed') {
    if (r.requests.length) rt.die('request sent for an unsubscribed event')
    return null
  }
  if (out.length === 1 && typeof out[0].output === 'string' &&
      (out[0].output.startsWith('Invalid subscription') || out[0].output === 'Failed to validate subscription')) {
    if (r.requests.length) rt.die('request sent for a rejected subscription')
    return { rejected: out[0].output }
  }
  const last = out[out.length - 1]
  if (!last || last.output !== 'Action Executed') rt.die(`${subscription.name}: unexpected results ${JSON.stringify(out)}`)
  if (r.requests.length !== 1) rt.die(`${subscription.name}: expected one request, got ${r.requests.length}`)
  return { request: r.requests[0] }
}

async function runSuite(dest, suite) {
  const subs = suite.subscriptions === null ? PRESETS : suite.subscriptions
  const rejections = []
  for (const sub of subs) {
    if (!sub.subscribe || typeof sub.subscribe !== 'string') continue
    try {
      mappingValidate(clone(sub.mapping || {}))
    } catch (err) {
      rejections.push({ subscription: sub.name, message: rt.errorRecord(err).message })
    }
  }
  const cases = []
  const names = new Set()
  for (const c of suite.cases) {
    const name = `${suite.name}/${c.name}`
    if (names.has(name)) rt.die(`duplicate case ${name}`)
    names.add(name)
    const results = []
    for (const sub of subs) {
      const res = await runSubscription(dest, sub, c.event)
      if (res === null) continue
      if (res.rejected) {
        if (!rejections.some((x) => x.subscription === sub.name && x.message === res.rejected)) {
          rejections.push({ subscription: sub.name, message: res.rejected })
        }
        continue
      }
      results.push({ subscription: sub.name, action: sub.partnerAction, ...res })
    }
    cases.push({ name, event: c.event, results })
  }
  const out = { name: suite.name }
  if (suite.description) out.description = suite.description
  out.subscriptions = suite.subscriptions
  if (rejections.length) {
    out.error = rejections[0].message
    out.errors = rejections
  }
  out.cases = cases
  return out
}

// ---------------------------------------------------------------------------
// Event corpus helpers

const BASE_MS = Date.UTC(2024, 0, 1, 0, 0, 0)
const EVENT_NAMES = ['Order Completed', 'Product Viewed', 'Product Added', 'Checkout Started', 'Checkout Step Viewed',
  'Signed Up', 'Experiment Viewed', 'Cart Viewed', 'Coupon Applied', 'Payment Info Entered']
const PAGE_NAMES = ['Home', 'Pricing', 'Checkout', 'Blog Post', 'Docs']
const SCREEN_NAMES = ['Home', 'Onboarding Step 1', 'Onboarding Step 2', 'Settings', 'Cart']
const LOCALES = ['fr-FR', 'en-US', 'de-DE', 'ja-JP']
const PLANS = ['free', 'pro', 'enterprise']

function hex(r, n) {
  let s = ''
  for (let i = 0; i < n; i++) s += '0123456789abcdef'[r.int(0, 15)]
  return s
}

function makeContext(r) {
  const ctx = {
    ip: `203.0.113.${r.int(1, 254)}`,
    locale: r.pick(LOCALES),
    userAgent: 'Mozilla/5.0 (X11; Linux x86_64)',
    library: { name: 'analytics-node', version: '6.2.0' },
    page: { path: r.pick(['/', '/pricing', '/checkout', '/blog/post']), title: 'Example', url: 'https://example.com/' }
  }
  if (r.bool(0.3)) ctx.traits = { kameleoonVisitorCode: `ctx-${hex(r, 8)}`, plan: r.pick(PLANS) }
  return ctx
}

function baseEvent(type, r, n) {
  const ts = new Date(BASE_MS + r.int(0, 365 * 86400) * 1000 + r.int(0, 999)).toISOString()
  const e = {
    type,
    messageId: `msg-${type}-${String(n).padStart(4, '0')}`,
    anonymousId: `anon-${hex(r, 12)}`,
    userId: `user-${r.int(1, 9999)}`,
    timestamp: ts
  }
  const withVisitor = r.bool(0.5)
  switch (type) {
    case 'track':
      e.event = r.pick(EVENT_NAMES)
      e.properties = { revenue: r.int(0, 50000) / 100, currency: 'EUR', plan: r.pick(PLANS), count: r.int(0, 5) }
      if (withVisitor) e.properties.kameleoonVisitorCode = `kvc-${hex(r, 10)}`
      break
    case 'page':
      e.name = r.pick(PAGE_NAMES)
      e.properties = { path: '/pricing', url: 'https://example.com/pricing', title: 'Pricing', referrer: '' }
      if (withVisitor) e.properties.kameleoonVisitorCode = `kvc-${hex(r, 10)}`
      break
    case 'identify':
      e.traits = { email: `user${r.int(1, 999)}@example.com`, plan: r.pick(PLANS), vip: r.bool(), logins: r.int(0, 100) }
      if (withVisitor) e.traits.kameleoonVisitorCode = `kvc-${hex(r, 10)}`
      break
    case 'group':
      e.groupId = `grp-${r.int(1, 500)}`
      e.traits = { name: 'Acme Inc.', employees: r.int(1, 5000), industry: 'Technology' }
      if (withVisitor) e.traits.kameleoonVisitorCode = `kvc-${hex(r, 10)}`
      break
    case 'alias':
      e.previousId = `anon-${hex(r, 12)}`
      break
    case 'screen':
      e.name = r.pick(SCREEN_NAMES)
      e.properties = { variation: r.pick(['A', 'B']), build: r.int(100, 200) }
      if (withVisitor) e.properties.kameleoonVisitorCode = `kvc-${hex(r, 10)}`
      break
  }
  e.context = makeContext(r)
  e.integrations = {}
  e.originalTimestamp = ts
  e.sentAt = ts
  e.receivedAt = ts
  e.version = 2
  return e
}

function deepObject(depth, leaf) {
  let cur = leaf
  for (let i = depth - 1; i >= 0; i--) cur = { [`level${i}`]: cur, i }
  return cur
}

function deepArray(depth, leaf) {
  let cur = leaf
  for (let i = 0; i < depth; i++) cur = [cur]
  return cur
}

const STRING_FIELDS = {
  track: ['type', 'messageId', 'anonymousId', 'userId', 'timestamp', 'event', 'name'],
  page: ['type', 'messageId', 'anonymousId', 'userId', 'timestamp', 'name'],
  identify: ['type', 'messageId', 'anonymousId', 'userId', 'timestamp'],
  group: ['type', 'messageId', 'anonymousId', 'userId', 'timestamp', 'groupId'],
  alias: ['type', 'userId', 'previousId'],
  screen: ['type', 'name']
}
const OBJECT_FIELDS = {
  track: ['properties', 'traits', 'context'],
  page: ['properties', 'context'],
  identify: ['traits', 'properties'],
  group: ['traits', 'properties'],
  alias: ['context'],
  screen: ['properties']
}
const WRONG_FOR_STRING = [
  ['absent', undefined],
  ['null', null],
  ['empty', ''],
  ['space', ' '],
  ['int', 42],
  ['float', 42.5],
  ['zero', 0],
  ['big-float', 1e21],
  ['true', true],
  ['false', false],
  ['array-one', ['one']],
  ['array-two', ['one', 'two']],
  ['array-number', [7]],
  ['array-empty', []],
  ['object', { a: 1 }],
  ['object-empty', {}]
]
const WRONG_FOR_OBJECT = [
  ['absent', undefined],
  ['null', null],
  ['empty-object', {}],
  ['string', 'not an object'],
  ['empty-string', ''],
  ['number', 42],
  ['true', true],
  ['array', [1, 2]],
  ['array-of-object', [{ a: 1 }]],
  ['array-empty', []]
]

function setField(e, field, value) {
  const out = { ...e }
  if (value === undefined) delete out[field]
  else out[field] = value
  return out
}

// ---------------------------------------------------------------------------
// Suite: presets

function presetCases() {
  const r = rt.rng(20240315)
  const cases = []
  let n = 0
  const add = (name, event) => cases.push({ name, event })
  const TYPES = ['track', 'page', 'identify', 'group', 'alias', 'screen']

  for (const type of TYPES) {
    add(`${type}/natural`, baseEvent(type, r, n++))
    const minimal = { type, messageId: `msg-${type}-min`, timestamp: '2024-03-15T12:34:56.789Z' }
    add(`${type}/minimal`, minimal)
    for (const f of STRING_FIELDS[type]) {
      for (const [label, value] of WRONG_FOR_STRING) {
        // type is the trigger: a wrong type never matches the presets, a few suffice.
        if (f === 'type' && !['absent', 'null', 'empty', 'int', 'array-one'].includes(label)) continue
        add(`${type}/${kebab(f)}-${label}`, setField(baseEvent(type, r, n++), f, value))
      }
    }
    for (const f of OBJECT_FIELDS[type]) {
      for (const [label, value] of WRONG_FOR_OBJECT) {
        add(`${type}/${kebab(f)}-${label}`, setField(baseEvent(type, r, n++), f, value))
      }
    }
  }

  // Type spellings.
  for (const t of ['Track', 'TRACK', ' track', 'track ', 'Page', 'IDENTIFY', 'grouP', 'unknown', 'трек']) {
    add(`type-spelling-${kebab(t) || 'x'}-${Buffer.from(t).toString('hex')}`, { ...baseEvent('track', r, n++), type: t })
  }

  // Timestamps.
  const tsValues = DATETIMES.filter((_, i) => i % 5 === 0)
  tsValues.forEach((ts, i) => {
    const type = ['track', 'page', 'identify', 'group'][i % 4]
    add(`timestamp/${String(i).padStart(2, '0')}-${type}`, { ...baseEvent(type, r, n++), timestamp: ts })
  })
  for (const [label, ts] of [['epoch-seconds', 1710505496], ['epoch-millis', 1710505496789], ['negative', -1],
    ['float', 1710505496.5], ['true', true], ['array-iso', ['2024-03-15T12:34:56Z']], ['array-two', ['2024-03-15T12:34:56Z', 'x']],
    ['object', { iso: '2024-03-15T12:34:56Z' }], ['date-only', '2024-03-15'], ['no-zone', '2024-03-15T12:34:56']]) {
    add(`timestamp/${label}`, { ...baseEvent('track', r, n++), timestamp: ts })
  }

  // Unicode.
  const UNI = ['😀 emoji 👨‍👩‍👧‍👦', '漢字かなカナ', 'שלום مرحبا', 'e\u0301 combining', 'line\u2028sep\u2029para', 'nul\u0000ctl\u001f',
    'quote " backslash \\', '</script>']
  UNI.forEach((u, i) => {
    const type = ['track', 'page', 'identify', 'group'][i % 4]
    const e = baseEvent(type, r, n++)
    e.userId = u
    e.anonymousId = `${u} anon`
    if (type === 'track') e.event = u
    if (type === 'page') e.name = u
    if (type === 'group') e.groupId = u
    const bag = type === 'track' || type === 'page' ? 'properties' : 'traits'
    e[bag] = { ...e[bag], [u]: u, kameleoonVisitorCode: u }
    add(`unicode/${i}-${type}`, e)
  })

  // Deep nesting and large arrays.
  for (const type of ['track', 'page', 'identify', 'group']) {
    const bag = type === 'track' || type === 'page' ? 'properties' : 'traits'
    const e = baseEvent(type, r, n++)
    e[bag] = { ...e[bag], deep: deepObject(35, { bottom: true }), deepArr: deepArray(32, 'bottom') }
    e.context = { ...e.context, deep: deepObject(31, 'x') }
    add(`deep-nesting/${type}`, e)
    const e2 = baseEvent(type, r, n++)
    e2[bag] = { ...e2[bag], big: Array.from({ length: 300 }, (_, i) => (i % 3 === 0 ? i : i % 3 === 1 ? `s${i}` : { i })) }
    add(`large-array/${type}`, e2)
  }

  // properties vs traits fallbacks (logEvent: properties, else traits).
  const t = () => baseEvent('track', r, n++)
  add('fallback/track-traits-only', setField(setField(t(), 'properties', undefined), 'traits', { plan: 'pro', kameleoonVisitorCode: 'kvc-traits' }))
  add('fallback/track-properties-and-traits', { ...t(), traits: { plan: 'pro', kameleoonVisitorCode: 'kvc-traits' } })
  add('fallback/track-properties-null-traits', { ...t(), properties: null, traits: { plan: 'pro', kameleoonVisitorCode: 'kvc-traits' } })
  add('fallback/track-properties-empty-traits', { ...t(), properties: {}, traits: { plan: 'pro', kameleoonVisitorCode: 'kvc-traits' } })
  add('fallback/track-properties-string-traits', { ...t(), properties: 'str', traits: { plan: 'pro' } })
  add('fallback/track-properties-false-traits', { ...t(), properties: false, traits: { plan: 'pro' } })
  add('fallback/track-properties-zero-traits', { ...t(), properties: 0, traits: { plan: 'pro' } })
  add('fallback/track-neither', setField(t(), 'properties', undefined))
  add('fallback/page-traits-only', setField({ ...baseEvent('page', r, n++), traits: { kameleoonVisitorCode: 'kvc-traits' } }, 'properties', undefined))
  add('fallback/identify-properties-not-traits', setField({ ...baseEvent('identify', r, n++), properties: { kameleoonVisitorCode: 'kvc-props' } }, 'traits', undefined))
  add('fallback/group-properties-not-traits', setField({ ...baseEvent('group', r, n++), properties: { kameleoonVisitorCode: 'kvc-props' } }, 'traits', undefined))

  // Name vs event (logEvent: event, else name).
  add('event-name/name-only', setField({ ...t(), name: 'Named Thing' }, 'event', undefined))
  add('event-name/both', { ...t(), name: 'Named Thing' })
  add('event-name/event-null-name', { ...t(), event: null, name: 'Named Thing' })
  add('event-name/event-empty-name', { ...t(), event: '', name: 'Named Thing' })
  add('event-name/event-false-name', { ...t(), event: false, name: 'Named Thing' })
  add('event-name/event-zero-name', { ...t(), event: 0, name: 'Named Thing' })
  add('event-name/name-number', setField({ ...t(), name: 12 }, 'event', undefined))
  add('event-name/name-object', setField({ ...t(), name: { a: 1 } }, 'event', undefined))
  add('event-name/neither', setField(t(), 'event', undefined))

  // Visitor codes.
  const VC = [
    ['string', 'kvc-abc'], ['empty', ''], ['space', ' '], ['null', null], ['number', 12345], ['float', 1.5], ['big', 1e21],
    ['true', true], ['array-one', ['kvc-in-array']], ['array-two', ['a', 'b']], ['array-empty', []], ['object', { id: 'x' }]
  ]
  for (const [label, v] of VC) {
    add(`visitor-code/track-properties-${label}`, { ...t(), properties: { a: 1, kameleoonVisitorCode: v, z: 2 } })
    add(`visitor-code/identify-traits-${label}`, { ...baseEvent('identify', r, n++), traits: { kameleoonVisitorCode: v, email: 'a@example.com' } })
  }
  add('visitor-code/track-traits-only', { ...t(), properties: { a: 1 }, traits: { kameleoonVisitorCode: 'kvc-traits' } })
  add('visitor-code/track-properties-and-traits', { ...t(), properties: { a: 1, kameleoonVisitorCode: 'kvc-props' }, traits: { kameleoonVisitorCode: 'kvc-traits' } })
  add('visitor-code/track-properties-null-traits', { ...t(), properties: { a: 1, kameleoonVisitorCode: null }, traits: { kameleoonVisitorCode: 'kvc-traits' } })
  add('visitor-code/track-properties-empty-traits', { ...t(), properties: { a: 1, kameleoonVisitorCode: '' }, traits: { kameleoonVisitorCode: 'kvc-traits' } })
  add('visitor-code/page-traits-only', { ...baseEvent('page', r, n++), properties: { a: 1 }, traits: { kameleoonVisitorCode: 'kvc-traits' } })
  add('visitor-code/page-properties', { ...baseEvent('page', r, n++), properties: { kameleoonVisitorCode: 'kvc-page', a: 1 } })
  add('visitor-code/identify-properties-only', { ...baseEvent('identify', r, n++), traits: { a: 1 }, properties: { kameleoonVisitorCode: 'kvc-props' } })
  add('visitor-code/group-traits', { ...baseEvent('group', r, n++), traits: { kameleoonVisitorCode: 'kvc-group' } })
  add('visitor-code/group-context-traits', { ...baseEvent('group', r, n++), traits: {}, context: { traits: { kameleoonVisitorCode: 'kvc-context' } } })
  add('visitor-code/track-first-key', { ...t(), properties: { kameleoonVisitorCode: 7, a: 1 } })

  // Extra top-level fields and odd shapes.
  add('extra/unknown-top-level', { ...t(), foo: 'bar', nested: { x: 1 }, kameleoonVisitorCode: 'top-level-kvc', Type: 'page' })
  add('extra/segment-envelope', { ...t(), writeKey: 'wk', projectId: 'p1', channel: 'server', _metadata: { bundled: ['x'] } })
  add('extra/integer-like-keys', { ...t(), properties: raw('{"b":1,"10":2,"a":3,"2":4,"-1":5,"01":6,"kameleoonVisitorCode":"kvc-int","0":7}') })
  add('extra/proto-key-in-properties', { ...t(), properties: raw('{"a":1,"__proto__":{"polluted":true},"constructor":{"x":1}}') })
  add('extra/proto-key-in-context', { ...t(), context: raw('{"ip":"1.2.3.4","__proto__":{"polluted":true}}') })
  add('extra/duplicate-keys', raw('{"type":"track","type":"track","messageId":"dup-1","messageId":"dup-2","timestamp":"2024-03-15T12:34:56Z","event":"A","event":"B","properties":{"x":1,"x":2}}'))
  add('extra/numbers', { ...t(), properties: raw('{"int":42,"float":42.0,"half":42.5,"e21":1e21,"e20":1e20,"small":1e-7,"tiny":0.00001,"negzero":-0.0,"big":9007199254740993,"huge":1e400,"long":12345678901234567890}') })
  add('extra/messageid-number', { ...t(), messageId: 9007199254740993 })
  add('extra/all-empty-strings', { type: 'track', messageId: '', timestamp: '', event: '', anonymousId: '', userId: '', properties: {}, context: {} })
  add('extra/only-type', { type: 'track' })
  add('extra/empty-event', {})
  add('extra/long-strings', { ...t(), event: 'E'.repeat(20000), userId: 'u'.repeat(5000), properties: { s: 'ß'.repeat(10000) } })
  add('extra/userid-numeric-string', { ...t(), userId: '00123' })
  add('extra/context-personas', { ...t(), context: { personas: { audience_settings: { a: 1 }, computation_key: 'aud' } } })
  add('extra/context-personas-null', { ...t(), context: { personas: null } })
  add('extra/context-personas-string', { ...t(), context: { personas: 'p' } })
  add('extra/context-personas-audience', { ...t(), properties: { aud: true }, context: { personas: { computation_class: 'audience', computation_key: 'aud' } } })
  add('extra/context-null-bad-timestamp', { ...t(), context: null, timestamp: 'x' })
  add('extra/context-string', { ...t(), context: 'ctx' })

  // Random combinations of mutations.
  const MUTATORS = []
  for (const f of ['messageId', 'anonymousId', 'userId', 'timestamp', 'event', 'name', 'groupId']) {
    for (const [label, v] of WRONG_FOR_STRING) MUTATORS.push([`${kebab(f)}-${label}`, (e) => setField(e, f, v)])
  }
  for (const f of ['properties', 'traits', 'context']) {
    for (const [label, v] of WRONG_FOR_OBJECT) MUTATORS.push([`${kebab(f)}-${label}`, (e) => setField(e, f, v)])
  }
  MUTATORS.push(['vc-properties', (e) => ({ ...e, properties: { ...(isPlain(e.properties) ? e.properties : {}), kameleoonVisitorCode: 'kvc-mut-p' } })])
  MUTATORS.push(['vc-traits', (e) => ({ ...e, traits: { ...(isPlain(e.traits) ? e.traits : {}), kameleoonVisitorCode: 'kvc-mut-t' } })])
  MUTATORS.push(['vc-number', (e) => ({ ...e, properties: { ...(isPlain(e.properties) ? e.properties : {}), kameleoonVisitorCode: 987 } })])
  MUTATORS.push(['name-added', (e) => ({ ...e, name: 'Added Name' })])
  MUTATORS.push(['extra-field', (e) => ({ ...e, extra: { any: ['thing', 1, null] } })])
  MUTATORS.push(['odd-timestamp', (e) => ({ ...e, timestamp: DATETIMES[r.int(0, DATETIMES.length - 1)] })])
  const WEIGHTED = ['track', 'track', 'track', 'page', 'page', 'identify', 'identify', 'group', 'group', 'alias', 'screen']
  for (let i = 0; i < 200; i++) {
    const type = r.pick(WEIGHTED)
    let e = baseEvent(type, r, n++)
    const labels = []
    const k = r.int(0, 3)
    for (let j = 0; j < k; j++) {
      const [label, fn] = r.pick(MUTATORS)
      e = fn(e)
      labels.push(label)
    }
    add(`random/${String(i).padStart(3, '0')}-${type}${labels.length ? '-' + labels.join('-') : ''}`, e)
  }

  // Added after the random events, so that the sequence drawn above stays as it was.
  // One-element arrays holding other than text, in string fields (coerceTypes 'array' unwraps, then coerces).
  for (const [label, value] of [['array-null', [null]], ['array-true', [true]], ['array-float', [42.5]], ['array-nested', [['one']]], ['array-object', [{ a: 1 }]]]) {
    for (const f of ['userId', 'event']) add(`coerce/track-${kebab(f)}-${label}`, setField(baseEvent('track', r, n++), f, value))
  }
  // A lone surrogate (legal in JSON) in the messageId and in properties: sent on as it came.
  add('extra/lone-surrogates', raw('{"type":"track","event":"Signed Up","timestamp":"2024-03-15T12:34:56.789Z","messageId":"m-\\ud800","userId":"u-\\udfff","properties":{"k\\ud83d":"v\\ude00"}}'))
  return cases
}

function isPlain(x) {
  return x !== null && typeof x === 'object' && !Array.isArray(x) && !(x instanceof Raw)
}

function kebab(s) {
  return String(s)
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/[^A-Za-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .toLowerCase()
}

// ---------------------------------------------------------------------------
// Custom suites

const P = (p) => ({ '@path': p })

function presetMapping(action) {
  const preset = PRESETS.find((p) => p.partnerAction === action)
  if (!preset) rt.die(`no preset for ${action}`)
  return clone(preset.mapping)
}

function aliasScreenSuite() {
  const subscriptions = [
    {
      name: 'Alias as Log Event',
      subscribe: 'type = "alias"',
      partnerAction: 'logEvent',
      mapping: {
        anonymousId: P('$.anonymousId'),
        userId: P('$.userId'),
        event: { '@template': 'Alias {{previousId}} to {{userId}}' },
        type: { '@literal': 'track' },
        properties: { previousId: P('$.previousId'), source: 'alias', traits: P('$.context.traits') },
        kameleoonVisitorCode: {
          '@if': {
            exists: P('$.context.traits.kameleoonVisitorCode'),
            then: P('$.context.traits.kameleoonVisitorCode'),
            else: P('$.previousId')
          }
        },
        timestamp: P('$.timestamp'),
        context: P('$.context'),
        messageId: P('$.messageId')
      }
    },
    {
      name: 'Screen as Page',
      subscribe: 'type = "screen"',
      partnerAction: 'page',
      mapping: {
        anonymousId: P('$.anonymousId'),
        userId: P('$.userId'),
        type: 'page',
        properties: P('$.properties'),
        kameleoonVisitorCode: P('$.properties.kameleoonVisitorCode'),
        name: { '@if': { exists: P('$.name'), then: P('$.name'), else: { '@literal': 'Unnamed screen' } } },
        context: P('$.context'),
        timestamp: P('$.timestamp'),
        messageId: P('$.messageId')
      }
    },
    {
      name: 'Home or onboarding screens as Log Event',
      subscribe: 'type = "screen" and (name = "Home" or match(name, "Onboarding*"))',
      partnerAction: 'logEvent',
      mapping: {
        userId: P('$.userId'),
        anonymousId: P('$.anonymousId'),
        event: { '@template': 'Viewed {{name}} Screen' },
        type: P('$.type'),
        properties: { '@merge': { direction: 'right', objects: [P('$.properties'), { screen: P('$.name'), platform: 'ios' }] } },
        kameleoonVisitorCode: P('$.properties.kameleoonVisitorCode'),
        timestamp: P('$.timestamp'),
        messageId: { '@template': '{{messageId}}-screen' }
      }
    },
    {
      name: 'Alias with user as Identify',
      subscribe: 'type = "alias" and userId != null',
      partnerAction: 'identify',
      mapping: {
        userId: P('$.userId'),
        anonymousId: P('$.previousId'),
        type: 'identify',
        properties: {
          '@if': { blank: P('$.previousId'), then: { previous: P('$.previousId'), aliased: true }, else: { aliased: false } }
        },
        timestamp: P('$.timestamp'),
        messageId: P('$.messageId')
      }
    }
  ]
  const r = rt.rng(1001)
  const cases = []
  let n = 0
  const add = (name, event) => cases.push({ name, event })
  for (let i = 0; i < 30; i++) add(`alias-${String(i).padStart(2, '0')}`, baseEvent('alias', r, n++))
  for (let i = 0; i < 30; i++) add(`screen-${String(i).padStart(2, '0')}`, baseEvent('screen', r, n++))
  const a = () => baseEvent('alias', r, n++)
  const s = () => baseEvent('screen', r, n++)
  add('alias-no-user', setField(a(), 'userId', undefined))
  add('alias-null-user', setField(a(), 'userId', null))
  add('alias-empty-previous', setField(a(), 'previousId', ''))
  add('alias-no-previous', setField(a(), 'previousId', undefined))
  add('alias-number-previous', setField(a(), 'previousId', 12345))
  add('alias-object-previous', setField(a(), 'previousId', { id: 1 }))
  add('alias-array-previous', setField(a(), 'previousId', ['p1', 'p2']))
  add('alias-context-visitor-code', { ...a(), context: { traits: { kameleoonVisitorCode: 'kvc-alias' } } })
  add('alias-no-context', setField(a(), 'context', undefined))
  add('alias-no-timestamp', setField(a(), 'timestamp', undefined))
  add('alias-no-message-id', setField(a(), 'messageId', undefined))
  add('alias-unicode', { ...a(), userId: '😀 ユーザー', previousId: 'שלום' })
  add('alias-template-braces', { ...a(), userId: '{{previousId}}', previousId: '}}{{' })
  add('screen-no-name', setField(s(), 'name', undefined))
  add('screen-null-name', setField(s(), 'name', null))
  add('screen-empty-name', setField(s(), 'name', ''))
  add('screen-name-number', setField(s(), 'name', 3))
  add('screen-home', { ...s(), name: 'Home' })
  add('screen-home-lower', { ...s(), name: 'home' })
  add('screen-onboarding', { ...s(), name: 'Onboarding' })
  add('screen-onboarding-step', { ...s(), name: 'Onboarding Step 9' })
  add('screen-xonboarding', { ...s(), name: 'xOnboarding' })
  add('screen-home-no-properties', setField({ ...s(), name: 'Home' }, 'properties', undefined))
  add('screen-home-properties-string', { ...s(), name: 'Home', properties: 'p' })
  add('screen-home-properties-array', { ...s(), name: 'Home', properties: [1] })
  add('screen-home-screen-key', { ...s(), name: 'Home', properties: { screen: 'overwritten?', platform: 'android' } })
  add('screen-visitor-code-number', { ...s(), properties: { kameleoonVisitorCode: 42 } })
  add('screen-no-message-id', setField({ ...s(), name: 'Home' }, 'messageId', undefined))
  add('screen-bad-timestamp', { ...s(), name: 'Onboarding Step 1', timestamp: '2024-13-01T00:00:00Z' })
  for (const type of ['track', 'page', 'identify', 'group']) add(`not-matching-${type}`, baseEvent(type, r, n++))
  add('type-Screen-capital', { ...s(), type: 'Screen' })
  add('type-alias-trailing-space', { ...a(), type: 'alias ' })
  return { name: 'alias-and-screen', description: 'alias -> logEvent and identify, screen -> page and logEvent, with @template/@if/@literal/@merge', subscriptions, cases }
}

function triggerSuite() {
  const base = presetMapping('logEvent')
  const subscriptions = [
    { name: 'Order Completed upper-cased', subscribe: 'type = "track" and event = "Order Completed"', partnerAction: 'logEvent',
      mapping: { ...base, event: { '@case': { operator: 'upper', value: P('$.event') } } } },
    { name: 'Other track events with underscores', subscribe: 'type = "track" and event != "Order Completed"', partnerAction: 'logEvent',
      mapping: { ...base, event: { '@replace': { pattern: ' ', replacement: '_', value: P('$.event') } } } },
    { name: 'Product events', subscribe: 'contains(event, "Product")', partnerAction: 'logEvent',
      mapping: { ...base, properties: { products: { '@arrayPath': ['$.properties.products', { id: P('$.product_id'), price: P('$.price') }] }, productCount: P('$.properties.products.length'), first: P('$.properties.products[0].product_id') } } },
    { name: 'Checkout prefix', subscribe: 'match(event, "Checkout*")', partnerAction: 'logEvent', mapping: base },
    { name: 'Completed suffix', subscribe: 'match(event, "*Completed")', partnerAction: 'logEvent', mapping: base },
    { name: 'High revenue track or page', subscribe: '(type = "track" or type = "page") and properties.revenue > 100', partnerAction: 'logEvent', mapping: base },
    { name: 'Pro plan, not test users', subscribe: 'properties.plan = "pro" and !contains(userId, "test")', partnerAction: 'logEvent', mapping: base },
    { name: 'Count is three', subscribe: 'properties.count = 3', partnerAction: 'logEvent', mapping: base },
    { name: 'Count is not three', subscribe: 'type = "track" and properties.count != 3', partnerAction: 'logEvent',
      mapping: { ...base, event: { '@template': '{{event}} (count {{properties.count}})' } } },
    { name: 'Cheap or expensive', subscribe: 'properties.price <= 9.99 or properties.price >= 1000', partnerAction: 'logEvent', mapping: base },
    { name: 'French checkout page', subscribe: 'type = "page" and context.locale = "fr-FR" and context.page.path = "/checkout"', partnerAction: 'page', mapping: presetMapping('page') },
    { name: 'Anonymous pages', subscribe: 'type = "page" and userId = null', partnerAction: 'page', mapping: presetMapping('page') },
    { name: 'VIP identify', subscribe: 'type = "identify" and traits.vip = true', partnerAction: 'identify', mapping: presetMapping('identify') },
    { name: 'Flag false', subscribe: 'properties.flag = false', partnerAction: 'logEvent', mapping: base },
    { name: 'Not example.com users', subscribe: 'type = "identify" and !match(userId, "*@example.com")', partnerAction: 'identify', mapping: presetMapping('identify') },
    { name: 'Named', subscribe: 'name != null and type != "screen"', partnerAction: 'page', mapping: presetMapping('page') },
    { name: 'Nested property', subscribe: 'properties.cart.total >= 50 and properties.cart.currency = "EUR"', partnerAction: 'logEvent', mapping: base }
  ]
  const r = rt.rng(2002)
  const cases = []
  let n = 0
  const add = (name, event) => cases.push({ name, event })
  const EVENTS = [...EVENT_NAMES, 'order completed', 'Order Completed ', 'Product', 'Checkout', 'Completed', 'XCheckout Started',
    'Product Product', 'Checkout Completed']
  for (let i = 0; i < 70; i++) {
    const type = r.pick(['track', 'track', 'track', 'page', 'identify'])
    const e = baseEvent(type, r, n++)
    if (type === 'track') {
      e.event = r.pick(EVENTS)
      e.properties = { ...e.properties }
      if (r.bool(0.4)) e.properties.price = r.pick([0, 5, 9.99, 10, 999.99, 1000, 1500, '9.99', null])
      if (r.bool(0.3)) e.properties.count = r.pick([3, 3.0, '3', 2, null, true])
      if (r.bool(0.3)) e.properties.flag = r.pick([false, true, 'false', 0, null])
      if (r.bool(0.3)) e.properties.revenue = r.pick([100, 100.01, '150', 99.99, -200])
      if (r.bool(0.3)) e.properties.products = Array.from({ length: r.int(0, 3) }, (_, k) => ({ product_id: `p${k}`, price: k * 10, extra: 'x' }))
      if (r.bool(0.2)) e.properties.cart = { total: r.pick([49.99, 50, 75, '60']), currency: r.pick(['EUR', 'USD']) }
      if (r.bool(0.3)) e.userId = r.pick(['test-user', 'user-test-1', 'Test', 'alice@example.com'])
    } else if (type === 'page') {
      e.context = { ...e.context, locale: r.pick(['fr-FR', 'en-US']), page: { path: r.pick(['/checkout', '/', '/checkout/']) } }
      if (r.bool(0.3)) e.userId = r.pick([null, undefined, ''])
      if (e.userId === undefined) delete e.userId
      if (r.bool(0.3)) e.properties = { ...e.properties, revenue: r.pick([50, 150, '200']) }
    } else {
      if (r.bool(0.5)) e.userId = r.pick(['bob@example.com', 'bob@example.org', 'example.com', 42])
      e.traits = { ...e.traits, vip: r.pick([true, false, 'true', 1, null]) }
    }
    add(`generated-${String(i).padStart(2, '0')}-${type}`, e)
  }
  const t = () => baseEvent('track', r, n++)
  add('order-completed', { ...t(), event: 'Order Completed', properties: { plan: 'pro', revenue: 250, count: 3, price: 9.99 } })
  add('order-completed-test-user', { ...t(), event: 'Order Completed', userId: 'qa-test-7', properties: { plan: 'pro' } })
  add('order-completed-no-user', setField({ ...t(), event: 'Order Completed', properties: { plan: 'pro' } }, 'userId', undefined))
  add('event-missing', setField(t(), 'event', undefined))
  add('event-null', { ...t(), event: null })
  add('event-number', { ...t(), event: 42 })
  add('event-with-glob-chars', { ...t(), event: 'Checkout*' })
  add('event-with-quotes', { ...t(), event: 'Product "Quoted"' })
  add('products-not-array', { ...t(), event: 'Product Viewed', properties: { products: { product_id: 'p-single', price: 3 } } })
  add('products-array-of-scalars', { ...t(), event: 'Product Viewed', properties: { products: ['a', 'b'] } })
  add('products-empty', { ...t(), event: 'Product Viewed', properties: { products: [] } })
  add('products-missing', { ...t(), event: 'Product Viewed', properties: {} })
  add('count-three-page', { ...baseEvent('page', r, n++), properties: { count: 3 } })
  add('count-three-identify', { ...baseEvent('identify', r, n++), properties: { count: 3 } })
  add('count-three-string', { ...t(), properties: { count: '3' } })
  add('revenue-exactly-100', { ...t(), properties: { revenue: 100 } })
  add('revenue-string', { ...t(), properties: { revenue: '1000' } })
  add('price-boundaries-low', { ...t(), properties: { price: 9.99 } })
  add('price-boundaries-high', { ...t(), properties: { price: 1000 } })
  add('price-between', { ...t(), properties: { price: 10 } })
  add('flag-false', { ...t(), properties: { flag: false } })
  add('flag-string-false', { ...t(), properties: { flag: 'false' } })
  add('vip-true', { ...baseEvent('identify', r, n++), traits: { vip: true } })
  add('vip-string-true', { ...baseEvent('identify', r, n++), traits: { vip: 'true' } })
  add('identify-example-com', { ...baseEvent('identify', r, n++), userId: 'carol@example.com' })
  add('identify-userid-number', { ...baseEvent('identify', r, n++), userId: 7 })
  add('page-anonymous', setField({ ...baseEvent('page', r, n++) }, 'userId', undefined))
  add('page-userid-null', { ...baseEvent('page', r, n++), userId: null })
  add('page-french-checkout', { ...baseEvent('page', r, n++), context: { locale: 'fr-FR', page: { path: '/checkout' } } })
  add('screen-named', baseEvent('screen', r, n++))
  add('nested-cart-match', { ...t(), properties: { cart: { total: 50, currency: 'EUR' } } })
  add('nested-cart-dotted-key', { ...t(), properties: { 'cart.total': 60, cart: { currency: 'EUR' } } })
  return { name: 'trigger-language', description: 'Triggers with =, !=, contains(), match() globs, and/or/parentheses, properties/traits/context comparisons; several subscriptions may match one event', subscriptions, cases }
}

function directivesSuite() {
  const subscriptions = [
    {
      name: 'Identify with merged traits',
      subscribe: 'type = "identify"',
      partnerAction: 'identify',
      mapping: {
        userId: P('$.userId'),
        anonymousId: P('$.anonymousId'),
        type: P('$.type'),
        properties: { '@merge': { direction: 'right', objects: [P('$.traits'), P('$.context.traits'), { source: 'merge' }] } },
        kameleoonVisitorCode: { '@json': { mode: 'encode', value: P('$.traits.kameleoonVisitorCode') } },
        timestamp: P('$.timestamp'),
        messageId: P('$.messageId')
      }
    },
    {
      name: 'Group with flattened traits',
      subscribe: 'type = "group"',
      partnerAction: 'group',
      mapping: {
        userId: P('$.userId'),
        type: 'group',
        groupId: { '@case': { operator: 'lower', value: P('$.groupId') } },
        properties: { '@flatten': { value: P('$.traits'), separator: '.' } },
        kameleoonVisitorCode: { '@template': 'grp-{{groupId}}-{{traits.kameleoonVisitorCode}}' },
        timestamp: P('$.timestamp'),
        messageId: P('$.messageId')
      }
    },
    {
      name: 'Track with every directive',
      subscribe: 'type = "track"',
      partnerAction: 'logEvent',
      mapping: {
        anonymousId: P('$.anonymousId'),
        userId: { '@excludeWhenNull': P('$.userId') },
        event: { '@replace': { pattern: '-', replacement: ' ', pattern2: '_', replacement2: '', ignorecase: true, global: true, value: P('$.event') } },
        type: P('$.type'),
        properties: {
          plain: 'constant',
          number: 42,
          float: 1.5,
          flag: true,
          nothing: null,
          list: [1, 'a', P('$.event'), null],
          nested: { deep: { event: P('$.event'), user: P('$.userId'), missing: P('$.nope.nope') } },
          encoded: { '@json': { mode: 'encode', value: P('$.properties') } },
          decoded: { '@json': { mode: 'decode', value: P('$.properties.payload') } },
          notNull: { '@excludeWhenNull': P('$.properties.maybe') },
          cleaned: { '@excludeWhenNull': P('$.properties.withNulls') },
          transformed: { '@transform': { apply: { name: P('$.event') }, mapping: { upper: { '@case': { operator: 'upper', value: P('$.name') } } } } },
          items: { '@arrayPath': ['$.properties.items', { sku: P('$.sku'), qty: P('$.qty') }] },
          tmpl: { '@template': '{{properties.total}}|{{{event}}}|{{missing}}|{{properties.items}}|{{properties.withNulls}}' },
          flat: { '@flatten': { value: P('$.properties.tree'), separator: '_', omitArrays: true } },
          lowered: { '@case': { operator: 'lower', value: P('$.properties.code') } },
          replacedNumber: { '@replace': { pattern: '.', replacement: ',', value: P('$.properties.total') } },
          literalObject: { '@literal': { a: P('$.event') } },
          mergedLeft: { '@merge': { direction: 'left', objects: [{ a: 1, b: 1 }, P('$.properties.override')] } }
        },
        kameleoonVisitorCode: { '@if': { exists: P('$.properties.kameleoonVisitorCode'), then: P('$.properties.kameleoonVisitorCode'), else: P('$.anonymousId') } },
        timestamp: P('$.timestamp'),
        context: { '@excludeWhenNull': P('$.context') },
        messageId: P('$.messageId')
      }
    },
    {
      // @liquid is left out: no Python Liquid engine gives liquidjs's results, so the service refuses it at start-up.
      name: 'Page with transformed properties',
      subscribe: 'type = "page"',
      partnerAction: 'page',
      mapping: {
        anonymousId: P('$.anonymousId'),
        userId: P('$.userId'),
        type: 'page',
        properties: { '@transform': { apply: { p: P('$.properties') }, mapping: { '@path': '$.p' } } },
        name: { '@case': { operator: 'lower', value: P('$.name') } },
        context: { locale: P('$.context.locale'), page: { '@json': { mode: 'encode', value: P('$.context.page') } } },
        timestamp: P('$.timestamp'),
        messageId: { '@template': '{{messageId}}-page' }
      }
    }
  ]
  const r = rt.rng(3003)
  const cases = []
  let n = 0
  const add = (name, event) => cases.push({ name, event })
  for (let i = 0; i < 60; i++) {
    const type = r.pick(['track', 'track', 'identify', 'group', 'page'])
    const e = baseEvent(type, r, n++)
    if (type === 'track') {
      e.event = r.pick(['order-completed', 'Order_Completed', 'ORDER-COMPLETED_2', 'plain', 'a-b_c-d_e'])
      e.properties = { ...e.properties }
      if (r.bool(0.5)) e.properties.total = r.pick([10, 10.5, 0.1, 1e21, -3, '7.25', null])
      if (r.bool(0.5)) e.properties.payload = r.pick(['{"a":1}', '[1,2]', 'not json', '"str"', '42', 'null', '', { already: 'object' }])
      if (r.bool(0.5)) e.properties.maybe = r.pick([null, 'x', 0, false, { y: null }])
      if (r.bool(0.5)) e.properties.withNulls = { a: null, b: { c: null, d: 1 }, e: [null], f: 'keep' }
      if (r.bool(0.5)) e.properties.items = r.pick([[{ sku: 's1', qty: 1, x: 0 }, { sku: 's2' }], { sku: 'single', qty: 2 }, [], 'nope', [1, 2]])
      if (r.bool(0.5)) e.properties.tree = r.pick([{ a: { b: { c: 1 } }, arr: [1, { x: 2 }] }, { 'x.y': { z: 'dot' } }, [], 'leaf', null])
      if (r.bool(0.5)) e.properties.code = r.pick(['ABC', 'ÀÉÎ', 'İ', 'ß', 5])
      if (r.bool(0.4)) e.properties.override = r.pick([{ a: 2, c: 3 }, null, 'str', [9]])
      if (r.bool(0.2)) e.userId = null
    } else if (type === 'identify') {
      if (r.bool(0.5)) e.context = { ...e.context, traits: { plan: 'context-plan', extra: true } }
      if (r.bool(0.3)) e.traits = r.pick([null, 'str', [1], { kameleoonVisitorCode: 42 }])
    } else if (type === 'group') {
      e.groupId = r.pick(['GRP-ABC', 'grp-abc', 'İSTANBUL', 'Straße', 7])
      if (r.bool(0.5)) e.traits = { ...e.traits, address: { city: 'Paris', geo: { lat: 48.85, lng: 2.35 } }, tags: ['a', 'b'], empty: {} }
    } else {
      e.name = r.pick(['Home Page', 'Pricing', '', null, 'ÜBER UNS', 42])
      if (e.name === null) delete e.name
    }
    add(`generated-${String(i).padStart(2, '0')}-${type}`, e)
  }
  const t = () => baseEvent('track', r, n++)
  add('track-total-string-replace', { ...t(), event: 'x-y', properties: { total: 3.14 } })
  add('track-total-missing-liquid', { ...t(), event: 'no-total', properties: {} })
  add('track-properties-absent', setField(t(), 'properties', undefined))
  add('track-event-absent', setField(t(), 'event', undefined))
  add('track-event-number', { ...t(), event: 12 })
  add('track-payload-json-object', { ...t(), properties: { payload: '{"nested":{"deep":[1,2,{"x":null}]}}' } })
  add('track-payload-json-big-number', { ...t(), properties: { payload: '{"n":12345678901234567890,"f":1.0,"e":1e400}' } })
  add('track-context-null', { ...t(), context: null })
  add('track-context-with-nulls', { ...t(), context: { a: null, b: { c: null }, d: [null] } })
  add('track-liquid-total-string', { ...t(), properties: { total: '41' } })
  add('track-liquid-total-object', { ...t(), properties: { total: { v: 1 } } })
  add('track-event-with-braces', { ...t(), event: '{{ event }} {% raw %}' })
  add('track-tree-deep', { ...t(), properties: { tree: deepObject(12, { leaf: [1, 2] }) } })
  add('track-items-many', { ...t(), properties: { items: Array.from({ length: 50 }, (_, i) => ({ sku: `s${i}`, qty: i })) } })
  add('identify-traits-absent', setField(baseEvent('identify', r, n++), 'traits', undefined))
  add('identify-visitor-code-string', { ...baseEvent('identify', r, n++), traits: { kameleoonVisitorCode: 'kvc-"quoted"' } })
  add('identify-context-traits-override', { ...baseEvent('identify', r, n++), traits: { plan: 'free', a: 1 }, context: { traits: { plan: 'pro', b: 2 } } })
  add('group-traits-array', { ...baseEvent('group', r, n++), traits: ['x', 'y'] })
  add('group-traits-nested-arrays', { ...baseEvent('group', r, n++), traits: { list: [[1, [2]], { k: [3] }], '': 'empty-key', 'a.b': { c: 1 } } })
  add('group-id-mixed-case', { ...baseEvent('group', r, n++), groupId: 'MiXeD-Case' })
  add('page-name-html', { ...baseEvent('page', r, n++), name: '<b>Bold</b> Name' })
  add('page-no-context', setField(baseEvent('page', r, n++), 'context', undefined))
  add('page-properties-absent', setField(baseEvent('page', r, n++), 'properties', undefined))
  add('page-message-id-absent', setField(baseEvent('page', r, n++), 'messageId', undefined))
  add('page-message-id-number', { ...baseEvent('page', r, n++), messageId: 17 })
  add('alias-not-subscribed', baseEvent('alias', r, n++))
  return { name: 'directives', description: 'Mappings using @case, @replace, @arrayPath, @json, @flatten, @merge, @transform, @excludeWhenNull, @template, @if, @literal, nested objects and plain values', subscriptions, cases }
}

function multiMatchSuite() {
  const subscriptions = [
    { name: 'All track', subscribe: 'type = "track"', partnerAction: 'logEvent', mapping: presetMapping('logEvent') },
    { name: 'Track or identify as Identify', subscribe: 'type = "track" or type = "identify"', partnerAction: 'identify',
      mapping: { userId: P('$.userId'), anonymousId: P('$.anonymousId'), type: P('$.type'),
        properties: { '@if': { exists: P('$.traits'), then: P('$.traits'), else: P('$.properties') } },
        kameleoonVisitorCode: P('$.userId'), timestamp: P('$.timestamp'), messageId: P('$.messageId') } },
    { name: 'Signed Up as Group', subscribe: 'event = "Signed Up"', partnerAction: 'group',
      mapping: { userId: P('$.userId'), type: 'group', groupId: P('$.properties.groupId'), properties: P('$.properties'),
        timestamp: P('$.timestamp'), messageId: P('$.messageId') } },
    { name: 'All track again, visitor code from userId', subscribe: 'type = "track"', partnerAction: 'logEvent',
      mapping: { ...presetMapping('logEvent'), kameleoonVisitorCode: P('$.userId') } },
    { name: 'Everything but track as Page', subscribe: 'type != "track"', partnerAction: 'page', mapping: presetMapping('page') },
    { name: 'Presets: Identify Calls', subscribe: 'type = "identify"', partnerAction: 'identify', mapping: presetMapping('identify') }
  ]
  const r = rt.rng(4004)
  const cases = []
  let n = 0
  const add = (name, event) => cases.push({ name, event })
  for (let i = 0; i < 90; i++) {
    const type = r.pick(['track', 'track', 'page', 'identify', 'group', 'alias', 'screen'])
    const e = baseEvent(type, r, n++)
    if (type === 'track' && r.bool(0.4)) {
      e.event = 'Signed Up'
      if (r.bool(0.6)) e.properties = { ...e.properties, groupId: r.pick(['grp-1', '', null, 5, ['g']]) }
    }
    if (r.bool(0.15)) delete e.messageId
    if (r.bool(0.1)) e.userId = r.pick([null, '', 42])
    add(`generated-${String(i).padStart(2, '0')}-${type}`, e)
  }
  add('no-type', setField(baseEvent('track', r, n++), 'type', undefined))
  add('signed-up-page', { ...baseEvent('page', r, n++), event: 'Signed Up', properties: { groupId: 'grp-page' } })
  add('signed-up-identify', { ...baseEvent('identify', r, n++), event: 'Signed Up', properties: { groupId: 'grp-identify' } })
  add('track-with-traits', { ...baseEvent('track', r, n++), traits: { t: 1 } })
  add('empty-object', {})
  return { name: 'multiple-matches', description: 'Several subscriptions matching the same event, including the same action twice; results are in subscription order', subscriptions, cases }
}

function invalidTriggerSuite() {
  const good = { name: 'Valid track', subscribe: 'type = "track"', partnerAction: 'logEvent', mapping: presetMapping('logEvent') }
  const subscriptions = [
    { name: 'Unclosed parenthesis', subscribe: 'type = "track" and (event = "A"', partnerAction: 'logEvent', mapping: presetMapping('logEvent') },
    good
  ]
  const r = rt.rng(5005)
  const cases = []
  for (let i = 0; i < 6; i++) cases.push({ name: `event-${i}`, event: baseEvent(i % 2 ? 'page' : 'track', r, i) })
  return { name: 'invalid-trigger', description: 'A subscription whose trigger does not parse: the runtime never matches it (every event gets "Invalid subscription"); the other subscriptions still run', subscriptions, cases }
}

function emptyTriggerSuite() {
  const subscriptions = [
    { name: 'Empty trigger', subscribe: '', partnerAction: 'logEvent', mapping: presetMapping('logEvent') },
    { name: 'Valid page', subscribe: 'type = "page"', partnerAction: 'page', mapping: presetMapping('page') }
  ]
  const r = rt.rng(6006)
  const cases = []
  for (let i = 0; i < 6; i++) cases.push({ name: `event-${i}`, event: baseEvent(i % 2 ? 'page' : 'track', r, i) })
  return { name: 'empty-trigger', description: 'A subscription with an empty trigger: "Failed to validate subscription" for every event', subscriptions, cases }
}

function invalidMappingSuite() {
  const subscriptions = [
    { name: 'Unknown directive', subscribe: 'type = "track"', partnerAction: 'logEvent',
      mapping: { ...presetMapping('logEvent'), event: { '@nope': '$.event' } } },
    { name: 'Bad @json mode', subscribe: 'type = "track"', partnerAction: 'logEvent',
      mapping: { ...presetMapping('logEvent'), properties: { x: { '@json': { mode: 'stringify', value: P('$.properties') } } } } },
    { name: 'Two directives in one object', subscribe: 'type = "page"', partnerAction: 'page',
      mapping: { ...presetMapping('page'), name: { '@path': '$.name', '@template': '{{name}}' } } },
    { name: 'Valid track', subscribe: 'type = "track"', partnerAction: 'logEvent', mapping: presetMapping('logEvent') }
  ]
  const r = rt.rng(7007)
  const cases = []
  for (let i = 0; i < 8; i++) cases.push({ name: `event-${i}`, event: baseEvent(['track', 'page', 'identify'][i % 3], r, i) })
  return { name: 'invalid-mapping', description: 'Subscriptions whose mapping fails mapping-kit validation: every matching event is rejected with the validation message', subscriptions, cases }
}

// ---------------------------------------------------------------------------

async function main() {
  const dest = rt.newDestination()
  rt.writeJson(path.join(rt.GOLDENS, 'presets.json'), PRESETS)

  const suites = [
    { name: 'presets', description: "The destination's presets (tests/goldens/presets.json)", subscriptions: null, cases: presetCases() },
    aliasScreenSuite(),
    triggerSuite(),
    directivesSuite(),
    multiMatchSuite(),
    invalidTriggerSuite(),
    emptyTriggerSuite(),
    invalidMappingSuite()
  ]
  const out = { settings: { ...rt.SETTINGS }, suites: [] }
  const summary = []
  for (const suite of suites) {
    // Record the subscriptions exactly as given, before any run.
    const frozen = suite.subscriptions === null ? null : JSON.parse(stringify(suite.subscriptions, ''))
    const recorded = await runSuite(dest, { ...suite, subscriptions: frozen })
    out.suites.push(recorded)
    const results = recorded.cases.flatMap((c) => c.results)
    summary.push(`${suite.name}: ${recorded.cases.length} events, ${results.filter((x) => x.request).length} requests, ` +
      `${results.filter((x) => x.error).length} errors${recorded.error ? ', suite error' : ''}`)
  }
  rt.writeJson(path.join(rt.GOLDENS, 'events.json'), out)
  console.log(summary.join('\n'))
  if (rt.interceptorCalls() === 0) rt.die('no request was intercepted')
}

main().catch((err) => rt.die('recording failed', err))
