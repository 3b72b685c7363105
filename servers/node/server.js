#!/usr/bin/env node
// pushbench's Node reference server: the WebSocket part of the server contract
// (docs/contract.md) on the `ws` package, written for pushbench (registry stack `node-ws`).
//
//   node servers/node/server.js --host 127.0.0.1 --port 8080 [--history 1000]
//   # prints: pushbench external: stack=node-ws listening on http://127.0.0.1:8080
//
// Serves:
//   GET  /ws?topic=&since=   WebSocket push stream: one text message per envelope; `since`
//                            resumes (every message of the topic after that seq first);
//                            a text message from the client publishes on the topic
//                            ({"sch":N,"p":"..."} carries its scheduled time, else the text
//                            is the payload, scheduled on arrival)
//   GET  /health             200 "ok"
//   GET  /clock              {"mono_ns": "<digits>", "boot_id", "timens_ns"} (clock offset)
//   GET  /stats              JSON counters, the ticker's record, CPU and peak RSS
//   POST /control/ticker?topic=&rate=&size=&count=&delay=&duration=
//                            open-loop publishing: message i is due at start + i × ⌊1e9/rate⌋ ns,
//                            start = now + delay; DELETE stops it
// Not served (the runner's probe names them): /sse, /poll, /publish, /echo, /clock.
//
// Times are CLOCK_MONOTONIC ns (process.hrtime.bigint(): libuv reads CLOCK_MONOTONIC on
// Linux), the clock pushbench's clients stamp receipts with, so latency compares directly.
// Each envelope is encoded once per message and the same Buffer goes to every subscriber.
// Node's timers have 1 ms resolution: the ticker sleeps on setTimeout until less than
// SPIN_NS remain, then yields with setImmediate until the message is due (that short spin
// is server CPU, counted like the rest of the process's); how late it woke is in the
// ticker's lag figures.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const { WebSocketServer } = require('ws');
const wsVersion = require('ws/package.json').version;

const NAME = 'node-ws';
const TOPIC = /^[A-Za-z0-9_.\-]{1,64}$/;
const DIGITS = /^[0-9]{1,19}$/;
const PUBLISH = /^\{"sch":(-?[0-9]+),"p":("(?:[^"\\]|\\.)*")\}$/s;
const MAX_AHEAD_NS = 1_000_000_000n; // a publisher's schedule may not lie further ahead
const MAX_PUBLISH_BYTES = 1 << 20;
const MAX_RATE = 100_000; // msgs/s, the Python stacks' default cap
const SLOW_CONSUMER_BYTES = 8 << 20; // buffered beyond this: the connection is dropped
const SPIN_NS = 1_000_000n;

const now = () => process.hrtime.bigint();

// GET /clock (docs/contract.md): this process's CLOCK_MONOTONIC as a string of digits, and
// which clock that is (the kernel's boot id, this process's time-namespace offset), so a
// worker on the same kernel needs no offset estimate (pushbench.clocksync).
function clockIdentity() {
  let bootId = '';
  let timensNs = 0n;
  try {
    bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return ['', 0n];
  }
  try {
    for (const line of fs.readFileSync('/proc/self/timens_offsets', 'utf8').split('\n')) {
      const [name, sec, nsec] = line.trim().split(/\s+/);
      if (name === 'monotonic' || name === '1') timensNs = BigInt(sec) * 1000000000n + BigInt(nsec);
    }
  } catch {
    // no time namespaces here: offset 0
  }
  return [bootId, timensNs];
}
const CLOCK_ID = clockIdentity();

function replyClock(res) {
  const body = `{"mono_ns":"${now()}","boot_id":"${CLOCK_ID[0]}","timens_ns":${CLOCK_ID[1]}}`;
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 8080, history: 1000 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in opts) || i + 1 >= argv.length) {
      throw new Error(`usage: server.js [--host H] [--port P] [--history N] (bad: ${argv[i]})`);
    }
    opts[key] = key === 'host' ? argv[i + 1] : Number.parseInt(argv[i + 1], 10);
  }
  return opts;
}

// One topic: its sequence number, the last `limit` envelopes, its live subscribers.
class Topic {
  constructor(limit) {
    this.seq = 0;
    this.limit = limit;
    this.history = []; // [seq, Buffer], oldest first
    this.subscribers = new Set();
  }

  // Envelopes after `since` still in history; a gap (evicted before fetched) is counted.
  after(since, counters) {
    const missing = this.seq - since;
    if (missing <= 0) return [];
    if (missing > this.history.length) {
      counters.history_gaps += 1;
      counters.history_gap_messages += missing - this.history.length;
      return this.history.slice();
    }
    return this.history.slice(this.history.length - missing);
  }
}

class Server {
  constructor(history) {
    this.historyLimit = history;
    this.topics = new Map();
    this.counters = {
      published: 0,
      messages_sent: 0,
      connections_open: 0,
      connections_total: 0,
      slow_consumers_dropped: 0,
      history_gaps: 0,
      history_gap_messages: 0,
      publish_rejected: 0,
    };
    this.ticker = null;
  }

  topic(name) {
    let t = this.topics.get(name);
    if (t === undefined) {
      t = new Topic(this.historyLimit);
      this.topics.set(name, t);
    }
    return t;
  }

  // Number, stamp and encode one message once, keep it, send the same bytes to everyone.
  publish(name, payload, scheduledNs) {
    const t = this.topic(name);
    t.seq += 1;
    const data = Buffer.from(
      `{"t":${JSON.stringify(name)},"s":${t.seq},"sch":${scheduledNs},` +
        `"pub":${now()},"p":${JSON.stringify(payload)}}`,
    );
    t.history.push([t.seq, data]);
    if (t.history.length > t.limit) t.history.shift();
    this.counters.published += 1;
    for (const ws of t.subscribers) this.send(ws, data);
    return t.seq;
  }

  send(ws, data) {
    if (ws.bufferedAmount > SLOW_CONSUMER_BYTES) {
      this.counters.slow_consumers_dropped += 1;
      ws.terminate();
      return;
    }
    ws.send(data, { binary: false });
    this.counters.messages_sent += 1;
  }

  stats() {
    const usage = process.resourceUsage();
    let subscribers = 0;
    for (const t of this.topics.values()) subscribers += t.subscribers.size;
    return {
      ...this.counters,
      subscribers,
      history: this.historyLimit,
      hub_backend: 'memory',
      encoding: 'json',
      ticker: this.ticker === null ? {} : this.ticker.status(),
      server: { stack: NAME, node: process.version, ws: wsVersion, compression: 'off' },
      cpu_user_s: usage.userCPUTime / 1e6,
      cpu_sys_s: usage.systemCPUTime / 1e6,
      max_rss_kb: usage.maxRSS,
    };
  }
}

// Open-loop publishing: message i due at start + i × interval, stamped with that time.
class Ticker {
  constructor(server, { topic, rate, size, count, delayNs, durationNs }) {
    this.server = server;
    this.topic = topic;
    this.rate = rate;
    this.payload = 'x'.repeat(size);
    this.intervalNs = BigInt(Math.trunc(1e9 / rate));
    this.startNs = now() + delayNs;
    this.count = count;
    if (durationNs !== null) {
      const byDuration = Number(durationNs / this.intervalNs);
      this.count = count === null ? byDuration : Math.min(count, byDuration);
    }
    this.sent = 0;
    this.firstSeq = 0;
    this.lastSeq = 0;
    this.lagSumNs = 0n;
    this.lagMaxNs = 0n;
    this.running = true;
    this.timer = null;
    this.immediate = null;
  }

  start() {
    this.wake();
  }

  stop() {
    this.running = false;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
  }

  wake() {
    this.timer = null;
    this.immediate = null;
    if (!this.running) return;
    let t = now();
    // Everything due by now goes out, each stamped with its own due time (a late wake-up
    // is a burst, and the lag shows it).
    while (this.count === null || this.sent < this.count) {
      const due = this.startNs + BigInt(this.sent) * this.intervalNs;
      if (due > t) break;
      const lag = t - due;
      this.lagSumNs += lag;
      if (lag > this.lagMaxNs) this.lagMaxNs = lag;
      const seq = this.server.publish(this.topic, this.payload, due);
      if (this.sent === 0) this.firstSeq = seq;
      this.lastSeq = seq;
      this.sent += 1;
      t = now();
    }
    if (this.count !== null && this.sent >= this.count) {
      this.running = false;
      return;
    }
    const left = this.startNs + BigInt(this.sent) * this.intervalNs - t;
    if (left > SPIN_NS) {
      this.timer = setTimeout(() => this.wake(), Number((left - SPIN_NS) / 1_000_000n));
    } else {
      this.immediate = setImmediate(() => this.wake());
    }
  }

  status() {
    return {
      topic: this.topic,
      rate: this.rate,
      payload_size: this.payload.length,
      count: this.count,
      sent: this.sent,
      running: this.running,
      start_ns: this.startNs, // a BigInt: written as an exact JSON integer (jsonBig)
      first_seq: this.firstSeq,
      last_seq: this.lastSeq,
      lag_max_us: Number(this.lagMaxNs) / 1e3,
      lag_mean_us: this.sent ? Number(this.lagSumNs) / this.sent / 1e3 : 0,
      lag_p50_us: null, // no per-publish record kept
      lag_p99_us: null,
      own_cpu_us_per_msg: null, // not separable from the process's CPU here
    };
  }
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// JSON with BigInts as exact integers (JSON.stringify refuses them; a Number is exact only
// to 2**53, and CLOCK_MONOTONIC ns pass that after 104 days of uptime).
function jsonBig(value) {
  const text = JSON.stringify(value, (k, v) => (typeof v === 'bigint' ? `\u0000big${v}` : v));
  return text.replace(/"\\u0000big(-?[0-9]+)"/g, '$1');
}

function reply(res, status, body, type = 'application/json') {
  const data = typeof body === 'string' ? body : jsonBig(body);
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

function number(query, name, lo, hi, integer) {
  const raw = query.get(name);
  if (raw === null || raw === '') return null;
  const value = integer ? (DIGITS.test(raw) ? Number(raw) : Number.NaN) : Number(raw);
  if (!Number.isFinite(value) || value < lo || value > hi) {
    throw new HttpError(400, `${name} must be a number in [${lo}, ${hi}]`);
  }
  return value;
}

function topicOf(query) {
  const topic = query.get('topic') || '';
  if (!TOPIC.test(topic)) throw new HttpError(400, 'topic must be 1-64 characters of [A-Za-z0-9_.-]');
  return topic;
}

function controlTicker(server, method, query) {
  if (method === 'DELETE') {
    if (server.ticker !== null) server.ticker.stop();
    return server.ticker === null ? {} : server.ticker.status();
  }
  const topic = topicOf(query);
  const rate = number(query, 'rate', 0.001, 1e6, false) ?? 100;
  if (rate > MAX_RATE) throw new HttpError(400, `rate over this server's cap of ${MAX_RATE} msg/s`);
  const size = number(query, 'size', 0, MAX_PUBLISH_BYTES, true) ?? 100;
  const count = number(query, 'count', 1, 1e9, true);
  const delay = number(query, 'delay', 0, 60, false) ?? 0;
  const duration = number(query, 'duration', 0.001, 86400, false);
  if (server.ticker !== null) server.ticker.stop();
  server.ticker = new Ticker(server, {
    topic,
    rate,
    size,
    count,
    delayNs: BigInt(Math.round(delay * 1e9)),
    durationNs: duration === null ? null : BigInt(Math.round(duration * 1e9)),
  });
  server.ticker.start();
  return server.ticker.status();
}

function handleHttp(server, req, res) {
  const url = new URL(req.url, 'http://x');
  try {
    if (url.pathname === '/health' && req.method === 'GET') return reply(res, 200, 'ok', 'text/plain');
    if (url.pathname === '/clock' && req.method === 'GET') return replyClock(res);
    if (url.pathname === '/stats' && req.method === 'GET') return reply(res, 200, server.stats());
    if (url.pathname === '/control/ticker') {
      if (req.method !== 'POST' && req.method !== 'DELETE') {
        res.setHeader('Allow', 'POST, DELETE');
        throw new HttpError(405, 'POST starts the ticker, DELETE stops it');
      }
      return reply(res, 200, controlTicker(server, req.method, url.searchParams));
    }
    if (url.pathname === '/ws') throw new HttpError(426, 'GET /ws is a WebSocket endpoint: upgrade');
    throw new HttpError(404, `not found: ${url.pathname} (this server serves the WebSocket part only)`);
  } catch (err) {
    if (!(err instanceof HttpError)) throw err;
    return reply(res, err.status, { error: err.message });
  }
}

// A client's text message: {"sch":N,"p":"..."} (N: CLOCK_MONOTONIC ns it was due) or the
// payload itself. Returns [payload, scheduled ns] or throws (close 1008).
function parsePublish(text) {
  if (!text.startsWith('{"sch":')) return [text, now()];
  const m = PUBLISH.exec(text);
  if (m === null) throw new Error('a publish starting {"sch": must be {"sch": <integer ns>, "p": "<payload>"}');
  const sch = BigInt(m[1]);
  if (sch < 0n || sch > now() + MAX_AHEAD_NS) throw new Error('sch must be CLOCK_MONOTONIC ns, not in the future');
  return [JSON.parse(m[2]), sch];
}

function handleUpgrade(server, wss, req, socket, head) {
  const url = new URL(req.url, 'http://x');
  let topic;
  let since = null;
  try {
    if (url.pathname !== '/ws') throw new HttpError(404, `no WebSocket endpoint at ${url.pathname}`);
    topic = topicOf(url.searchParams);
    since = number(url.searchParams, 'since', 0, Number.MAX_SAFE_INTEGER, true);
  } catch (err) {
    const status = err instanceof HttpError ? err.status : 400;
    const body = JSON.stringify({ error: err.message });
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    const t = server.topic(topic);
    server.counters.connections_open += 1;
    server.counters.connections_total += 1;
    // Catch up and join in one synchronous step: nothing is published in between.
    if (since !== null) for (const [, data] of t.after(since, server.counters)) server.send(ws, data);
    t.subscribers.add(ws);
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      try {
        const [payload, sch] = parsePublish(data.toString('utf8'));
        server.publish(topic, payload, sch);
      } catch (err) {
        server.counters.publish_rejected += 1;
        ws.close(1008, err.message.slice(0, 120));
      }
    });
    ws.on('error', () => ws.terminate());
    ws.on('close', () => {
      t.subscribers.delete(ws);
      server.counters.connections_open -= 1;
    });
  });
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const server = new Server(opts.history);
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: MAX_PUBLISH_BYTES,
  });
  const httpServer = http.createServer((req, res) => handleHttp(server, req, res));
  httpServer.keepAliveTimeout = 75_000;
  httpServer.on('upgrade', (req, socket, head) => handleUpgrade(server, wss, req, socket, head));
  httpServer.listen(opts.port, opts.host, () => {
    const { port } = httpServer.address();
    process.stdout.write(`pushbench external: stack=${NAME} listening on http://${opts.host}:${port}\n`);
  });
  const stop = () => {
    if (server.ticker !== null) server.ticker.stop();
    for (const ws of wss.clients) ws.terminate();
    httpServer.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
