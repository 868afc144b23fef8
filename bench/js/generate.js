'use strict'
// Writes the benchmark's data set as JSON lines, one SSB message {key, value, timestamp} a line.
//
// The recipe is the one of the SSB project's own flumedb benchmark, ssbc/bench-ssb
// (00-generate.js): 1,000 feeds (ed25519 keys), a first contact message, then messages from
// random feeds, 90% `contact` messages (following another feed picked with a skew) and 10%
// `random` messages, each a real signed SSB message made by ssb-validate, chained to its
// feed's previous message. bench-ssb makes 100k; this makes `n`. What differs: every
// random choice comes from a seeded PRNG (mulberry32), the keys from seeds drawn from it,
// and the timestamps from a fixed start instead of Date.now(), so the same `n` and seed
// always give the same bytes (ed25519 signatures are deterministic).
//
// usage: node generate.js N OUT.jsonl [SEED]
// prints a JSON summary on stdout: {n, bytes, mean_bytes, types, seconds}

var fs = require('fs')
var V = require('ssb-validate')
var ssbKeys = require('ssb-keys')

var N = parseInt(process.argv[2], 10)
var out = process.argv[3]
var SEED = process.argv[4] === undefined ? 0 : parseInt(process.argv[4], 10)
if (!(N >= 1) || !out) {
  console.error('usage: node generate.js N OUT.jsonl [SEED]')
  process.exit(2)
}

// 2019-04-01T00:00:00Z, about when bench-ssb was written.
var START = 1554076800000

function mulberry32 (a) {
  return function () {
    a |= 0
    a = (a + 0x6d2b79f5) | 0
    var t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

var random = mulberry32(SEED)
var t0 = Date.now()

var peers = []
for (var i = 0; i < 1000; i++) {
  var seed = Buffer.alloc(32)
  for (var b = 0; b < 32; b++) seed[b] = Math.floor(random() * 256)
  peers.push(ssbKeys.generate('ed25519', seed))
}

// per feed: {id: key of its latest message, sequence, timestamp, queue: []}, as ssb-validate's
// create() reads a feed's state
var feeds = {}

var fd = fs.openSync(out, 'w')
var chunks = []
var chunkBytes = 0
var bytes = 0
var count = 0
var types = {}

function flush () {
  if (chunks.length) fs.writeSync(fd, chunks.join(''))
  chunks = []
  chunkBytes = 0
}

function add (peer, content, j) {
  var timestamp = START + j
  var msg = V.create(feeds[peer.id] || null, peer, null, content, timestamp)
  var key = V.id(msg)
  feeds[peer.id] = { id: key, sequence: msg.sequence, timestamp: msg.timestamp, queue: [] }
  // ssb-db stores {key, value, timestamp (received)}; receiving is instant here
  var line = JSON.stringify({ key: key, value: msg, timestamp: timestamp }) + '\n'
  bytes += Buffer.byteLength(line) - 1
  count++
  types[content.type] = (types[content.type] || 0) + 1
  chunks.push(line)
  chunkBytes += line.length
  if (chunkBytes > 1 << 20) flush()
}

function contact (a, b, j) {
  add(a, { type: 'contact', contact: b.id, following: true }, j)
}

contact(peers[0], peers[1], 0)

for (var j = 1; j < N; j++) {
  var r = random()
  var peer = peers[~~(peers.length * r)]
  if (random() < 0.1) {
    add(peer, { type: 'random', random: r }, j)
  } else {
    var other = peers[~~(random() * (~~(r * 3) + 1) * (peers.length / 3))]
    contact(peer, other, j)
  }
}
flush()
fs.closeSync(fd)

console.log(JSON.stringify({
  n: count,
  seed: SEED,
  bytes: bytes,
  mean_bytes: bytes / count,
  types: types,
  seconds: (Date.now() - t0) / 1000
}))
