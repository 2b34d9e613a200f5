'use strict'
// Loads Segment's runtime (actions-core + the Kameleoon destination) with an
// HTTP interceptor installed at the lowest fetch layer (node-fetch, under
// cross-fetch, under actions-core's request client). Nothing reaches the
// network: every request the runtime would send is recorded and answered
// with an empty 200.
//
// Anything that goes wrong while loading exits the process non-zero.

const path = require('path')
const fs = require('fs')
const { stringify } = require('./json')

const ORACLE_DIR = path.resolve(__dirname, '..')
const NODE_MODULES = path.join(ORACLE_DIR, 'node_modules')
const EXPECTED = {
  '@segment/actions-core': '3.170.0',
  '@segment/action-destinations': '3.497.0'
}

function die(message, err) {
  console.error(`oracle: ${message}`)
  if (err) console.error(err && err.stack ? err.stack : err)
  process.exit(1)
}

function requireFromOracle(id) {
  return require(require.resolve(id, { paths: [ORACLE_DIR] }))
}

let nodeFetch
let core
let destinationDefinition
try {
  for (const [pkg, version] of Object.entries(EXPECTED)) {
    const pj = path.join(NODE_MODULES, pkg, 'package.json')
    if (!fs.existsSync(pj)) die(`${pkg} is not installed in ${NODE_MODULES}; run tools/oracle/install.sh`)
    const got = JSON.parse(fs.readFileSync(pj, 'utf8')).version
    if (got !== version) die(`${pkg} is ${got}, expected ${version}; run tools/oracle/install.sh`)
  }
  // The interceptor must be in place before cross-fetch captures node-fetch.
  const nodeFetchPath = require.resolve('node-fetch', { paths: [ORACLE_DIR] })
  const crossFetchPath = require.resolve('cross-fetch', { paths: [ORACLE_DIR] })
  const nodeFetchFromCross = require.resolve('node-fetch', { paths: [path.dirname(crossFetchPath)] })
  if (nodeFetchPath !== nodeFetchFromCross) die(`cross-fetch uses another node-fetch (${nodeFetchFromCross})`)
  if (require.cache[crossFetchPath]) die('cross-fetch was loaded before the interceptor')
  nodeFetch = require(nodeFetchPath)
  nodeFetch.default = interceptedFetch
  core = requireFromOracle('@segment/actions-core')
  if (requireFromOracle('cross-fetch') !== require(crossFetchPath)) die('cross-fetch resolved twice')
  destinationDefinition = require(path.join(NODE_MODULES, '@segment/action-destinations/dist/destinations/kameleoon')).default
  if (!destinationDefinition || !destinationDefinition.actions) die('Kameleoon destination has no actions')
} catch (err) {
  die('cannot load Segment runtime', err)
}

// ---------------------------------------------------------------------------
// HTTP capture

let sink = null
let interceptorCalls = 0

async function interceptedFetch(input, init) {
  interceptorCalls++
  const req = new nodeFetch.Request(input, init)
  const headers = {}
  for (const name of ['authorization', 'x-segment-settings', 'content-type']) {
    const v = req.headers.get(name)
    if (v !== null) headers[name] = v
  }
  const record = { method: req.method, url: req.url, headers, body: await req.text() }
  if (!sink) die(`request outside a recording window: ${req.method} ${req.url}`)
  sink.push(record)
  return new nodeFetch.Response('', { status: 200, statusText: 'OK', headers: { 'content-type': 'text/plain' } })
}

// Runs fn() and returns {value | thrown, requests}.
async function capture(fn) {
  if (sink) die('nested capture')
  sink = []
  const out = {}
  try {
    out.value = await fn()
  } catch (err) {
    out.thrown = err
  }
  out.requests = sink
  sink = null
  return out
}

// ---------------------------------------------------------------------------
// Errors

function decodePointerSegment(s) {
  return s.replace(/~1/g, '/').replace(/~0/g, '~')
}

// A schema rejection: the top-level payload fields the ajv errors blame.
// ajv-human-errors keeps each error's instancePath as `pointer`; a `required`
// error points at the root and names the field in its message.
function errorRecord(err) {
  if (err && err.name === 'AggregateAjvError' && Array.isArray(err.errors)) {
    const fields = new Set()
    for (const e of err.errors) {
      if (e.pointer) {
        fields.add(decodePointerSegment(e.pointer.split('/')[1]))
      } else {
        const m = /is missing the required field '(.*)'\.$/.exec(e.message)
        if (!m) die(`cannot attribute ajv error: ${e.message}`)
        fields.add(m[1])
      }
    }
    return { fields: [...fields].sort(), message: err.message }
  }
  // Not a schema rejection (mapping directive error, etc.). An AggregateError
  // (mapping validation) carries stack traces in its message: keep the inner
  // messages only, one per line.
  if (err && err.name === 'AggregateError' && typeof err[Symbol.iterator] === 'function') {
    return { fields: [], message: [...err].map((e) => e.message).join('\n'), kind: 'AggregateError' }
  }
  return { fields: [], message: String(err && err.message), kind: (err && err.name) || 'Error' }
}

// ---------------------------------------------------------------------------
// Determinism helpers

// mulberry32
function rng(seed) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const r = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    bool: (p = 0.5) => next() < p,
    pick: (arr) => arr[Math.floor(next() * arr.length)]
  }
  return r
}

function writeJson(file, data) {
  const text = stringify(data, 1) + '\n'
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, text)
  console.log(`wrote ${path.relative(process.cwd(), file)} (${Buffer.byteLength(text)} bytes)`)
}

const GOLDENS = path.resolve(ORACLE_DIR, '..', '..', 'tests', 'goldens')

const API_KEY = Buffer.from(JSON.stringify({ id: 'demo-id', secret: 'demo-secret' })).toString('base64')
const SETTINGS = { apiKey: API_KEY, sitecode: '0123456789' }

function newDestination() {
  return new core.Destination(destinationDefinition)
}

module.exports = {
  core,
  destinationDefinition,
  newDestination,
  capture,
  errorRecord,
  rng,
  writeJson,
  die,
  GOLDENS,
  SETTINGS,
  interceptorCalls: () => interceptorCalls
}
