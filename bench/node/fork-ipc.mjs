// Baseline: Node's child_process.fork IPC (what Electron's utilityProcess is built on),
// with the same message shape as WhatNext's ping/pong frames.
//   node fork-ipc.mjs rtt N [THIS_CPU CHILD_CPU]        -> {"p50_us", "p99_us", "n"}
//   node fork-ipc.mjs pipelined N [THIS_CPU CHILD_CPU]  -> {"msgs_per_sec", "messages", "seconds"}
// With CPUs given, every thread of each process is pinned (taskset -a), as the Rust side does.
import { execFileSync, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const [mode = 'rtt', nArg = '20000', thisCpu, childCpu] = process.argv.slice(2);
const pin = (pid, cpu) => {
  if (cpu !== undefined) execFileSync('taskset', ['-a', '-cp', String(cpu), String(pid)], { stdio: 'ignore' });
};
if (mode === 'child') {
  process.on('message', (m) => process.send({ id: m.id, type: 'pong' }));
} else {
  const n = Number(nArg);
  const warmup = 1000;
  const child = fork(fileURLToPath(import.meta.url), ['child']);
  pin(process.pid, thisCpu);
  // Wait for the child to be up (one round trip) before pinning all of its threads.
  await new Promise((resolve) => { child.once('message', resolve); child.send({ id: -1, type: 'ping' }); });
  pin(child.pid, childCpu);
  const pct = (s, q) => s[Math.min(s.length - 1, Math.round((s.length - 1) * q))];
  if (mode === 'rtt') {
    const samples = [];
    let i = 0;
    let t0 = 0n;
    await new Promise((resolve) => {
      child.on('message', () => {
        if (i >= warmup) samples.push(Number(process.hrtime.bigint() - t0) / 1000);
        i += 1;
        if (i >= n + warmup) return resolve();
        t0 = process.hrtime.bigint();
        child.send({ id: i, type: 'ping' });
      });
      t0 = process.hrtime.bigint();
      child.send({ id: 0, type: 'ping' });
    });
    samples.sort((a, b) => a - b);
    console.log(JSON.stringify({ n: samples.length, p50_us: pct(samples, 0.5), p99_us: pct(samples, 0.99) }));
  } else {
    const inFlight = 64;
    let sent = 0;
    let got = 0;
    const t0 = process.hrtime.bigint();
    await new Promise((resolve) => {
      child.on('message', () => {
        got += 1;
        if (got >= n) return resolve();
        if (sent < n) child.send({ id: sent++, type: 'ping' });
      });
      for (; sent < inFlight; sent++) child.send({ id: sent, type: 'ping' });
    });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(JSON.stringify({ messages: n, seconds, msgs_per_sec: n / seconds }));
  }
  child.kill();
}
