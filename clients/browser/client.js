/*
 * pushbench browser client: one push connection per page, receipts in typed arrays.
 *
 * Served by every stack at GET /client.js (GET /client is the page). The query string of
 * the page configures it:
 *
 *   transport      one of the server's browser transports (below)          (the first)
 *   topic, token   the topic, and a token when the server requires one     (bench, none)
 *   conn           this page's connection id (short polls' phase offset)   (0)
 *   interval       short poll interval, s                                  (0.1)
 *   timeout        long poll timeout, s                                    (30)
 *   since          resume after this seq on the first connection;
 *                  absent: only what is published from now on             (absent)
 *   capacity       receipts kept; beyond, they are only counted            (100000)
 *   keep           1: also keep every payload (for tests)                  (0)
 *   backoff_base, backoff_cap   reconnect back-off, ms                     (250, 10000)
 *   clock_samples  /clock exchanges per clock sync                         (12)
 *   lag            main-thread lag monitor period, ms; 0 turns it off      (10)
 *   autostart      0: wait for pushbench.start()                           (1)
 *
 * Which transports there are is the server's to say: the page it serves carries the
 * registry's transports that have a browser client (pushbench.registry, rendered by
 * pushbench/client_page.py) as JSON in <script id="pushbench-transports">, name →
 * {protocol, path, starter, params}; `starter` names the function below that receives it
 * (STARTERS), `path` is where it connects, `params` are the optional cell parameters
 * that apply. This file names no transport of its own.
 *
 * How each transport is received, as the seed article's client example does it:
 * `new WebSocket(url)` with open / message / close / error listeners; `new EventSource(url)`;
 * fetch() for long and short polls. Every envelope is JSON ({"t","s","sch","pub","p"}).
 *
 * Reconnecting. WebSockets do not reconnect by themselves: after a close the page waits a
 * random delay in [0, min(cap, base * 2^failures)) ("full jitter", so a thousand clients
 * that lost the same server do not come back in lockstep), then reconnects with
 * since=<last seq received>, so it misses nothing the server's history still holds. Every
 * scheduled retry is recorded in pushbench.attempts. EventSource reconnects by itself
 * after the server's `retry:` and sends Last-Event-ID; only when it gives up (an HTTP error
 * status) does the page retry, with the same back-off. Polls carry their cursor (`since`)
 * and retry a failed request with the same back-off.
 *
 * Times. A receipt's time is performance.now() read first thing in the event handler (for
 * polls: once the whole body is read). performance.timeOrigin + performance.now() is the
 * browser's clock; the page maps it to the server's CLOCK_MONOTONIC with an NTP-style
 * exchange with GET /clock before it connects (the sample with the smallest round trip
 * wins; its error is at most half that round trip plus the timer's resolution), and checks
 * the mapping again when it stops. timeOrigin is a constant of the page, so the arithmetic
 * uses performance.now() alone, whose small values keep every µs. docs/browser.md has the
 * derivation.
 *
 * Large integers. sch and pub are server nanoseconds: beyond 2^53 (104 days of uptime) a
 * JavaScript Number is no longer exact. JSON.parse's reviver receives the number's source
 * text (context.source), which is kept as digits, turned into a BigInt and stored as the
 * distance to the clock sync's server time (pushbench.clock.base_ns), a Float64 that is an
 * exact integer for ±104 days around it. Where a browser lacks context.source, the Number
 * is used and pushbench.info.exact_big_ints says so.
 *
 * What the page exposes, as window.pushbench: config, state {settled, connected, failed,
 * stopped}, stats (counters), clock, attempts, closes, lag, info; start(), stop() (closes
 * the connection, re-checks the clock), take() (receipts as base64 Float64 arrays plus all
 * of the above) and latencies(from) (scheduled→received µs of receipts from row `from` on).
 */
"use strict";

(() => {
  const GOLDEN = 0.6180339887498949; // short polls' phase: conn * golden ratio, mod 1
  const now = () => performance.now();

  // --- configuration ---------------------------------------------------------------------

  const query = new URLSearchParams(location.search);

  function number(name, fallback, min) {
    const raw = query.get(name);
    if (raw === null || raw === "") return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min) {
      throw new Error(`${name} must be a number >= ${min}, not ${JSON.stringify(raw)}`);
    }
    return value;
  }

  function transportTable() {
    // name → {protocol, path, starter, params}: the server's registry (see the top)
    const element = document.getElementById("pushbench-transports");
    if (element === null) {
      throw new Error("no transport table in the page: open it from a pushbench server");
    }
    return JSON.parse(element.textContent);
  }

  function readConfig() {
    const transports = transportTable();
    const names = Object.keys(transports);
    const transport = query.get("transport") || names[0];
    if (!Object.hasOwn(transports, transport)) {
      throw new Error(`transport must be one of ${names.join(", ")}`);
    }
    const row = transports[transport];
    if (!Object.hasOwn(STARTERS, row.starter)) {
      throw new Error(`transport ${transport}: this page has no starter ${row.starter}`);
    }
    const since = query.get("since");
    if (since !== null && since !== "" && !/^[0-9]{1,19}$/.test(since)) {
      throw new Error("since must be a sequence number");
    }
    return {
      transport,
      starter: row.starter,
      path: row.path.replace(/^\//, ""), // relative: resolved against the page's own URL
      params: row.params,
      topic: query.get("topic") || "bench",
      token: query.get("token"),
      conn: number("conn", 0, 0),
      interval_s: number("interval", 0.1, 0.001),
      timeout_s: number("timeout", 30, 0.001),
      since: since === null || since === "" ? null : Number(since),
      capacity: Math.floor(number("capacity", 100000, 0)),
      keep: query.get("keep") === "1",
      backoff_base_ms: number("backoff_base", 250, 1),
      backoff_cap_ms: number("backoff_cap", 10000, 1),
      clock_samples: Math.floor(number("clock_samples", 12, 1)),
      lag_ms: number("lag", 10, 0),
      autostart: query.get("autostart") !== "0",
    };
  }

  // --- state -----------------------------------------------------------------------------

  const state = { settled: false, connected: false, failed: null, stopped: false };
  const stats = {
    connects: 0,
    reconnects: 0,
    connect_ms: -1, // first attempt's start → open (ws, sse) / first answer (polls)
    messages: 0,
    last_seq: 0,
    overflow: 0,
    parse_errors: 0,
    requests: 0,
    empty_polls: 0,
    missed_polls: 0,
    errors: 0,
    last_error: null,
  };
  const attempts = []; // scheduled retries: {at_ms, delay_ms, ceiling_ms, after}
  const closes = []; // ended connections: {at_ms, code, opened}
  const lag = { interval_ms: 0, max_ms: 0, sum_ms: 0, samples: 0 };
  const clock = {
    base_ns: null, // server CLOCK_MONOTONIC ns (digits) at browser time mid_ms
    mid_ms: 0,
    rtt_ms: 0,
    uncertainty_ms: 0,
    rtts_ms: [],
    check: null, // the same exchange when stopping: how far the mapping was off then
  };
  const info = {
    user_agent: navigator.userAgent,
    cross_origin_isolated: self.crossOriginIsolated === true,
    timer_resolution_ms: 0,
    exact_big_ints: false,
    little_endian: new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f,
  };
  let cfg = null;
  let rec = null; // receipts: preallocated Float64Arrays, rows 0..n-1 used
  let base = 0n; // BigInt(clock.base_ns)
  let stopTransport = null;
  let stopLag = null;
  let stopping = null;

  // --- the receive path ------------------------------------------------------------------

  // Whether JSON.parse hands revivers the source text (exact big integers).
  info.exact_big_ints = (() => {
    let exact = false;
    JSON.parse("[12345678901234567891]", (key, value, context) => {
      if (key === "0") exact = context !== undefined && context.source === "12345678901234567891";
      return value;
    });
    return exact;
  })();

  function reviver(key, value, context) {
    if ((key === "sch" || key === "pub") && context !== undefined) return context.source;
    return value;
  }

  function relNs(value) {
    // nanoseconds after clock.base_ns, exact as long as that is within ±2^53 ns
    if (typeof value === "string") return Number(BigInt(value) - base);
    return typeof value === "number" ? value - Number(base) : NaN;
  }

  function newReceipts(capacity) {
    return {
      capacity,
      n: 0,
      seq: new Float64Array(capacity),
      sch: new Float64Array(capacity),
      pub: new Float64Array(capacity),
      recv: new Float64Array(capacity),
      payloads: cfg.keep ? [] : null,
    };
  }

  // One envelope received at browser time t (ms) → one row, or a parse error.
  function record(env, t) {
    if (env === null || typeof env !== "object" || env.t !== cfg.topic) {
      stats.parse_errors++;
      return;
    }
    let sch;
    let pub;
    try {
      sch = relNs(env.sch);
      pub = relNs(env.pub);
    } catch {
      sch = NaN; // not digits: BigInt() threw
    }
    if (!Number.isSafeInteger(env.s) || !Number.isFinite(sch) || !Number.isFinite(pub)) {
      stats.parse_errors++;
      return;
    }
    stats.messages++;
    stats.last_seq = env.s;
    const i = rec.n;
    if (i >= rec.capacity) {
      stats.overflow++;
      return;
    }
    rec.seq[i] = env.s;
    rec.sch[i] = sch;
    rec.pub[i] = pub;
    rec.recv[i] = (t - clock.mid_ms) * 1e6; // server ns after base_ns
    if (rec.payloads !== null) rec.payloads.push(env.p);
    rec.n = i + 1;
  }

  function receive(text, t) {
    let env;
    try {
      env = JSON.parse(text, reviver);
    } catch {
      stats.parse_errors++;
      return;
    }
    record(env, t);
  }

  // --- connections -----------------------------------------------------------------------

  function url(path, params, scheme) {
    const u = new URL(path, location.href);
    if (path !== "clock") {
      u.searchParams.set("topic", cfg.topic);
      if (cfg.token !== null) u.searchParams.set("token", cfg.token);
    }
    for (const [name, value] of Object.entries(params || {})) {
      u.searchParams.set(name, String(value));
    }
    if (scheme) u.protocol = scheme;
    return u.href;
  }

  function resumeFrom() {
    // the last seq received, else the configured start (null: live only)
    return stats.last_seq > 0 ? stats.last_seq : cfg.since;
  }

  function backoff(failures) {
    const ceiling = Math.min(cfg.backoff_cap_ms, cfg.backoff_base_ms * 2 ** failures);
    return { ceiling, delay: Math.random() * ceiling };
  }

  function settle() {
    if (!state.settled) {
      state.settled = true;
      show();
    }
  }

  function opened(t0) {
    stats.connects++;
    if (stats.connects === 1) stats.connect_ms = now() - t0;
    else stats.reconnects++;
    state.connected = true;
    settle();
    show();
  }

  function failed(message) {
    stats.errors++;
    stats.last_error = message;
    state.connected = false;
    settle();
    show();
  }

  // A reconnect scheduler shared by the transports: full-jitter back-off, every retry logged.
  function retrier(connect) {
    let timer = null;
    let failures = 0;
    return {
      succeeded() {
        failures = 0;
      },
      later(after) {
        const { ceiling, delay } = backoff(failures);
        failures++;
        attempts.push({ at_ms: now(), delay_ms: delay, ceiling_ms: ceiling, after });
        timer = setTimeout(() => {
          timer = null;
          connect();
        }, delay);
      },
      wait(after) {
        return new Promise((resolve) => {
          const { ceiling, delay } = backoff(failures);
          failures++;
          attempts.push({ at_ms: now(), delay_ms: delay, ceiling_ms: ceiling, after });
          timer = setTimeout(() => {
            timer = null;
            resolve();
          }, delay);
        });
      },
      cancel() {
        if (timer !== null) clearTimeout(timer);
        timer = null;
      },
    };
  }

  function startWebSocket() {
    let ws = null;
    let stopped = false;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const retry = retrier(connect);

    function connect() {
      const t0 = now();
      let open = false;
      const since = resumeFrom();
      ws = new WebSocket(url(cfg.path, since === null ? {} : { since }, scheme));
      ws.addEventListener("open", () => {
        open = true;
        retry.succeeded();
        opened(t0);
      });
      ws.addEventListener("message", (event) => {
        const t = now();
        receive(event.data, t);
      });
      ws.addEventListener("error", () => {
        // Always followed by "close", which accounts for it and reconnects.
      });
      ws.addEventListener("close", (event) => {
        ws = null;
        closes.push({ at_ms: now(), code: event.code, opened: open });
        if (stopped) return;
        if (!open) failed(`connect failed (close ${event.code})`);
        else if (event.code !== 1000 && event.code !== 1001) {
          failed(`closed ${event.code} ${event.reason}`);
        } else state.connected = false;
        retry.later(`close ${event.code}`);
      });
    }

    connect();
    return () => {
      stopped = true;
      retry.cancel();
      if (ws !== null) ws.close(1000);
    };
  }

  function startEventSource() {
    let es = null;
    let stopped = false;
    const retry = retrier(connect);

    function connect() {
      const t0 = now();
      let live = false; // the current stream opened and has not ended since
      const since = resumeFrom();
      // Only the first request uses the query's since: EventSource's own reconnects send
      // Last-Event-ID, which the server prefers.
      const source = new EventSource(url(cfg.path, since === null ? {} : { since }));
      es = source;
      source.addEventListener("open", () => {
        live = true;
        retry.succeeded();
        opened(t0);
      });
      source.addEventListener("message", (event) => {
        const t = now();
        receive(event.data, t);
      });
      source.addEventListener("error", () => {
        if (stopped) return;
        if (live) {
          // The stream ended; EventSource reconnects after the server's retry: (routine).
          live = false;
          state.connected = false;
          closes.push({ at_ms: now(), code: "stream ended", opened: true });
        } else failed("EventSource could not connect");
        if (source.readyState === EventSource.CLOSED) {
          // It gave up (an HTTP error status or a wrong Content-Type): retry ourselves.
          es = null;
          retry.later("EventSource closed");
        }
      });
    }

    connect();
    return () => {
      stopped = true;
      retry.cancel();
      if (es !== null) es.close();
    };
  }

  function startPolling(long) {
    let stopped = false;
    let cursor = cfg.since; // null: the first request fetches it without waiting
    const controller = new AbortController();
    const interval = cfg.interval_s * 1000;
    let sleeper = null;
    const retry = retrier(null);

    function sleep(ms) {
      return new Promise((resolve) => {
        const timer = setTimeout(resolve, ms);
        sleeper = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }

    async function poll(timeout_s) {
      const params = { timeout: timeout_s };
      if (cursor !== null) params.since = cursor;
      const t0 = now();
      const response = await fetch(url(cfg.path, params), {
        cache: "no-store",
        signal: controller.signal,
      });
      const body = await response.text();
      const t = now(); // the whole answer is in: one time for its whole batch
      stats.requests++;
      if (!response.ok) throw new Error(`/poll answered ${response.status}: ${body}`);
      const batch = JSON.parse(body, reviver);
      if (!Array.isArray(batch.messages) || !Number.isSafeInteger(batch.last)) {
        throw new Error("unreadable /poll answer");
      }
      if (!state.connected) opened(t0);
      for (const env of batch.messages) record(env, t);
      if (batch.messages.length === 0) stats.empty_polls++;
      cursor = batch.last;
    }

    async function run() {
      let start = null; // short polls: request k is due at start + k * interval
      let k = 0;
      while (!stopped) {
        try {
          if (cursor === null) await poll(0);
          else if (long) await poll(cfg.timeout_s);
          else {
            if (start === null) start = now() + ((cfg.conn * GOLDEN) % 1) * interval;
            const due = start + k * interval;
            const t = now();
            if (due > t) await sleep(due - t);
            else {
              const behind = Math.floor((t - due) / interval); // whole slots past: skipped
              stats.missed_polls += behind;
              k += behind;
            }
            k++;
            if (stopped) break;
            await poll(0);
          }
          retry.succeeded();
        } catch (error) {
          if (stopped) break;
          failed(String(error));
          await retry.wait(String(error));
        }
      }
    }

    run();
    return () => {
      stopped = true;
      retry.cancel();
      if (sleeper !== null) sleeper();
      controller.abort();
    };
  }

  // starter name (the transport table's `starter`) → the function that connects
  const STARTERS = {
    ws: startWebSocket,
    sse: startEventSource,
    longpoll: () => startPolling(true),
    shortpoll: () => startPolling(false),
  };

  // --- the clock -------------------------------------------------------------------------

  async function clockSample(signal) {
    const t0 = now();
    const response = await fetch(url("clock"), { cache: "no-store", signal });
    const body = await response.text();
    const t1 = now();
    if (!response.ok) throw new Error(`/clock answered ${response.status}`);
    return { rtt_ms: t1 - t0, mid_ms: (t0 + t1) / 2, server_ns: BigInt(JSON.parse(body).mono_ns) };
  }

  // Several exchanges; the one with the smallest round trip bounds the error best.
  // deadline() gives each exchange its AbortSignal (one shared signal bounds them all).
  async function syncClock(samples, deadline) {
    let best = null;
    const rtts = [];
    for (let i = 0; i < samples; i++) {
      const sample = await clockSample(deadline());
      rtts.push(sample.rtt_ms);
      if (best === null || sample.rtt_ms < best.rtt_ms) best = sample;
    }
    return { best, rtts };
  }

  function timerResolutionMs() {
    // The smallest step performance.now() takes (5 µs when cross-origin isolated, else
    // 100 µs in Chromium): part of every receive time's error.
    let step = Infinity;
    for (let i = 0; i < 20; i++) {
      const a = now();
      let b = now();
      for (let spins = 0; b === a && spins < 1e6; spins++) b = now();
      if (b > a) step = Math.min(step, b - a);
    }
    return step;
  }

  // --- the main thread's own pauses -------------------------------------------------------

  function startLagMonitor(interval) {
    // How late a timer fires: a busy main thread delays every receipt the same way.
    let expected = now() + interval;
    let timer = null;
    const tick = () => {
      const t = now();
      const late = Math.max(0, t - expected);
      lag.samples++;
      lag.sum_ms += late;
      if (late > lag.max_ms) lag.max_ms = late;
      expected = t + interval;
      timer = setTimeout(tick, interval);
    };
    lag.interval_ms = interval;
    timer = setTimeout(tick, interval);
    return () => clearTimeout(timer);
  }

  // --- life cycle ------------------------------------------------------------------------

  async function start() {
    if (rec !== null) return;
    try {
      rec = newReceipts(cfg.capacity);
      info.timer_resolution_ms = timerResolutionMs();
      const { best, rtts } = await syncClock(cfg.clock_samples, () => AbortSignal.timeout(5000));
      base = best.server_ns;
      clock.base_ns = String(best.server_ns);
      clock.mid_ms = best.mid_ms;
      clock.rtt_ms = best.rtt_ms;
      clock.uncertainty_ms = best.rtt_ms / 2 + info.timer_resolution_ms;
      clock.rtts_ms = rtts;
      if (cfg.lag_ms > 0) stopLag = startLagMonitor(cfg.lag_ms);
      if (state.stopped) return;
      stopTransport = STARTERS[cfg.starter]();
    } catch (error) {
      state.failed = String(error);
      failed(String(error));
    }
  }

  function stop() {
    if (stopping === null) stopping = finish();
    return stopping;
  }

  async function finish() {
    state.stopped = true;
    if (stopTransport !== null) stopTransport();
    if (stopLag !== null) stopLag();
    state.connected = false;
    if (clock.base_ns !== null) {
      // The mapping checked once more: the server's clock against what the mapping predicts.
      try {
        const deadline = AbortSignal.timeout(1000); // stopping must stay quick
        const { best } = await syncClock(Math.min(cfg.clock_samples, 5), () => deadline);
        const predicted = (best.mid_ms - clock.mid_ms) * 1e6;
        const actual = Number(best.server_ns - base);
        clock.check = {
          error_us: (actual - predicted) / 1e3,
          rtt_ms: best.rtt_ms,
          after_ms: best.mid_ms - clock.mid_ms,
        };
      } catch (error) {
        clock.check = { error: String(error) };
      }
    }
    show();
    return stats;
  }

  function base64(array, n) {
    const bytes = new Uint8Array(array.buffer, 0, n * 8);
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(text);
  }

  function take() {
    const n = rec === null ? 0 : rec.n;
    const column = (name) => (rec === null ? "" : base64(rec[name], n));
    return {
      n,
      seq: column("seq"),
      sch: column("sch"),
      pub: column("pub"),
      recv: column("recv"),
      payloads: rec === null ? null : rec.payloads,
      config: cfg,
      state,
      stats,
      clock,
      attempts,
      closes,
      lag,
      info,
    };
  }

  function latencies(from) {
    // scheduled → received, µs, of the receipts from row `from` on (the live progress line)
    const n = rec === null ? 0 : rec.n;
    const out = [];
    for (let i = Math.max(0, from); i < n; i++) out.push((rec.recv[i] - rec.sch[i]) / 1e3);
    return { n, messages: stats.messages, lat_us: out };
  }

  // --- the page itself -------------------------------------------------------------------

  function show() {
    const line = state.failed
      ? `failed: ${state.failed}`
      : `${cfg.transport} topic=${cfg.topic} ${state.connected ? "connected" : "not connected"}` +
        ` messages=${stats.messages} last_seq=${stats.last_seq} connects=${stats.connects}` +
        ` errors=${stats.errors}${state.stopped ? " (stopped)" : ""}`;
    const element = document.getElementById("status");
    if (element !== null) element.textContent = line;
  }

  window.pushbench = {
    config: null,
    state,
    stats,
    clock,
    attempts,
    closes,
    lag,
    info,
    start,
    stop,
    take,
    latencies,
  };
  try {
    cfg = readConfig();
    window.pushbench.config = cfg;
  } catch (error) {
    state.failed = String(error);
    state.settled = true;
    show();
    return;
  }
  show();
  const shower = setInterval(() => (state.stopped ? clearInterval(shower) : show()), 1000);
  if (cfg.autostart) start();
})();
