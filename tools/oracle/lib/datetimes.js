'use strict'
// Strings to test against Segment's `date-time` format. Order is fixed;
// duplicates are removed keeping the first occurrence.

const BASE_DATE = '2024-03-15'
const BASE_TIME = '12:34:56'

function build() {
  const out = []
  const add = (...vs) => out.push(...vs)

  // Plain valid forms.
  add(
    '2024-03-15T12:34:56Z',
    '2024-03-15T12:34:56.789Z',
    '2024-03-15T12:34:56+00:00',
    '2024-03-15T12:34:56-00:00',
    '2024-03-15t12:34:56z',
    '2024-03-15T12:34:56z',
    '2024-03-15t12:34:56Z',
    '2024-03-15 12:34:56Z',
    '1970-01-01T00:00:00Z',
    '2038-01-19T03:14:07Z',
    '2024-12-31T23:59:59.999999Z'
  )

  // Leap days.
  for (const y of ['2024', '2023', '1900', '2000', '2100', '2400', '0000', '0004', '1600', '1800', '9996', '9999']) {
    add(`${y}-02-29T00:00:00Z`)
  }
  add('2024-02-30T00:00:00Z', '2024-02-28T00:00:00Z', '2023-02-28T23:59:59Z')

  // Month and day bounds.
  for (const md of ['00-10', '13-10', '01-00', '01-31', '01-32', '03-31', '04-30', '04-31', '06-30', '06-31',
    '09-31', '11-30', '11-31', '12-31', '12-32', '99-99', '1-15', '03-5', '10-10']) {
    add(`2024-${md}T00:00:00Z`)
  }

  // Hour, minute, second bounds; leap seconds with various offsets.
  for (const t of ['00:00:00', '23:59:59', '24:00:00', '24:00:01', '23:60:00', '23:59:60', '23:59:61', '12:59:60',
    '00:00:60', '22:59:60', '99:99:99', '1:02:03', '01:2:03', '01:02:3', '12:34', '12', '123456']) {
    add(`${BASE_DATE}T${t}Z`)
  }
  for (const off of ['Z', '+00:00', '-00:00', '+01:00', '-01:00', '+23:59', '-12:00', '+14:00']) {
    add(`2016-12-31T23:59:60${off}`)
  }
  add('2016-12-31T23:59:60', '2016-12-31T23:59:60.5Z', '2016-06-30T23:59:60.999+02:00')

  // Offsets.
  for (const off of ['+00:00', '-00:00', '+01:00', '-05:30', '+05:45', '+23:59', '-23:59', '+24:00', '+99:99',
    '+0100', '-0530', '+01', '-01', '+00', '+1:00', '+01:0', '+001:00', '+01:00:00', '+01:00Z', 'Z+01:00',
    '+0', '+000', '01:00', '−01:00', '+01:60', 'UTC', 'GMT', ' UTC', 'EST', '+01:00[Europe/Paris]', 'ZZ', '']) {
    add(`${BASE_DATE}T${BASE_TIME}${off}`)
  }

  // Fractional seconds: 1..12 digits, more, and odd spellings.
  for (let n = 1; n <= 12; n++) add(`${BASE_DATE}T${BASE_TIME}.${'123456789012'.slice(0, n)}Z`)
  add(
    `${BASE_DATE}T${BASE_TIME}.${'9'.repeat(30)}Z`,
    `${BASE_DATE}T${BASE_TIME}.000+02:00`,
    `${BASE_DATE}T${BASE_TIME}.5`,
    `${BASE_DATE}T${BASE_TIME},5Z`,
    `${BASE_DATE}T${BASE_TIME},123+01:00`,
    `${BASE_DATE}T${BASE_TIME}.Z`,
    `${BASE_DATE}T${BASE_TIME}..5Z`,
    `${BASE_DATE}T${BASE_TIME}.5.5Z`,
    `${BASE_DATE}T${BASE_TIME}.-5Z`,
    `${BASE_DATE}T${BASE_TIME}.aZ`,
    `${BASE_DATE}T12:34.5Z`,
    `${BASE_DATE}T12:34:56.1e3Z`
  )

  // Separators.
  for (const sep of ['T', 't', ' ', '\t', '\n', '\r', '\u00a0', '\u2028', '\u2029', '\u3000', '\ufeff', '\u2003',
    '\u000b', '\u000c', '\u0085', '\u180e', '_', '/', '', 'TT', 'T ', '  ', 'Τ', 'Ｔ']) {
    add(`${BASE_DATE}${sep}${BASE_TIME}Z`)
  }

  // Years.
  for (const y of ['0000', '0001', '0999', '1000', '9999', '10000', '99999', '999', '24', '-2024', '+2024', '+002024', '-0001']) {
    add(`${y}-06-15T12:00:00Z`)
  }

  // Missing parts.
  add(
    '2024-03-15',
    '2024-03',
    '2024',
    '12:34:56Z',
    '12:34:56',
    'T12:34:56Z',
    '2024-03-15T',
    '2024-03-15TZ',
    '2024-03-15T12:34:56',
    '2024-03-15 12:34:56',
    '2024-03-15T12:34:56.789',
    '2024-03-15T12:34Z',
    '2024-03-15T12Z',
    '2024-03-15T12:34:56+'
  )

  // Whitespace.
  add(
    ` ${BASE_DATE}T${BASE_TIME}Z`,
    `${BASE_DATE}T${BASE_TIME}Z `,
    `${BASE_DATE}T${BASE_TIME}Z\n`,
    `\t${BASE_DATE}T${BASE_TIME}Z`,
    `${BASE_DATE}T${BASE_TIME} Z`,
    `${BASE_DATE}T${BASE_TIME} +01:00`,
    `${BASE_DATE} T${BASE_TIME}Z`,
    `${BASE_DATE}T${BASE_TIME}Z\u0000`,
    `\ufeff${BASE_DATE}T${BASE_TIME}Z`,
    `${BASE_DATE}T${BASE_TIME}Z\u200b`,
    ' ',
    '\t',
    ''
  )

  // Unicode digits and look-alikes.
  add(
    '２０２４-０３-１５T１２:３４:５６Z',
    '٢٠٢٤-٠٣-١٥T١٢:٣٤:٥٦Z',
    '۲۰۲۴-۰۳-۱۵T۱۲:۳۴:۵۶Z',
    '२०२४-०३-१५T१२:३४:५६Z',
    '2024‐03‐15T12:34:56Z',
    '2024–03–15T12:34:56Z',
    '2024-03-15T12∶34∶56Z',
    '2024-03-15T12:34:56Ｚ',
    '2024-03-15T12:34:56\u0301Z',
    '𝟐𝟎𝟐𝟒-03-15T12:34:56Z'
  )

  // Other date spellings.
  add(
    '2024-W11-5',
    '2024-W11-5T12:00:00Z',
    '2024-W11T12:00:00Z',
    '2024W115T120000Z',
    '2024-075',
    '2024-075T12:00:00Z',
    '20240315T123456Z',
    '20240315T12:34:56Z',
    '2024-03-15T123456Z',
    '2024/03/15T12:34:56Z',
    '2024.03.15T12:34:56Z',
    '15-03-2024T12:34:56Z',
    '03/15/2024 12:34:56',
    'Fri, 15 Mar 2024 12:34:56 GMT',
    'Fri Mar 15 2024 12:34:56 GMT+0000 (Coordinated Universal Time)',
    '2024-03-15T12:34:56.789Z/2024-03-16T12:34:56Z',
    'R5/2024-03-15T12:34:56Z/P1D',
    'P1D',
    '2024-03-15T12:34:56Z+P1D',
    '2024-03-15T12:34:56ZT',
    '2024-03-15T12:34:56Zt',
    'now',
    'today',
    'Infinity',
    'NaN',
    'null',
    'undefined',
    'true',
    '0',
    '1710505496',
    '1710505496000',
    '1710505496.789',
    '-1',
    '2024-03-15T12:34:56.789Z\u2028',
    '2024-03-15T12:34:56.789Z2024-03-15T12:34:56.789Z',
    '0000-00-00T00:00:00Z',
    '0000-01-01T00:00:00Z',
    '9999-12-31T23:59:59.999999999Z',
    '9999-12-31T23:59:60Z',
    '9999-12-31T23:59:60+14:00',
    '1969-12-31T23:59:59.999-00:01'
  )

  // Cross product of a few dates, times and offsets, mostly valid.
  const dates = ['2000-01-01', '2024-02-29', '2023-02-29', '1999-12-31']
  const times = ['00:00:00', '23:59:59.5', '23:59:60', '24:00:00']
  const offs = ['Z', '+05:30', '-0800', '+24']
  for (const d of dates) for (const t of times) for (const o of offs) add(`${d}T${t}${o}`)

  const seen = new Set()
  return out.filter((v) => (seen.has(v) ? false : (seen.add(v), true)))
}

const DATETIMES = build()

// A sample for per-action timestamp cases: every 8th value plus some anchors.
const ANCHORS = [
  '2024-02-29T00:00:00Z', '2023-02-29T00:00:00Z', '1900-02-29T00:00:00Z', '2000-02-29T00:00:00Z',
  '2016-12-31T23:59:60Z', '2016-12-31T23:59:60+01:00', '2024-03-15T24:00:00Z', '2024-03-15T23:60:00Z',
  '2024-03-15t12:34:56z', '2024-03-15 12:34:56Z', '2024-03-15T12:34:56', '2024-03-15T12:34:56+24:00',
  '2024-03-15T12:34:56+0100', '2024-03-15T12:34:56+01', '2024-03-15T12:34:56.123456789012Z',
  '2024-03-15T12:34:56,5Z', '0000-06-15T12:00:00Z', '9999-06-15T12:00:00Z', '10000-06-15T12:00:00Z',
  '2024-03-15', '12:34:56Z', ' 2024-03-15T12:34:56Z', '2024-03-15T12:34:56Z ', '２０２４-０３-１５T１２:３４:５６Z',
  '2024-W11-5T12:00:00Z', '1710505496', ' ', ''
]
function timestampSample() {
  const s = new Set(ANCHORS)
  DATETIMES.forEach((v, i) => { if (i % 8 === 0) s.add(v) })
  return [...s]
}

module.exports = { DATETIMES, timestampSample }
