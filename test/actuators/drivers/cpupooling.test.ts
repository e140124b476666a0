import { type AddressInfo, createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { CpuPooling, nodeId, parseCloneRequest } from '../../../actuators/drivers/index.ts';
import { VariableTable } from '../../../kernel-analytics/index.ts';
import { closeAfterEach } from '../../helpers/cleanup.ts';
import { LineConn, oneShot } from '../../helpers/line-client.ts';
import { run } from '../../helpers/services.ts';
import { expectRobust } from './lib/robust.ts';

const track = closeAfterEach();

async function start(opts: Partial<ConstructorParameters<typeof CpuPooling>[0]> = {}): Promise<CpuPooling> {
  const s = new CpuPooling({ variables: new VariableTable(), port: 0, ...opts });
  await s.start();
  track(s);
  return s;
}

function parseReply(r: string): { node: string; rule: string; result: string } {
  const m = /^node=(\S+) rule=(\S+) result=(.*)$/.exec(r);
  if (!m) throw new Error(`not a virgo_clone reply: ${r}`);
  return { node: m[1]!, rule: m[2]!, result: m[3]! };
}

describe('cpupooling request syntax', () => {
  it.each([
    ['virgo_clone(fib,30)', { fn: 'fib', args: ['30'], local: false }],
    ['fib(30)', { fn: 'fib', args: ['30'], local: false }],
    ['fib 30', { fn: 'fib', args: ['30'], local: false }],
    ['sum 1 2 3', { fn: 'sum', args: ['1', '2', '3'], local: false }],
    ['loadavg', { fn: 'loadavg', args: [], local: false }],
    ['virgo_clone_local(echo,a b)', { fn: 'echo', args: ['a b'], local: true }],
  ])('%s', (line, want) => {
    expect(parseCloneRequest(line)).toEqual(want);
  });

  it('refuses what is not a function name before any lookup', () => {
    expect(() => parseCloneRequest('/bin/sh -c id')).toThrow(/not a function name/);
    expect(() => parseCloneRequest('virgo_clone(../../bin/ls)')).toThrow(/not a function name/);
    expect(() => parseCloneRequest('virgo_clone()')).toThrow(/name the function/);
    expect(() => parseCloneRequest('fib(30')).toThrow(/unbalanced parentheses/);
  });
});

describe('cpupooling :10000', () => {
  it('runs registered functions and says which node and rule', async () => {
    const s = await start();
    const c = await LineConn.open(s.port);
    const self = nodeId('127.0.0.1', s.port);
    expect(parseReply(await c.ask('virgo_clone(fib,30)'))).toEqual({
      node: self,
      rule: 'prg',
      result: '832040',
    });
    expect(parseReply(await c.ask('fib 90')).result).toBe('2880067194370816120');
    expect(parseReply(await c.ask('sum(1,2,3.5)')).result).toBe('6.5');
    expect(parseReply(await c.ask('echo hello pool')).result).toBe('hello pool');
    expect(parseReply(await c.ask('primes 100')).result).toBe('25');
    expect(parseReply(await c.ask('sleep_ms 5')).result).toBe('slept 5 ms');
    expect(await c.ask('help')).toMatch(/functions: echo, fib, loadavg, primes, sleep_ms, sum/);
    c.close();
    expect(s.stats.ok).toBe(6);
  });

  it('answers errors for unknown functions and bad arguments, and keeps serving', async () => {
    const s = await start();
    await expectRobust(s.port, {
      maxLineBytes: 8192,
      good: { line: 'fib 10', reply: /result=55$/ },
      bad: [
        { line: 'rm -rf /', says: /no registered function "rm"; registered: echo, fib/ },
        { line: 'constructor', says: /no registered function "constructor"/ },
        { line: '__proto__ 1', says: /no registered function "__proto__"/ },
        { line: '/usr/bin/id', says: /is not a function name/ },
        { line: 'virgo_clone(../../../bin/sh)', says: /is not a function name/ },
        { line: 'fib', says: /fib: takes 1 argument\(s\), got 0; usage: fib <n>/ },
        { line: 'fib 1001', says: /n 1001 is more than 1000/ },
        { line: 'fib -1', says: /n must be a non-negative integer/ },
        { line: 'sum 1 x', says: /"x" is not a number/ },
        { line: 'sleep_ms 99999', says: /more than 10000/ },
        { line: '(((', says: /unbalanced parentheses/ },
        { line: '\u00e9\u00e8 garbage', says: /is not a function name/ },
      ],
    });
    expect(s.stats.errors.get('unknown-function')).toBeGreaterThanOrEqual(5);
    expect(s.stats.errors.get('malformed')).toBeGreaterThanOrEqual(5);
  });

  it('balances over two real nodes with the PRG rule, forwarding as virgo_clone_local', async () => {
    const a = await start();
    const b = await start();
    const nodes = [a, b].map((x) => ({ host: '127.0.0.1', port: x.port, id: nodeId('127.0.0.1', x.port) }));
    // alternate deterministically: 0, 1, 0, 1, …
    let i = 0;
    const seq = new CpuPooling({ variables: new VariableTable(), port: 0, nodes, rand: (n) => i++ % n });
    await seq.start();
    track(seq);
    const c = await LineConn.open(seq.port);
    const seen: string[] = [];
    for (let k = 0; k < 6; k++) {
      const r = parseReply(await c.ask(`fib ${k + 10}`));
      seen.push(r.node);
      expect(r.rule).toBe('prg');
    }
    expect(seen).toEqual([
      nodes[0]!.id,
      nodes[1]!.id,
      nodes[0]!.id,
      nodes[1]!.id,
      nodes[0]!.id,
      nodes[1]!.id,
    ]);
    // the remote nodes really ran them (as local requests, not re-balanced)
    expect(a.stats.ok + b.stats.ok).toBe(6);
    expect(a.perNode.size + b.perNode.size).toBe(0);
    c.close();
  });

  it('switches from PRG to the analytics rule when cpupooling.balancer changes', async () => {
    const table = new VariableTable();
    const a = await start({ variables: new VariableTable() });
    const b = await start({ variables: new VariableTable() });
    const nodes = [a, b].map((x) => ({ host: '127.0.0.1', port: x.port, id: nodeId('127.0.0.1', x.port) }));
    const front = await start({ variables: table, nodes });
    const c = await LineConn.open(front.port);
    // predicted loads say b is the lighter node
    table.set('cpupooling.predicted_exec_ms', '250', { host: nodes[0]!.id });
    table.set('cpupooling.predicted_exec_ms', '40', { host: nodes[1]!.id });
    const prg = new Set<string>();
    for (let k = 0; k < 40; k++) {
      const r = parseReply(await c.ask('echo x'));
      expect(r.rule).toBe('prg');
      prg.add(r.node);
    }
    expect(prg.size).toBe(2); // 2^-39 chance of a false failure
    table.set('cpupooling.balancer', 'analytics');
    for (let k = 0; k < 10; k++)
      expect(parseReply(await c.ask('echo x'))).toMatchObject({ node: nodes[1]!.id, rule: 'analytics' });
    // the learner's view changes: a is lighter now
    table.set('cpupooling.predicted_exec_ms', '10', { host: nodes[0]!.id });
    expect(parseReply(await c.ask('echo x')).node).toBe(nodes[0]!.id);
    // no per-node predictions for these hosts: the learner's least_loaded_node
    const t2 = new VariableTable();
    const front2 = await start({ variables: t2, nodes });
    t2.set('cpupooling.balancer', 'analytics');
    t2.set('cpupooling.least_loaded_node', nodes[1]!.id, { host: 'cluster' });
    expect(parseReply(await oneShot(front2.port, 'echo y'))).toMatchObject({
      node: nodes[1]!.id,
      rule: 'analytics',
    });
    // nothing usable: PRG, and the reply says so
    t2.set('cpupooling.least_loaded_node', 'gone', { host: 'cluster' });
    expect(parseReply(await oneShot(front2.port, 'echo y')).rule).toBe('prg(no-load-variables)');
    c.close();
  });

  it('reports an unreachable node instead of running the request elsewhere', async () => {
    // a port that was free a moment ago: nothing listens there
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const dead = { host: '127.0.0.1', port, id: `127.0.0.1:${port}` };
    const s = await start({ nodes: [dead] });
    expect(await oneShot(s.port, 'fib 3')).toBe(
      `error: node 127.0.0.1:${port} unreachable (cannot connect to 127.0.0.1:${port}: ECONNREFUSED); request not run`,
    );
  });

  it('runs the functions that compute in worker threads: bounded in time (cpupooling.timeout_ms) and in number', async () => {
    const table = new VariableTable();
    const s = await start({ variables: table, workers: { size: 1, maxQueued: 1 } });
    const c = await LineConn.open(s.port);
    table.set('cpupooling.timeout_ms', '5');
    expect(await c.ask('virgo_clone(primes,2000000)')).toMatch(
      /^error: primes: stopped after 5 ms \(cpupooling\.timeout_ms\); ask for less work$/,
    );
    table.delete('cpupooling.timeout_ms');
    // a fresh worker took the terminated one's place
    expect(parseReply(await c.ask('virgo_clone(primes,2000000)')).result).toBe('148933');
    // one running, one waiting: a third at the same time is refused at once, not queued
    const clients = await Promise.all([1, 2, 3].map(() => LineConn.open(s.port)));
    for (const k of clients) k.write('virgo_clone(primes,2000000)\n');
    const answers = await Promise.all(clients.map((k) => k.next()));
    expect(answers.filter((a) => a?.endsWith('result=148933'))).toHaveLength(2);
    expect(answers.filter((a) => a?.startsWith('error: '))).toEqual([
      'error: primes: every worker is busy and 1 calls wait already; try again later',
    ]);
    // an argument error thrown in the worker comes back as the same error line
    expect(await c.ask('primes 2000001')).toBe(
      'error: primes: n 2000001 is more than 2000000; usage: primes <n>  (n <= 2000000)',
    );
    // functions that do not compute stay on the event loop
    expect(parseReply(await c.ask('echo in place')).result).toBe('in place');
    expect(s.pool?.stats().workers).toBe(1);
    for (const k of [c, ...clients]) k.close();
  });

  it('relays a remote node error', async () => {
    const a = await start();
    const front = await start({
      nodes: [{ host: '127.0.0.1', port: a.port, id: nodeId('127.0.0.1', a.port) }],
    });
    expect(await oneShot(front.port, 'fib 5000')).toMatch(
      /^error: node 127\.0\.0\.1:\d+: fib: n 5000 is more than 1000/,
    );
  });

  it('talks to nc (a real telnet-style exchange)', async () => {
    const s = await start();
    const r = await run('nc', ['-N', '127.0.0.1', String(s.port)], 'virgo_clone(fib,20)\nnope\n');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^node=127\.0\.0\.1:\d+ rule=prg result=6765$/);
    expect(lines[1]).toMatch(/^error: no registered function "nope"/);
  });
});
