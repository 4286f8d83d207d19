// natsjs_ask.mjs: the remote_ask peer: N requests of 16 bytes with nats.js
// (the NATS client of Node), C in flight over one connection, asking the
// echo responders of `actio-bench nats_echo` (the ones actio-bench
// remote_ask asks). nats.js sends every request's reply to one muxed inbox
// subscription, as actio and the bare cnats loop do. Each reply is checked
// against its request. Prints one JSON line (impl nats.js, workload
// remote_ask).
//   node natsjs_ask.mjs --nats URL [--requests N] [--concurrency C]
import { connect } from "nats";

const args = { requests: 100000, concurrency: 64 };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, ""), v = process.argv[i + 1];
  args[k] = k === "nats" ? v : Number(v);
}
if (!args.nats) {
  console.error("usage: node natsjs_ask.mjs --nats URL [--requests N] [--concurrency C]");
  process.exit(2);
}

const nc = await connect({ servers: args.nats });
const enc = new TextEncoder(), dec = new TextDecoder();
let next = 0, ok = 0;
async function worker() {
  for (;;) {
    const i = next++;
    if (i >= args.requests) return;
    const want = i.toString(16).padStart(16, "0");
    try {
      const m = await nc.request("bench.echo", enc.encode(want), { timeout: 10000 });
      if (dec.decode(m.data) === want) ok++;
    } catch (e) {
      // counted as an error below
    }
  }
}
const t0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: args.concurrency }, worker));
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
await nc.close();
console.log(JSON.stringify({
  impl: "nats.js", workload: "remote_ask", n: args.requests, concurrency: args.concurrency,
  ok, errors: args.requests - ok, seconds: Number(seconds.toFixed(6)),
  per_sec: Number((ok / seconds).toFixed(1)), responders: 2,
}));
