'use strict'
// The JavaScript flumedb side of `python -m bench.vs_flumedb`.
//
//   node flumedb_bench.js append DATA.jsonl DIR
//     appends every message of DATA.jsonl to a flumedb log (flumelog-offset, DIR/log.offset,
//     json codec, 16 KB blocks, as ssb-db opens it), 1,000 per db.append, no views mounted.
//   node flumedb_bench.js catchup DIR AUTHOR...
//     opens that log, mounts the three benchmark views (none built yet) and times them
//     catching up: from opening the log until every view's `since` equals the log's. Then
//     answers the checks: the Reduce's count by type, and for each AUTHOR the keys of their
//     latest 10 messages by timestamp, from the Query.
//
// Each prints one JSON object on stdout.

var fs = require('fs')
var path = require('path')
var readline = require('readline')
var Flume = require('flumedb')
var OffsetLog = require('flumelog-offset')
var codec = require('flumecodec')
var Reduce = require('flumeview-reduce')
var Level = require('flumeview-level')
var Query = require('flumeview-query')
var pull = require('pull-stream')

var VIEWS = ['by_type', 'by_author', 'query']

function openLog (dir) {
  return OffsetLog(path.join(dir, 'log.offset'), { blockSize: 16 * 1024, codec: codec.json })
}

function seconds (t0) {
  var d = process.hrtime(t0)
  return d[0] + d[1] / 1e9
}

function fail (err) {
  console.error(err && err.stack ? err.stack : err)
  process.exit(1)
}

function append (data, dir) {
  fs.mkdirSync(dir, { recursive: true })
  var db = Flume(openLog(dir))
  var rl = readline.createInterface({ input: fs.createReadStream(data), crlfDelay: Infinity })
  var batch = []
  var n = 0
  var t0 = process.hrtime()
  var it = rl[Symbol.asyncIterator]()

  function write (cb) {
    var b = batch
    batch = []
    n += b.length
    db.append(b, cb)
  }

  ;(async function () {
    for (;;) {
      var r = await it.next()
      if (r.done) break
      if (!r.value) continue
      batch.push(JSON.parse(r.value))
      if (batch.length === 1000) {
        await new Promise(function (resolve, reject) {
          write(function (err) { err ? reject(err) : resolve() })
        })
      }
    }
    if (batch.length) {
      await new Promise(function (resolve, reject) {
        write(function (err) { err ? reject(err) : resolve() })
      })
    }
    var s = seconds(t0)
    db.close(function (err) {
      if (err) fail(err)
      var size = fs.statSync(path.join(dir, 'log.offset')).size
      console.log(JSON.stringify({ phase: 'append', n: n, seconds: s, log_bytes: size }))
    })
  })().catch(fail)
}

function countByType (acc, type) {
  acc[type] = (acc[type] || 0) + 1
  return acc
}

function catchup (dir, authors) {
  var t0 = process.hrtime()
  var db = Flume(openLog(dir))
    .use('by_type', Reduce(1, countByType, function (msg) { return msg.value.content.type }, null, {}))
    .use('by_author', Level(1, function (msg) {
      return [[msg.value.author, msg.value.sequence]]
    }))
    .use('query', Query(1, {
      indexes: [
        { key: 'aut', value: [['value', 'author'], ['value', 'timestamp']] },
        { key: 'typ', value: [['value', 'content', 'type'], ['value', 'timestamp']] }
      ]
    }))

  db.since.once(function (logSince) {
    var waiting = VIEWS.length
    var readyAt = {}
    VIEWS.forEach(function (name) {
      var done = false
      var rm = null
      rm = db[name].since(function (v) {
        if (done || v !== logSince) return
        done = true
        readyAt[name] = seconds(t0)
        if (rm) setImmediate(rm)
        if (--waiting === 0) answer(seconds(t0), readyAt, logSince)
      })
      if (done && rm) rm()
    })
  })

  function answer (s, readyAt, logSince) {
    db.by_type.get(function (err, counts) {
      if (err) fail(err)
      var latest = {}
      var left = authors.length
      if (!left) finish()
      authors.forEach(function (a) {
        pull(
          db.query.read({ query: [{ $filter: { value: { author: a } } }], reverse: true, limit: 10 }),
          pull.collect(function (err, msgs) {
            if (err) fail(err)
            latest[a] = msgs.map(function (m) { return m.key })
            if (--left === 0) finish()
          })
        )
      })
      function finish () {
        var t1 = process.hrtime()
        db.close(function (err) {
          if (err) fail(err)
          console.log(JSON.stringify({
            phase: 'catchup',
            seconds: s,
            ready_at: readyAt,
            log_since: logSince,
            close_seconds: seconds(t1),
            peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
            count_by_type: counts,
            latest10: latest
          }))
        })
      }
    })
  }
}

var cmd = process.argv[2]
if (cmd === 'append' && process.argv.length === 5) append(process.argv[3], process.argv[4])
else if (cmd === 'catchup' && process.argv.length >= 4) catchup(process.argv[3], process.argv.slice(4))
else {
  console.error('usage: node flumedb_bench.js append DATA.jsonl DIR | catchup DIR [AUTHOR...]')
  process.exit(2)
}
