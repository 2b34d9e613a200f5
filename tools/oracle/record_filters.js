#!/usr/bin/env node
// Records tests/goldens/filters.json from Segment's destination-filter engine,
// @segment/tsub (matchers and transformers, as analytics.js runs them), and
// Segment's FQL lexer, @segment/fql-ts.
//
// Segment compiles a filter's FQL on its servers; that compiler is not public.
// The service compiles FQL itself (service/routing/filters/fql.py, run here through
// `python -m service.routing.filters`), and tsub then decides on what it compiled:
//   - conditions: each FQL text of the corpus, compiled, run by tsub's
//     matches() on every event of the pool: true, false, or what it throws.
//     Where the corpus states the compiled form Segment itself produced
//     (`ir`, with its source), the compiler must give exactly that or this
//     script fails.
//   - globs: tsub's match() on (text, pattern) pairs.
//   - suites: filters in the Public API's shape, turned into tsub rules in
//     Segment's order (sample, drop, drop properties, allow properties) and
//     run filter after filter as analytics.js's tsub middleware does; the
//     event that comes out (JSON text) or the filter that stopped it.
//   - tokens: fql-ts's lex() of every FQL text: tokens, or its error.
// SAMPLE with 0 < percent < 1 is left out: tsub 2.0.1 keeps every event under
// a SAMPLE with a path (tiny-hashes' MD5 returns a hex string, which its bit
// loop reads as all zeros), and without a path it draws Math.random().
// Deterministic: no clock, no randomness; re-recording gives the same file.
'use strict'

const fs = require('fs')
const path = require('path')
const { spawnSync } = require('child_process')
const tsub = require('@segment/tsub')
const { lex } = require('@segment/fql-ts')
const { raw, viaJson } = require('./lib/json')

const ROOT = path.join(__dirname, '..', '..')
const GOLDENS = path.join(ROOT, 'tests', 'goldens')
const PYTHON = process.env.PYTHON || path.join(ROOT, '.venv', 'bin', 'python')

// ------------------------------------------------------------------ events

const EVENTS = [
  {
    type: 'track', event: 'Order Completed', userId: 'u1', anonymousId: 'a1', messageId: 'm1',
    properties: {
      total: 42, revenue: 19.99, currency: 'USD', email: 'Jane@Example.com', tags: ['a', 'b'],
      items: [{ sku: 'x', price: 1 }, { sku: 'y', price: 2 }], flag: true, nothing: null, zero: 0, empty: '',
      nested: { deep: { value: 'v' } }, 'product 1': { price: '19.99' }, version: '1.2.3', count: '42', pattern: 'Order*'
    },
    context: { ip: '1.2.3.4', library: { name: 'analytics.js', version: '1.0' }, app: { version: '2.10.0' }, page: { path: '/login' } }
  },
  {
    type: 'identify', userId: 'u2', messageId: 'm2',
    traits: { email: 'test@segment.com', name: 'Zoë', age: 30, plan: null, vip: false, tags: [] },
    context: { ip: '5.6.7.8', library: { name: 'analytics-python', version: '2.2.0' } }
  },
  { type: 'page', name: 'Home', anonymousId: 'a3', properties: { path: '/', url: 'https://x.io/', title: 'Home', total: 3.5 } },
  { type: 'group', groupId: 'g1', userId: 'u4', traits: { plan: 'pro', seats: 10, email: 'admin@corp.io' } },
  { type: 'TRACK', event: 'order completed', properties: { total: '42', flag: 'true', tags: 'a,b' } },
  {
    type: 'track', event: 'Test Event', userId: 'qa-1',
    properties: { test: true, email: 'qa@internal.test', total: 0 },
    context: { library: { name: 'test-suite', version: '0.0.1' }, ip: '127.0.0.1' }
  },
  { type: 'track', event: 'Signed Up', properties: [1, 2], traits: 'x', context: 5 },
  {},
  { type: 'track', event: 42, userId: 7, name: true, properties: { total: -1, version: 'v2', count: 42, revenue: -0.5 } },
  {
    type: 'track', event: 'Café 😀', userId: 'ü',
    properties: { name: 'ÄÖÜ', emoji: '😀😀', ja: 'アイウ', s: 'a😀b', t: 'a☺b' }
  },
  {
    event: 'Button Clicked', type: 'track',
    context: { library: { name: 'analytics.js', version: '1.0' } },
    properties: { features: ['discounts', 'dark-mode'] }
  },
  {
    type: 'track', event: 'Odd Values',
    properties: {
      list_with_null: [null, 'a'], list_of_paths: ['event', 'type'], obj: { value: 'a' }, objs: [{ value: 'Odd Values' }],
      constructor: 'own', nums: [1, 2, 3], big: raw('9007199254740993'), mixed: [1, '1', true, null], empty_obj: {}
    }
  },
  { type: 'track', event: 'ab/c', userId: '', properties: { path: 'a*b', total: 1e21, tags: ['a'], version: '10.0.0' } },
  { type: 'screen', name: 'Main', properties: { n: -1 }, context: { app: { version: '1.9.9' } } },
  { type: 'alias', userId: 'u5', previousId: 'p5', context: { library: { name: null } } },
  {
    type: 'track', event: 'Products Viewed',
    properties: { products: [{ sku: 'a', price: 1, name: 'A' }, { sku: 'b', price: 2 }, 'not an object', null], total: 3 },
    context: { device: { id: 'd1', advertisingId: 'ad1', model: 'm' }, ip: '9.9.9.9' }
  }
]

// ------------------------------------------------------------------ conditions

// FQL -> compiled form as Segment's own servers produced it (settings shipped to
// analytics.js and analytics-kotlin), or as tsub's own tests state it.
const SEGMENT = 'compiled by Segment (routingRules in analytics-next test fixtures: config.expr and ir)'
const KOTLIN = 'compiled by Segment (destination filter settings quoted in analytics-kotlin destination-filters code)'
const TSUB = "stated in @segment/tsub's matchers tests (FQL comment above the IR)"
const STATED = [
  { if: 'event = "munanyo" and type = "track" and properties.referrer = "munyaaaanyo"', source: SEGMENT,
    ir: ['and', ['=', 'event', { value: 'munanyo' }], ['and', ['=', 'type', { value: 'track' }], ['=', 'properties.referrer', { value: 'munyaaaanyo' }]]] },
  { if: '!(event = "CP VOD - Start video" or event = "CP VOD - Track video")', source: KOTLIN,
    ir: ['!', ['or', ['=', 'event', { value: 'CP VOD - Start video' }], ['=', 'event', { value: 'CP VOD - Track video' }]]] },
  { if: 'event = "Screen Opened" or event = "Search - View" or event = "App Opened"', source: KOTLIN + ' (shortened chain)',
    ir: ['or', ['=', 'event', { value: 'Screen Opened' }], ['or', ['=', 'event', { value: 'Search - View' }], ['=', 'event', { value: 'App Opened' }]]] },
  { if: 'contains(email, ".com")', source: TSUB, ir: ['contains', 'email', { value: '.com' }] },
  { if: '"test" = lowercase("TEST")', source: TSUB, ir: ['=', { value: 'test' }, ['lowercase', { value: 'TEST' }]] },
  { if: '4 = length("TEST")', source: TSUB, ir: ['=', { value: 4 }, ['length', { value: 'TEST' }]] },
  { if: '"boolean" = typeof(true)', source: TSUB, ir: ['=', { value: 'boolean' }, ['typeof', { value: true }]] },
  { if: 'semver(app_version, ">=", "1.0.0")', source: TSUB, ir: ['semver', 'app_version', { value: '>=' }, { value: '1.0.0' }] },
  { if: 'match("test@test.com", "*.com")', source: TSUB, ir: ['match', { value: 'test@test.com' }, { value: '*.com' }] },
  { if: '[1, 2] = [1, 2]', source: TSUB, ir: ['=', { value: [{ value: 1 }, { value: 2 }] }, { value: [{ value: 1 }, { value: 2 }] }] },
  { if: '"event" in ["event", "str"]', source: TSUB, ir: ['in', { value: 'event' }, { value: [{ value: 'event' }, { value: 'str' }] }] },
  { if: 'event in ["Clicked", "Viewed"]', source: TSUB, ir: ['in', 'event', { value: [{ value: 'Clicked' }, { value: 'Viewed' }] }] },
  { if: '(false or true) and true', source: TSUB, ir: ['and', ['or', { value: false }, { value: true }], { value: true }] },
  { if: 'trueValue', source: TSUB, ir: 'trueValue' },
  { if: 'true', source: TSUB, ir: { value: true } },
  { if: '0 = 0', source: TSUB, ir: ['=', { value: 0 }, { value: 0 }] },
  { if: '5 != 6', source: TSUB, ir: ['!=', { value: 5 }, { value: 6 }] }
]

const CONDITIONS = [
  // Segment's FQL page, its examples
  "event = 'Button Clicked'", "event = 'Screen Tapped'", "context.path.path = '/login'", "type = 'identify' or type = 'track'",
  "event = 'Button Clicked' and type = 'track'", "match( context.library.version, '1.*' )", "match( context.library.version, '2.*' )",
  "type = 'track' and ( event = 'Click' or match( event, 'Button *' ) )", "!contains( context.library.name, 'js' )",
  "'dark-mode' in properties.features", "'blink' in properties.features",
  "( type = 'track' or type = 'identify' ) and ( properties.flag or match( traits.email, '*@segment.com' ) )",
  "!( type in ['track', 'identify'] )", 'length( userId ) > 0',
  // match-all, literals and lone paths
  'all', 'false', 'null', '"abc"', '42', 'properties.flag', '!properties.flag', 'properties.total', '!properties.missing',
  'traits.vip', '!traits.vip', 'properties.test', 'true and properties.flag', 'all = true',
  // equality: strict types, nulls, missing paths
  'type = "track"', 'type = "TRACK"', 'type != "track"', 'type = track', 'event = "Order Completed"', 'event != "Order Completed"',
  'event = 42', 'event = "42"', 'userId = null', 'userId != null', 'userId = ""', 'userId = 7', 'userId = "7"',
  'properties.nothing = null', 'properties.nothing != null', 'properties.missing = null', 'properties.missing != null',
  'properties.missing = "x"', 'properties.missing != "x"', 'properties.total = 42', 'properties.total = "42"',
  'properties.total = 42.0', 'properties.total = +42', 'properties.total != 42', 'properties.count = 42', 'properties.count = "42"',
  'properties.revenue = 19.99', 'properties.revenue = -0.5', 'properties.zero = 0', 'properties.zero = -0', 'properties.zero = false',
  'properties.zero = null', 'properties.empty = ""', 'properties.empty = null', 'properties.flag = true', 'properties.flag = "true"',
  'properties.flag != false', 'traits.vip = false', 'traits.plan = null', 'traits.age = 30', 'traits.age = "30"',
  'properties.big = 9007199254740993', 'properties.big = 9007199254740992', 'properties.total = 1000000000000000000000',
  // objects and lists
  'properties.tags = ["a", "b"]', 'properties.tags = properties.tags', 'properties.items = properties.items', 'properties = properties',
  'properties.nothing = properties.missing', 'properties.nothing = properties.nothing', 'properties.nested = properties.nested',
  'properties.tags != ["a", "b"]', '[] = []', '["a"] = properties.tags', 'properties.empty_obj = properties.empty_obj',
  'context = null', 'traits.tags = traits.tags',
  // paths: nesting, arrays, escapes, JavaScript properties
  'context.library.name = "analytics.js"', "context.library.name = 'analytics.js'", 'context.library.version = "1.0"',
  'properties.nested.deep.value = "v"', 'properties.nested.deep.missing = null', 'properties.items.0.sku = "x"',
  'properties.items.1.price = 2', 'properties.items.2.price = null', 'properties.tags.0 = "a"', 'properties.tags.length = 2',
  'event.length > 5', 'properties.email.length = 16', 'properties.product\\ 1.price = "19.99"', 'properties.constructor = "own"',
  'typeof(properties.constructor) = "function"', 'properties.nums.1 = 2', 'properties.10 = null', 'properties.0 = 1',
  'properties.products.0.name = "A"', 'context.library.name.length = 8',
  'properties.nothing.deep = null', 'properties.zero.x = 0', 'properties.empty.length = 0', 'properties.flag.x = null',
  'properties.tags.1.length = 1', 'traits.vip.valueOf = null', 'properties.total.toFixed = null', 'properties.__proto__ = null',
  // numbers
  'properties.total > 40', 'properties.total >= 42', 'properties.total < 42', 'properties.total <= 42', 'properties.total > -5',
  'properties.total > "40"', 'properties.count > 40', 'properties.revenue < 20', 'properties.missing < 1', 'properties.missing >= 0',
  'properties.nothing >= 0', 'properties.zero >= 0', 'properties.zero <= -0', 'properties.total > 1e3', 'traits.age >= 18',
  'traits.seats > 9.5', 'properties.n < 0', 'properties.total > properties.zero', 'length(event) > 10', 'properties.flag > 0',
  // logic
  'type = "track" and event = "Order Completed"', 'type = "identify" or type = "track"', 'type = "track" and properties.total > 40 and userId = "u1"',
  'type = "page" or type = "screen" or type = "alias"', '!(type = "track")', '!(type = "track" and properties.flag)',
  '((type = "track"))', '(type = "track" or type = "page") and (userId != null or anonymousId != null)',
  '!properties.flag and type = "track"', 'lowercase(type) = "track" and !contains(event, "Test")',
  'properties.total and properties.flag', 'length(userId) or properties.flag', '!length(properties.tags)', '!lowercase(properties.missing)',
  '!lowercase(event)', '!typeof(event)', 'properties.missing or true',
  // in
  'type in ["track", "page"]', 'type in []', 'type in ["TRACK"]', 'properties.total in [42, "x"]', 'properties.total in ["42"]',
  'null in [null]', 'properties.missing in [null]', 'properties.nothing in [null, 1]', 'true in [true]', 'properties.flag in [true, false]',
  '"a" in properties.tags', '"x" in properties.missing', '"x" in properties.total', '"x" in properties.email', '"x" in properties.nested',
  '"a" in properties.list_with_null', '"Odd Values" in properties.objs', '"track" in properties.list_of_paths',
  '"track" in [type, event]', 'event in [event]', '1 in properties.nums', '"track" in properties.tags',
  // contains
  'contains(event, "Order")', 'contains(event, "order")', 'contains(properties.missing, "x")', 'contains(properties.total, "4")',
  'contains(traits.email, "@segment.com")', 'contains("abc", "")', 'contains(properties.emoji, "😀")', 'contains(properties.s, "😀b")',
  'contains(properties.tags, "a")', 'contains(context.ip, "127.")', 'contains(event, properties.currency)',
  // match
  'match(event, "Order *")', 'match(event, "*Completed")', 'match(event, "*")', 'match(properties.missing, "*")',
  'match(properties.total, "4*")', 'match(traits.email, "*@segment.com")', 'match(properties.email, "*@example.com")',
  'match(event, properties.pattern)', 'match(properties.s, "a?b")', 'match(properties.s, "a??b")', 'match(properties.t, "a?b")',
  'match(context.ip, "127.*")', 'match(event, "[A-Z]*")', 'match(event, "ab/c")', 'match(event, "a*")',
  'match(properties.path, "a\\*b")', 'match(properties.path, "a*b")', 'match(event, "Caf? *")',
  // lowercase, length, typeof
  'lowercase(event) = "order completed"', '"order completed" = lowercase(event)', 'lowercase(properties.total) = null',
  'lowercase(properties.missing) = null', 'lowercase(properties.name) = "äöü"', 'lowercase(event)', 'lowercase(type) = lowercase("Track")',
  'length(event) = 15', 'length(properties.tags) = 2', 'length(properties.missing) = 0', 'length(properties.nothing) = 0',
  'length(properties.total) = 0', 'length(properties.emoji) = 4', 'length(properties.ja) = 3', 'length(properties.nested) > 0',
  'length([1, 2, 3]) = 3', 'length("") = 0', 'length(traits.tags) = 0', 'length(userId) > 0',
  'typeof(event) = "string"', 'typeof(properties.total) = "number"', 'typeof(properties.flag) = "boolean"', 'typeof(properties.flag) = "bool"',
  'typeof(properties.nothing) = "object"', 'typeof(properties.nothing) = "null"', 'typeof(properties.missing) = "undefined"',
  'typeof(properties.tags) = "object"', 'typeof(properties.tags) = "list"', 'typeof(properties) = "object"', 'typeof(null) = "object"',
  'typeof(userId) = typeof(anonymousId)',
  // semver
  'semver(properties.version, ">=", "1.0.0")', 'semver(properties.version, "<", "1.2.4")', 'semver(context.app.version, ">", "2.9")',
  'semver(context.app.version, "<", "2.10.1")', 'semver(context.app.version, "=", "2.10")', 'semver(context.app.version, "!=", "2.10.0")',
  'semver(context.app.version, "<=", "2.10.0")', 'semver(properties.version, "~=", "1.2.3")', 'semver(properties.missing, ">=", "1.0.0")',
  'semver("1.2.3.4", "<", "2")', 'semver("1a.2", "=", "1.2")', 'semver(" 2 ", "=", "2")', 'semver(properties.total, ">", "1")',
  'semver("1.5", "=", "1.5.0")', 'semver("", "=", "0")', 'semver("-1", "<", "0")', 'semver(properties.version, ">", context.library.version)',
  // refused by the compiler (Segment's meaning is undocumented or tsub reads them otherwise)
  'type = "track" and event = "x" or userId = "u"', 'contains(lowercase(event), "order")', 'uppercase(event) = "X"', 'type =',
  'userId = oops"', '(type = "track"', 'type = "track")', '!type = "track"', 'a!="x"', 'length(event, 1) = 2',
  'properties.a\\.b = 1', 'type in "track"', '[1] in [[1]]', '(type = "track") = true', 'properties.total > 4 > 3', 'x = an',
  '', '   ', 'type = "track" and', 'properties.', 'contains(event)', 'match()', 'x = -', 'type = "a" or or type = "b"'
]

// fql-ts's lexer on texts that exercise it (beyond the conditions above).
const LEXER_ONLY = [
  'name = an', 'name = a', 'x = 1.2.3', 'x = 1.', 'x = .5', 'x = "unterminated', "x = 'single'", 'x = "a b" and y = 2', '!(a)',
  '\\escaped = 1', 'a\\ b = 1', 'x = -5', 'x = +5', 'x\t=\n1', 'x = "é😀"', "x = 'it\"s'", 'x=1', 'x =1', 'x= 1', 'x=="a"',
  'x >= 1', 'x>=1', 'x <1', 'x != null', 'x !=null', 'x = null', 'x = nullx', 'orange = 1', 'andrew = 1', 'x = 1 or', 'x#y',
  'x = "a",', 'f(a, b)', '[1, 2, 3]', 'x = 1\r', 'a.b.c.0.d', 'a.0.b', 'x = 007', 'x = -0', '_x = 1', '-x = 1', 'x = 1e5'
]

// ------------------------------------------------------------------ globs

// tsub's own glob cases (ported from Segment's Go glob), and more edges.
const GLOBS = [
  ['abc', 'abc'], ['*', 'abc'], ['*c', 'abc'], ['*b', 'abc'], ['a*', 'a'], ['a*', 'abc'], ['a*', 'ab/c'], ['a*/b', 'abc/b'],
  ['a*/b', 'a/c/b'], ['a*b*c*d*e*/f', 'axbxcxdxe/f'], ['a*b*c*d*e*/f', 'axbxcxdxexxx/f'], ['a*b*c*d*e*/f', 'axbxcxdxe/xxx/f'],
  ['a*b*c*d*e*/f', 'axbxcxdxexxx/fff'], ['a*b?c*x', 'abxbbxdbxebxczzx'], ['a*b?c*x', 'abxbbxdbxebxczzy'], ['*a*b*c*', 'abcabcabc'],
  ['ab[c]', 'abc'], ['ab[b-d]', 'abc'], ['ab[e-g]', 'abc'], ['ab[^c]', 'abc'], ['ab[^b-d]', 'abc'], ['ab[^e-g]', 'abc'],
  ['a\\*b', 'a*b'], ['a\\ b', 'a b'], ['a\\*b', 'ab'], ['a?b', 'a☺b'], ['a[^a]b', 'a☺b'], ['a???b', 'a☺b'], ['a[^a][^a][^a]b', 'a☺b'],
  ['[a-ζ]*', 'α'], ['*[a-ζ]', 'A'], ['a?b', 'a/b'], ['a*b', 'a/b'], ['[\\]a]', ']'], ['[\\-]', '-'], ['[x\\-]', 'x'], ['[x\\-]', '-'],
  ['[x\\-]', 'z'], ['[\\-x]', 'x'], ['[\\-x]', '-'], ['[\\-x]', 'a'], ['[]a]', ']'], ['[-]', '-'], ['[x-]', 'x'], ['[x-]', '-'],
  ['[x-]', 'z'], ['[-x]', 'x'], ['[-x]', '-'], ['[-x]', 'a'], ['\\', 'a'], ['[a-b-c]', 'a'], ['[', 'a'], ['[^', 'a'], ['[^bc', 'a'],
  ['a[', 'a'], ['a[', 'ab'], ['*x', 'xxx'],
  ['', ''], ['', 'a'], ['*', ''], ['?', ''], ['?', '😀'], ['??', '😀'], ['a?b', 'a😀b'], ['a??b', 'a😀b'], ['[😀]', '😀'],
  ['*😀', 'x😀'], ['a*d', 'abcd'], ['ab', 'abc'], ['a??d', 'abcd'], ['*d', 'abcd'], ['ab\\*d', 'ab*d'], ['ab[cC]d', 'abCd'],
  ['ab[a-z]d', 'abcd'], ['ab[A-Z]d', 'abcd'], ['a\\', 'a'], ['a\\', 'a\\'], ['*a', 'aaa'], ['**', 'x'], ['a**b', 'ab'],
  ['[a]', 'a'], ['[a]x', 'ax'], ['[ab', 'a'], ['x[a-c]y', 'xby'], ['x[c-a]y', 'xby'], ['[^]', 'a'], ['*.com', 'test@test.com'],
  ['Button *', 'Button Clicked'], ['*Clicked', 'Button Clicked'], ['*?', ''], ['*?', 'a'], ['?*?', 'a'], ['a*a*a', 'aaaa']
]

// ------------------------------------------------------------------ suites

const f = (title, cond, actions, extra = {}) => ({ title, enabled: true, if: cond, actions, ...extra })
const dropProps = (fields) => ({ type: 'DROP_PROPERTIES', fields })
const allowProps = (fields) => ({ type: 'ALLOW_PROPERTIES', fields })

const SUITES = [
  { name: 'drop test traffic', filters: [f('Drop test traffic', 'context.library.name = "test-suite" or match(properties.email, "*@internal.test")', [{ type: 'DROP' }])] },
  { name: 'only send track (drop the rest)', filters: [f('Only track', '!(type = "track")', [{ type: 'DROP' }])] },
  { name: 'drop all', filters: [f('Everything', 'all', [{ type: 'DROP' }])] },
  { name: 'PII: context.ip and traits.email', filters: [f('PII', 'all', [dropProps({ context: ['ip'], traits: ['email'] })])] },
  { name: 'PII on identify only', filters: [f('PII identify', 'type = "identify"', [dropProps({ traits: ['email', 'name'], context: ['ip'] })])] },
  { name: 'drop nested object keys', filters: [f('Device ids', 'all', [dropProps({ 'context.device': ['id', 'advertisingId'], 'context.library': ['version'] })])] },
  { name: 'drop in every object of a list', filters: [f('Prices', 'all', [dropProps({ 'properties.products': ['price'], 'properties.items': ['price'] })])] },
  { name: 'drop top-level keys', filters: [f('Top', 'all', [dropProps({ '': ['context', 'userId', 'missing'] })])] },
  { name: 'drop from non-objects', filters: [f('Odd', 'all', [dropProps({ 'properties.total': ['x'], 'properties.tags': ['0'], properties: ['0', 'length'], traits: ['0'], context: ['x'] })])] },
  { name: 'drop a whole object', filters: [f('No context', 'all', [dropProps({ '': ['context'], properties: ['nested', 'items'] })])] },
  { name: 'drop with dotted key names', filters: [f('Dotted', 'all', [dropProps({ properties: ['nested.deep', 'product 1'], 'properties.nested.deep': ['value'] })])] },
  { name: 'allow properties', filters: [f('Allow', 'type = "track"', [allowProps({ properties: ['total', 'currency', 'features'] })])] },
  { name: 'allow top level', filters: [f('Allow top', 'all', [allowProps({ '': ['type', 'event', 'properties', 'traits'] })])] },
  { name: 'allow nothing', filters: [f('Allow none', 'all', [allowProps({ properties: [], traits: [] })])] },
  { name: 'allow in every object of a list', filters: [f('Allow sku', 'all', [allowProps({ 'properties.products': ['sku'], 'properties.items': ['sku'] })])] },
  { name: 'allow on a list', filters: [f('Allow list', 'all', [allowProps({ 'properties.tags': ['0'], 'properties.features': ['1'] })])] },
  { name: 'allow nested', filters: [f('Allow nested', 'all', [allowProps({ 'context.library': ['name'], 'properties.nested.deep': ['value'] })])] },
  { name: 'sample 0 with a path', filters: [f('Sample none', 'type = "track"', [{ type: 'SAMPLE', percent: 0, path: 'userId' }])] },
  { name: 'sample 1 with a path', filters: [f('Sample all', 'type = "track"', [{ type: 'SAMPLE', percent: 1, path: 'userId' }])] },
  { name: 'sample 0 without a path', filters: [f('Sample none', 'all', [{ type: 'SAMPLE', percent: 0 }])] },
  { name: 'sample 1 without a path', filters: [f('Sample all', 'all', [{ type: 'SAMPLE', percent: 1 }])] },
  { name: 'disabled filter', filters: [f('Off', 'all', [{ type: 'DROP' }], { enabled: false }), f('PII', 'all', [dropProps({ context: ['ip'] })])] },
  {
    name: 'order: sample, drop, drop properties, allow properties (listed backwards)',
    filters: [
      f('Allow', 'all', [allowProps({ properties: ['total', 'email'], traits: ['email', 'name'] })]),
      f('Drop email', 'all', [dropProps({ properties: ['email'], traits: ['email'] })]),
      f('Drop tests and groups', 'properties.test = true or type = "group"', [{ type: 'DROP' }]),
      f('Sample groups out', 'type = "group"', [{ type: 'SAMPLE', percent: 0, path: 'groupId' }])
    ]
  },
  {
    name: 'a later condition sees earlier property changes',
    filters: [
      f('Drop email', 'all', [dropProps({ traits: ['email'], properties: ['email'] })]),
      f('Allow only when email', 'typeof(traits.email) = "string" or typeof(properties.email) = "string"', [allowProps({ traits: ['name'], properties: ['total'] })])
    ]
  },
  {
    name: 'one filter, several actions',
    filters: [f('Many', 'type = "track"', [allowProps({ properties: ['total', 'email', 'tags'] }), dropProps({ properties: ['email'] }), { type: 'DROP' }])]
  },
  {
    name: 'drop only what matches',
    filters: [
      f('Strip big orders', 'properties.total > 40', [dropProps({ properties: ['items', 'email'] })]),
      f('No screens', 'type = "screen" or type = "alias"', [{ type: 'DROP' }])
    ]
  },
  { name: 'a condition that throws', filters: [f('Bad in', '"x" in properties.total', [{ type: 'DROP' }]), f('PII', 'all', [dropProps({ context: ['ip'] })])] },
  { name: 'a throwing condition after a drop', filters: [f('Bad in', '"x" in properties.email', [dropProps({ properties: ['total'] })]), f('Drop tracks', 'type = "track"', [{ type: 'DROP' }])] }
]

// ------------------------------------------------------------------ recording

function compileAll(texts) {
  const run = spawnSync(PYTHON, ['-m', 'service.routing.filters'], { cwd: ROOT, input: JSON.stringify(texts), encoding: 'utf8' })
  if (run.status !== 0) throw new Error(`python -m service.routing.filters failed: ${run.stderr}`)
  return JSON.parse(run.stdout)
}

function tsubMatches(matcher, event) {
  const m = matcher.type === 'all' ? { type: 'all', ir: '' } : { type: 'fql', ir: JSON.stringify(matcher.ir) }
  return tsub.matches(event, m)
}

function transformerOf(action) {
  switch (action.type) {
    case 'DROP': return { type: 'drop' }
    case 'SAMPLE': return { type: 'sample_event', config: { sample: { percent: action.percent, path: action.path } } }
    case 'DROP_PROPERTIES': return { type: 'drop_properties', config: { drop: action.fields } }
    case 'ALLOW_PROPERTIES': return { type: 'allow_properties', config: { allow: action.fields } }
  }
  throw new Error(`unknown action ${action.type}`)
}

const ORDER = ['SAMPLE', 'DROP', 'DROP_PROPERTIES', 'ALLOW_PROPERTIES']

// analytics.js's tsubMiddleware, one rule per (filter, action) in Segment's order.
function runSuite(filters, matchers, event) {
  const rules = []
  for (const kind of ORDER) {
    filters.forEach((flt, i) => {
      if (!flt.enabled) return
      for (const action of flt.actions) if (action.type === kind) rules.push({ title: flt.title, matcher: matchers[i], transformer: transformerOf(action) })
    })
  }
  let obj = viaJson(event)
  for (const rule of rules) {
    let hit
    try {
      hit = tsubMatches(rule.matcher, obj)
    } catch (e) {
      return { output: null, stopped_by: rule.title, throws: e.message }
    }
    if (hit) {
      obj = tsub.transform(obj, [rule.transformer])
      if (obj === null) return { output: null, stopped_by: rule.title }
    }
  }
  return { output: JSON.stringify(obj), stopped_by: null }
}

function tokensOf(text) {
  const { tokens, error } = lex(text)
  if (error) return { tokens: null, error: { message: error.message, line: error.cursor.line, column: error.cursor.column } }
  return { tokens: tokens.map((t) => [t.type, t.value]), error: null }
}

function record() {
  const stated = new Map(STATED.map((s) => [s.if, s]))
  const texts = [...STATED.map((s) => s.if), ...CONDITIONS.filter((c) => !stated.has(c))]
  const suiteTexts = SUITES.flatMap((s) => s.filters.map((flt) => flt.if))
  const compiled = compileAll([...texts, ...suiteTexts])
  const byText = new Map([...texts, ...suiteTexts].map((t, i) => [t, compiled[i]]))
  const pool = EVENTS.map(viaJson)

  const conditions = texts.map((text) => {
    const answer = byText.get(text)
    const entry = { if: text }
    const want = stated.get(text)
    if (want) {
      entry.ir_expected = want.ir
      entry.source = want.source
      if (!answer.matcher || JSON.stringify(answer.matcher.ir) !== JSON.stringify(want.ir)) {
        throw new Error(`compiled form of ${JSON.stringify(text)} is ${JSON.stringify(answer)}, Segment's is ${JSON.stringify(want.ir)}`)
      }
    }
    if (answer.error) {
      entry.compile_error = `${answer.where}: ${answer.error}`
      return entry
    }
    entry.matcher = answer.matcher
    entry.results = pool.map((event) => {
      try {
        return tsubMatches(answer.matcher, JSON.parse(JSON.stringify(event)))
      } catch (e) {
        return { throws: e.message }
      }
    })
    return entry
  })

  const globs = GLOBS.map(([pattern, text]) => ({ pattern, text, match: tsub.matches({}, { type: 'fql', ir: JSON.stringify(['match', { value: text }, { value: pattern }]) }) }))

  const suites = SUITES.map((suite) => {
    const matchers = suite.filters.map((flt) => {
      const answer = byText.get(flt.if)
      if (!answer.matcher) throw new Error(`suite ${suite.name}: ${flt.if} does not compile: ${answer.error}`)
      return answer.matcher
    })
    return { name: suite.name, filters: suite.filters, cases: EVENTS.map((event) => ({ event, ...runSuite(suite.filters, matchers, event) })) }
  })

  const lexed = [...new Set([...texts, ...suiteTexts, ...LEXER_ONLY])].map((text) => ({ fql: text, ...tokensOf(text) }))
  return { tsub: require('@segment/tsub/package.json').version, fql_ts: require('@segment/fql-ts/package.json').version, events: EVENTS, conditions, globs, suites, tokens: lexed }
}

// One entry per line: small, diffable files. Events go through lib/json (raw numbers kept).
function format(data) {
  const { stringify } = require('./lib/json')
  const list = (items, fn) => '[\n' + items.map(fn).join(',\n') + '\n]'
  const oneLine = (v) => stringify(v, '')
  const suite = (s) => {
    const { cases, ...head } = s
    return ' ' + oneLine(head).slice(0, -1) + ',"cases":[\n' + cases.map((c) => '  ' + oneLine(c)).join(',\n') + '\n ]}'
  }
  return '{' + [
    `"tsub":${JSON.stringify(data.tsub)}`,
    `"fql_ts":${JSON.stringify(data.fql_ts)}`,
    '"events":' + list(data.events, (e) => ' ' + oneLine(e)),
    '"conditions":' + list(data.conditions, (c) => ' ' + oneLine(c)),
    '"globs":' + list(data.globs, (g) => ' ' + oneLine(g)),
    '"suites":' + list(data.suites, suite),
    '"tokens":' + list(data.tokens, (t) => ' ' + oneLine(t))
  ].join(',\n') + '}\n'
}

const data = record()
const file = path.join(GOLDENS, 'filters.json')
fs.writeFileSync(file, format(data))
const pairs = data.conditions.reduce((n, c) => n + (c.results ? c.results.length : 0), 0)
const cases = data.suites.reduce((n, s) => n + s.cases.length, 0)
console.log(`wrote ${path.relative(process.cwd(), file)}: ${data.conditions.length} conditions x ${EVENTS.length} events = ${pairs} decisions, ${data.globs.length} globs, ${data.suites.length} suites (${cases} events through filters), ${data.tokens.length} lexed texts`)
