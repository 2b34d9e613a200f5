#!/usr/bin/env node
'use strict'
// The Segment yardstick: Segment's own runtime (@segment/actions-core running
// the Kameleoon destination from @segment/action-destinations, installed in
// tools/oracle/node_modules by tools/oracle/install.sh) delivering the same
// events to the same local stand-in as the service.
//
// The destination hard-codes https://integrations.kameleoon.com/segmentio.
// Before cross-fetch (and so actions-core's request client) captures
// node-fetch, node-fetch's export is replaced by a function that rewrites that
// URL to the stand-in and then calls the real node-fetch: mapping, validation,
// request building and the HTTP exchange are all real; only the host changes.
// A keep-alive agent with 100 sockets matches the service's default pool.
//
// Each event runs as destination.onEvent(event, {...settings, subscriptions:
// presets}), Segment's path for a raw event through the four default presets.
//
// Protocol: one JSON command per line on stdin, one JSON answer per line on
// stdout. The first line written is {"ready": true, ...} or {"ready": false,
// "reason": ...} (then the process exits 0: the yardstick is unavailable).
// Commands: load {events_file, standin_url}, throughput {concurrency,
// warmup_s, duration_s, max_events, tag, pids}, latency {count, warmup,
// time_cap_s, tag}. Every loop is bounded by a count and by wall-clock time.

const fs = require('fs')
const http = require('http')
const path = require('path')
const readline = require('readline')

const ORACLE_DIR = path.resolve(__dirname, '..', 'tools', 'oracle')
const NODE_MODULES = path.join(ORACLE_DIR, 'node_modules')
const KAMELEOON_URL = 'https://integrations.kameleoon.com/segmentio'

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function unavailable(reason) {
  say({ ready: false, reason })
  process.exit(0)
}

let standinUrl = null
let forwarded = 0
let foreign = 0
let core
let definition
const versions = {}

try {
  for (const pkg of ['@segment/actions-core', '@segment/action-destinations']) {
    const pj = path.join(NODE_MODULES, pkg, 'package.json')
    if (!fs.existsSync(pj)) unavailable(`${pkg} is not installed in ${NODE_MODULES} (run tools/oracle/install.sh)`)
    versions[pkg] = JSON.parse(fs.readFileSync(pj, 'utf8')).version
  }
  const nodeFetchPath = require.resolve('node-fetch', { paths: [ORACLE_DIR] })
  const crossFetchPath = require.resolve('cross-fetch', { paths: [ORACLE_DIR] })
  if (require.resolve('node-fetch', { paths: [path.dirname(crossFetchPath)] }) !== nodeFetchPath) {
    unavailable('cross-fetch resolves another node-fetch; cannot redirect its requests')
  }
  const nodeFetch = require(nodeFetchPath)
  const realFetch = nodeFetch.default || nodeFetch
  const agent = new http.Agent({ keepAlive: true, maxSockets: 100 })
  // Redirect Kameleoon's endpoint to the stand-in; everything else about the request is kept.
  nodeFetch.default = function redirectingFetch(input, init) {
    const req = input instanceof nodeFetch.Request ? input : new nodeFetch.Request(input, init)
    if (!standinUrl || !req.url.startsWith(KAMELEOON_URL)) {
      foreign++
      return Promise.reject(new Error(`benchmark: refusing to send to ${req.url}`))
    }
    forwarded++
    return realFetch(standinUrl + req.url.slice(KAMELEOON_URL.length), {
      method: req.method,
      headers: req.headers,
      body: req.body,
      signal: req.signal,
      agent
    })
  }
  core = require(require.resolve('@segment/actions-core', { paths: [ORACLE_DIR] }))
  definition = require(path.join(NODE_MODULES, '@segment/action-destinations/dist/destinations/kameleoon')).default
  if (!definition || !Array.isArray(definition.presets)) unavailable('the Kameleoon destination has no presets')
} catch (err) {
  unavailable(`cannot load Segment's runtime: ${err && err.message}`)
}

const destination = new core.Destination(definition)
let events = []
let settings = null

function readCpu(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100 // USER_HZ is 100 on Linux
  } catch (err) {
    return null
  }
}

function snapshot(state, pids) {
  const cpu = {}
  for (const [name, pid] of Object.entries(pids || {})) cpu[name] = readCpu(pid)
  const own = process.cpuUsage()
  return { t: performance.now() / 1000, ok: state.ok, failed: state.failed, own: (own.user + own.system) / 1e6, cpu }
}

function windowOf(a, b) {
  const wall = b.t - a.t
  const cores = { segment: wall > 0 ? +((b.own - a.own) / wall).toFixed(3) : null }
  for (const name of Object.keys(a.cpu)) {
    cores[name] = wall > 0 && a.cpu[name] !== null && b.cpu[name] !== null ? +((b.cpu[name] - a.cpu[name]) / wall).toFixed(3) : null
  }
  return {
    window_s: +wall.toFixed(3),
    ok_events: b.ok - a.ok,
    failed_events: b.failed - a.failed,
    events_per_s: wall > 0 ? +((b.ok - a.ok) / wall).toFixed(1) : null,
    cpu_cores: cores
  }
}

function eventFor(n, tag) {
  const base = events[n % events.length]
  return { ...base, messageId: `${base.messageId}-${tag}-${n}` }
}

// One event through Segment's runtime: true when an action executed.
async function deliver(n, tag, errors) {
  try {
    const results = await destination.onEvent(eventFor(n, tag), settings)
    if (results.some((r) => r && r.output === 'Action Executed')) return true
    const why = results.map((r) => r && r.output).join('; ')
    errors[why] = (errors[why] || 0) + 1
  } catch (err) {
    const why = (err && (err.code || err.name)) || 'Error'
    errors[why] = (errors[why] || 0) + 1
  }
  return false
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function summary(values) {
  values.sort((a, b) => a - b)
  const q = (p) => (values.length ? +(values[Math.max(0, Math.min(values.length - 1, Math.round(p * values.length + 0.5) - 1))] * 1000).toFixed(4) : null)
  const mean = values.length ? +((values.reduce((s, v) => s + v, 0) / values.length) * 1000).toFixed(4) : null
  return { n: values.length, p50_ms: q(0.5), p90_ms: q(0.9), p99_ms: q(0.99), mean_ms: mean }
}

async function throughput(cmd) {
  const concurrency = cmd.concurrency
  const maxEvents = cmd.max_events || 1e7
  const tag = cmd.tag || 's'
  const state = { ok: 0, failed: 0 }
  const errors = {}
  const latencies = []
  let record = false
  let stop = false
  let issued = 0
  const worker = async () => {
    while (!stop && issued < maxEvents) {
      const n = issued++
      const t0 = performance.now()
      if (await deliver(n, tag, errors)) state.ok++
      else state.failed++
      if (record) latencies.push((performance.now() - t0) / 1000)
    }
  }
  const workers = Promise.all(Array.from({ length: concurrency }, worker))
  let finished = false
  workers.then(() => { finished = true })
  const start = snapshot(state, cmd.pids)
  await Promise.race([workers, sleep(cmd.warmup_s * 1000)])
  let first
  let last
  if (finished) {
    first = start
    last = snapshot(state, cmd.pids)
  } else {
    first = snapshot(state, cmd.pids)
    record = true
    await Promise.race([workers, sleep(cmd.duration_s * 1000)])
    last = snapshot(state, cmd.pids)
    record = false
  }
  stop = true
  await Promise.race([workers, sleep(35000)])
  return {
    available: true,
    concurrency,
    ...windowOf(first, last),
    total_ok_events: state.ok,
    total_failed_events: state.failed,
    errors,
    latency: summary(latencies),
    forwarded_requests: forwarded,
    refused_requests: foreign
  }
}

async function latency(cmd) {
  const count = cmd.count || 1000
  const warm = cmd.warmup || 100
  const deadline = performance.now() + (cmd.time_cap_s || 30) * 1000
  const tag = cmd.tag || 'l'
  const values = []
  const errors = {}
  for (let n = 0; n < warm + count && performance.now() < deadline; n++) {
    const t0 = performance.now()
    const ok = await deliver(n, tag, errors)
    if (ok && n >= warm) values.push((performance.now() - t0) / 1000)
  }
  return { available: true, ...summary(values), errors }
}

async function handle(cmd) {
  if (cmd.op === 'load') {
    events = JSON.parse(fs.readFileSync(cmd.events_file, 'utf8'))
    standinUrl = cmd.standin_url
    settings = { ...cmd.settings, subscriptions: definition.presets }
    return { events: events.length }
  }
  if (cmd.op === 'throughput') return throughput(cmd)
  if (cmd.op === 'latency') return latency(cmd)
  throw new Error(`unknown op ${cmd.op}`)
}

async function main() {
  say({ ready: true, versions, node: process.version })
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
  for await (const line of lines) {
    if (!line.trim()) continue
    let answer
    try {
      answer = await handle(JSON.parse(line))
    } catch (err) {
      answer = { error: String(err && err.stack ? err.stack : err) }
    }
    say(answer)
  }
  process.exit(0)
}

main()
