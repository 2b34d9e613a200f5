// Sends events with Segment's own Node library, as a service instrumented with it would.
// Usage: node send.mjs <host> <writeKey> <events.json>   (events: [{"call": "track", ...fields}, ...])
// Prints one JSON line: {"ok": n, "errors": [...]} once every event is flushed (or failed).
import { readFileSync } from 'node:fs'
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, file] = process.argv.slice(2)
const events = JSON.parse(readFileSync(file, 'utf8'))
const analytics = new Analytics({ writeKey, host, maxEventsInBatch: 50, flushInterval: 200, maxRetries: 5 })
const errors = []
analytics.on('error', (err) => errors.push(String(err && (err.message || err.reason || err))))
let ok = 0
await Promise.all(events.map(({ call, ...fields }) => new Promise((resolve) => {
  analytics[call](fields, (err) => { if (err) errors.push(String(err.message || err)); else ok += 1; resolve() })
})))
await analytics.closeAndFlush({ timeout: 20000 })
console.log(JSON.stringify({ ok, errors }))
