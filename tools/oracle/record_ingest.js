#!/usr/bin/env node
// Records tests/goldens/ingest.json: what Segment's own code decides before a destination sees
// an event, for the two rules the service takes from it.
//
//   - integrations: @segment/analytics-core's event queue (CoreEventQueue.availableExtensions,
//     as its flush calls it with `event.integrations ?? {}`), with one destination plugin
//     registered as Kameleoon (Actions) registers: name "Actions Kameleoon", alternative name
//     "Kameleoon (Actions)". Each case: the event's `integrations` (absent when the key is
//     missing) and whether the destination is among those the queue delivers to.
//   - consent: @segment/analytics-consent-tools' shouldEnableIntegrationHelper, with the
//     destination mapped to `categories` (integrationCategoryMappings) and the event's
//     `context.consent.categoryPreferences` as the user's categories. Each case: the verdict,
//     or what the helper throws (it reads properties of whatever it is given).
// Deterministic: no clock, no randomness; re-recording gives the same file.
'use strict'

const fs = require('fs')
const path = require('path')
const { CoreEventQueue } = require('@segment/analytics-core')
const { shouldEnableIntegrationHelper } = require('@segment/analytics-consent-tools/dist/cjs/domain/blocking-helpers')
const { stringify, raw } = require('./lib/json')

const GOLDENS = path.join(__dirname, '..', '..', 'tests', 'goldens')
const NAME = 'Actions Kameleoon'
const ALTERNATIVE = 'Kameleoon (Actions)'
const ABSENT = Symbol('absent') // the key is missing: the case has no such key either

// ------------------------------------------------------------- integrations

const VALUES = [true, false, null, 0, 1, -1, 0.5, raw('-0.0'), '', 'false', 'true', '0', 'no', {}, { x: 1 }, [], [0], [false]]

function integrationsCases() {
  const cases = []
  const add = (name, integrations) => cases.push({ name, integrations })
  add('absent', ABSENT)
  for (const v of [null, '', 'Actions Kameleoon', 0, 1, true, false, [], ['Actions Kameleoon'], [false], {}]) add(`integrations ${stringify(v, 0)}`, v)
  for (const all of [ABSENT, ...VALUES]) {
    const allPart = all === ABSENT ? {} : { All: all }
    add(`All ${all === ABSENT ? 'absent' : stringify(all, 0)}`, allPart)
    for (const v of VALUES) {
      add(`${NAME} ${stringify(v, 0)}, All ${all === ABSENT ? 'absent' : stringify(all, 0)}`, { ...allPart, [NAME]: v })
      add(`${ALTERNATIVE} ${stringify(v, 0)}, All ${all === ABSENT ? 'absent' : stringify(all, 0)}`, { ...allPart, [ALTERNATIVE]: v })
    }
  }
  // Both names: the first that is neither absent nor null decides.
  for (const first of [true, false, null, 0, 'x', {}]) {
    for (const second of [true, false, null, 0, 'x', {}]) {
      for (const all of [ABSENT, false]) {
        const allPart = all === ABSENT ? {} : { All: all }
        add(`both: ${stringify(first, 0)} then ${stringify(second, 0)}, All ${all === ABSENT ? 'absent' : 'false'}`, { ...allPart, [NAME]: first, [ALTERNATIVE]: second })
        add(`both, alternative first: ${stringify(second, 0)} then ${stringify(first, 0)}, All ${all === ABSENT ? 'absent' : 'false'}`, { ...allPart, [ALTERNATIVE]: second, [NAME]: first })
      }
    }
  }
  // Names that do not apply (case, the classic destination, Segment.io) and odd keys.
  for (const other of ['actions kameleoon', 'kameleoon (actions)', 'Kameleoon', 'Segment.io', 'all', 'ALL', 'Actions Kameleoon ', 'Kameleoon (Actions) ']) {
    add(`${other} false`, { [other]: false })
    add(`${other} false, All true`, { [other]: false, All: true })
    add(`${other} true, All false`, { [other]: true, All: false })
  }
  add('All false, a list with the name', raw('{"All": false, "Actions Kameleoon": ["x"]}'))
  add('duplicate key: the last wins in JSON.parse', raw('{"Actions Kameleoon": true, "Actions Kameleoon": false}'))
  add('duplicate key: the last wins, the other way', raw('{"Actions Kameleoon": false, "Actions Kameleoon": true}'))
  add('a __proto__ key', raw('{"__proto__": {"Actions Kameleoon": false}}'))
  add('constructor and toString keys', { constructor: false, toString: false })
  return cases.map(({ name, integrations }) => {
    const event = integrations === ABSENT ? {} : { integrations: JSON.parse(stringify(integrations)) }
    const queue = Object.create(CoreEventQueue.prototype)
    queue.plugins = [{ name: NAME, alternativeNames: [ALTERNATIVE], type: 'destination' }]
    const { destinations } = queue.availableExtensions(event.integrations ?? {})
    return { name, ...(integrations === ABSENT ? {} : { integrations }), delivered: destinations.length === 1 }
  })
}

// ------------------------------------------------------------------ consent

const PREFERENCES = [
  ABSENT, null, {}, [], '', 'C0002', 0, 1, true, false, ['C0002'], [true],
  { C0002: true }, { C0002: false }, { C0002: null }, { C0002: 0 }, { C0002: 1 }, { C0002: '' }, { C0002: 'false' },
  { C0002: 'true' }, { C0002: {} }, { C0002: [] }, { C0002: [false] }, { c0002: true }, { 'C0002 ': true },
  { C0002: true, C0004: false }, { C0002: true, C0004: true }, { C0002: false, C0004: true }, { C0002: true, Other: false },
  { C0004: true }, { toString: false }, { 0: true }, { length: 0 }
]
const CATEGORIES = [[], ['C0002'], ['C0002', 'C0004'], ['C0004', 'C0002'], ['toString'], ['constructor'], ['0'], ['length'], ['C0002', 'C0002']]

function consentCases() {
  const cases = []
  for (const categories of CATEGORIES) {
    for (const preferences of PREFERENCES) {
      const name = `${stringify(categories, 0)} with ${preferences === ABSENT ? 'no categoryPreferences' : stringify(preferences, 0)}`
      const user = preferences === ABSENT ? undefined : JSON.parse(stringify(preferences))
      let result
      try {
        const enabled = shouldEnableIntegrationHelper(NAME, { integrations: {} }, user, { integrationCategoryMappings: { [NAME]: categories } })
        result = { delivered: Boolean(enabled) }
      } catch (error) {
        result = { throws: `${error.constructor.name}: ${error.message}` }
      }
      cases.push({ name, categories, ...(preferences === ABSENT ? {} : { categoryPreferences: preferences }), ...result })
    }
  }
  return cases
}

const out = {
  about: 'Recorded by tools/oracle/record_ingest.js from @segment/analytics-core and @segment/analytics-consent-tools; never edit by hand.',
  versions: {
    '@segment/analytics-core': require('@segment/analytics-core/package.json').version,
    '@segment/analytics-consent-tools': require('@segment/analytics-consent-tools/package.json').version
  },
  destination: { name: NAME, alternativeNames: [ALTERNATIVE] },
  integrations: integrationsCases(),
  consent: consentCases()
}
fs.writeFileSync(path.join(GOLDENS, 'ingest.json'), stringify(out) + '\n')
console.log(`ingest.json: ${out.integrations.length} integrations cases, ${out.consent.length} consent cases`)
