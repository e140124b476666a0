// The template miner: masking, grouping, parameters, stable ids across restarts, bounded memory.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { DemoLog } from '../../ingest/demo-stream.ts';
import { maskMessage, parseLine, TemplateMiner, templateIdOf, WILDCARD } from '../../ingest/index.ts';
import { fixture, UFW_SAMPLES } from '../helpers/fixtures.ts';

const masked = (m: string) => maskMessage(m).masked.join(' ');
const dir = mkdtempSync(join(tmpdir(), 'virgo-miner-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('masking', () => {
  it('numbers, hex, IPs, MACs, PCI addresses, times, paths and host names become <*> in place', () => {
    expect(masked('uid=0 euid=1000 tty=NODEVssh rhost=218.188.2.4')).toBe(
      'uid=<*> euid=<*> tty=NODEVssh rhost=<*>',
    );
    expect(masked('MAC=52:54:00:12:34:56:08:00 SRC=2001:db8::1 at 0000:00:1f.0')).toBe(
      'MAC=<*> SRC=<*> at <*>',
    );
    expect(masked("creating device node '/udev/vcsa2' from ~/x")).toBe("creating device node '<*>' from <*>");
    expect(masked('to ffff3000. batch:1 CPU#0 PS/2 (order: 4, 65536 bytes)')).toBe(
      'to <*>. batch:<*> CPU#<*> PS/<*> (order: <*>, <*> bytes)',
    );
    expect(masked('rhost=massive.merukuru.org via rpc.statd')).toBe('rhost=<*> via rpc.statd');
    expect(masked('at Wed Jun 22 13:16:31 2005 and Jun 3')).toBe('at <*> <*> <*> <*> <*> and <*> <*>');
    // words stay, even month names not followed by a day
    expect(masked('May I ask about Dec plans?')).toBe('May I ask about Dec plans?');
  });

  it('collapses runs of blanks and keeps the values in order', () => {
    const m = maskMessage('  SELinux:\tInitializing  x=1,y=2  ');
    expect(m.tokens).toEqual(['SELinux:', 'Initializing', 'x=1,y=2']);
    expect(m.masked).toEqual(['SELinux:', 'Initializing', 'x=<*>,y=<*>']);
    expect(m.values).toEqual([[], [], ['1', '2']]);
  });
});

describe('mining', () => {
  it('groups lines of one event, separates different events, and returns the parameters', () => {
    const miner = new TemplateMiner();
    const a = miner.add('session closed for user cyrus');
    const b = miner.add('session closed for user news');
    expect(b.templateId).not.toBe(a.templateId); // the first template generalised
    expect(b).toMatchObject({
      template: 'session closed for user <*>',
      params: ['news'],
      change: 'generalized',
    });
    expect(miner.resolve(a.templateId)).toEqual({ templateId: b.templateId, template: b.template });
    const c = miner.add('session closed for user root');
    expect(c).toMatchObject({ templateId: b.templateId, params: ['root'], change: 'none' });
    const d = miner.add('session opened for user news by (uid=0)');
    expect(d.templateId).not.toBe(c.templateId);
    expect(d.params).toEqual(['0']);
  });

  it('keeps a shared key=/(…) frame when merging, and enumerated key=word values apart', () => {
    const miner = new TemplateMiner();
    miner.add('connection from 10.0.0.1 () at Wed Jun 22 13:16:31 2005');
    const r = miner.add('connection from 10.0.0.2 (host8.example.net) at Sun Jul 17 09:44:07 2005');
    expect(r.template).toBe('connection from <*> (<*>) at <*> <*> <*> <*> <*>');
    expect(r.params).toEqual(['10.0.0.2', 'host8.example.net', 'Sun', 'Jul', '17', '09:44:07', '2005']);
    const empty = miner.add('connection from 10.0.0.3 () at Sun Jul 17 09:44:08 2005');
    expect(empty.params[1]).toBe('');
    const tcp = miner.add('[UFW BLOCK] IN=eth0 SRC=1.2.3.4 PROTO=TCP SPT=1 DPT=22');
    const udp = miner.add('[UFW BLOCK] IN=eth0 SRC=1.2.3.5 PROTO=UDP SPT=2 DPT=53');
    expect(udp.templateId).not.toBe(tcp.templateId);
    expect(udp.template).toContain('PROTO=UDP');
  });

  it('every <*> has a parameter and the template keeps the token count (property)', () => {
    const token = fc.oneof(
      fc.constantFrom('eth0', 'link', 'up', 'user=root', 'uid=0', '()', 'x', 'Jun', '22', '13:16:31'),
      fc.ipV4(),
      fc.stringMatching(/^[0-9a-f]{1,12}$/),
      fc.string({ minLength: 1, maxLength: 8 }).filter((s) => !/\s/.test(s)),
    );
    const miner = new TemplateMiner({ maxTemplates: 50 });
    fc.assert(
      fc.property(fc.array(token, { minLength: 0, maxLength: 12 }), (toks) => {
        const r = miner.add(toks.join(' '));
        const slots = r.template.split(WILDCARD).length - 1;
        expect(r.params.length).toBe(slots);
        expect(r.template === '' ? 0 : r.template.split(' ').length).toBe(toks.length);
        expect(r.templateId).toBe(templateIdOf(r.template));
      }),
      { numRuns: 500 },
    );
    expect(miner.size).toBeLessThanOrEqual(50);
  });
});

describe('stable ids', () => {
  const lines = [
    'session closed for user cyrus',
    'session closed for user news',
    'authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4',
    'authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=10.1.1.1  user=root',
    'e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex',
    'e1000e: eth1 NIC Link is Down',
  ];

  it('the same lines give the same ids in another instance (ids are hashes of templates)', () => {
    const a = new TemplateMiner();
    const b = new TemplateMiner();
    const idsA = lines.map((l) => a.add(l).templateId);
    const idsB = lines.map((l) => b.add(l).templateId);
    expect(idsB).toEqual(idsA);
  });

  it('survive a restart: save, load, and the same lines map to the same templates', () => {
    const a = new TemplateMiner();
    for (const l of lines) a.add(l);
    const before = lines.map((l) => a.add(l));
    const path = join(dir, 'miner.json');
    a.save(path);
    expect(JSON.parse(readFileSync(path, 'utf8')).version).toBe(1);
    const b = TemplateMiner.load(path);
    expect(b.size).toBe(a.size);
    const after = lines.map((l) => b.add(l));
    expect(after.map((r) => [r.templateId, r.template, r.params])).toEqual(
      before.map((r) => [r.templateId, r.template, r.params]),
    );
    expect(after.every((r) => r.change === 'none')).toBe(true);
    // and through toJSON/fromJSON, counts included
    const c = TemplateMiner.fromJSON(JSON.parse(JSON.stringify(b.toJSON())));
    expect(c.templates()).toEqual(b.templates());
  });

  it('a corrupt state is an error, not an empty miner', () => {
    expect(() => TemplateMiner.fromJSON({} as never)).toThrow(/not a template miner state/);
  });
});

describe('bounded memory', () => {
  it('evicts the least recently used templates past the cap, tree included', () => {
    const miner = new TemplateMiner({ maxTemplates: 32 });
    const word = (i: number, salt: number) =>
      `w${((i * 7919 + salt) >>> 0).toString(36).replace(/\d/g, 'q')}`;
    const hot = miner.add('kept alive because it is used');
    let nodes = 0;
    for (let i = 0; i < 500; i++) {
      // words only (nothing masked) and nothing shared: every line is a template of its own
      miner.add(`${word(i, 1)} ${word(i, 2)} ${word(i, 3)} ${word(i, 4)}`);
      if (i % 8 === 0) miner.add('kept alive because it is used');
      expect(miner.size).toBeLessThanOrEqual(32);
      nodes = Math.max(nodes, miner.stats().nodes);
    }
    expect(miner.stats().evicted).toBeGreaterThan(450);
    expect(nodes).toBeLessThan(3 * 40);
    expect(miner.resolve(hot.templateId)).toBeDefined();
    expect(miner.add('kept alive because it is used').change).toBe('none');
  });

  it('rejects nonsense options', () => {
    expect(() => new TemplateMiner({ threshold: 2 })).toThrow(RangeError);
    expect(() => new TemplateMiner({ maxTemplates: 0 })).toThrow(RangeError);
  });
});

describe('lookup that does not grow with the template count', () => {
  // A deterministic stream with many templates: words drawn from a small vocabulary (so templates
  // share positions and merge) and from a large one (so most lines start a template of their own),
  // the first token often overflowing maxChildren into the `<*>` branch.
  function* stream(n: number, seed = 7): Generator<string> {
    let x = seed;
    const rnd = () => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x / 2 ** 32;
    };
    const small = ['link', 'up', 'down', 'eth0', 'user=root', 'user=news', 'uid=0', '(ok)', 'port', 'x'];
    const word = () =>
      rnd() < 0.5
        ? small[Math.floor(rnd() * small.length)]!
        : `w${Math.floor(rnd() * 1e6)
            .toString(36)
            .replace(/\d/g, 'q')}`;
    for (let i = 0; i < n; i++) {
      const len = 1 + Math.floor(rnd() * 6);
      const t: string[] = [];
      for (let k = 0; k < len; k++) t.push(rnd() < 0.15 ? String(Math.floor(rnd() * 1000)) : word());
      yield t.join(' ');
    }
  }

  it('the index gives the same templates and ids as a scan of every template (Drain)', () => {
    const indexed = new TemplateMiner({ indexAt: 1, maxTemplates: 500 });
    const scanned = new TemplateMiner({ indexAt: Number.POSITIVE_INFINITY, maxTemplates: 500 });
    let n = 0;
    for (const l of stream(6000)) {
      const a = indexed.add(l);
      const b = scanned.add(l);
      expect([a.templateId, a.template, a.params, a.change], `line ${n}: ${l}`).toEqual([
        b.templateId,
        b.template,
        b.params,
        b.change,
      ]);
      n++;
    }
    expect(indexed.stats().evicted).toBeGreaterThan(0);
    expect(indexed.templates()).toEqual(scanned.templates());
    // and the index compared fewer templates for the same answers
    expect(indexed.stats().compared).toBeLessThan(scanned.stats().compared);
  });

  it('templates compared per new line stay flat while the miner fills up', () => {
    const miner = new TemplateMiner({ maxTemplates: 20_000 });
    const perLine: number[] = [];
    let last = 0;
    let i = 0;
    for (const l of stream(40_000, 11)) {
      miner.add(l);
      if (++i % 10_000 === 0) {
        const c = miner.stats().compared;
        perLine.push((c - last) / 10_000);
        last = c;
      }
    }
    expect(miner.size).toBeGreaterThan(10_000);
    // the last quarter (10k+ templates held) compares no more per line than twice the first
    expect(perLine[3]!).toBeLessThan(2 * perLine[0]! + 1);
  });

  it('a token too long or holding an undecodable byte is a value: random bytes make no templates', () => {
    expect(masked(`key=${'a'.repeat(65)} ${'b'.repeat(64)}`)).toBe(`<*> ${'b'.repeat(64)}`);
    expect(masked('bad \ufffd\ufffdbytes and \u0001control')).toBe('bad <*> and <*>');
    const miner = new TemplateMiner();
    let x = 1;
    for (let i = 0; i < 2000; i++) {
      let s = '';
      for (let k = 0; k < 200; k++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        const c = x >>> 24;
        // what random bytes decode to: every byte past ASCII an undecodable U+FFFD (mostly)
        s += c < 128 ? String.fromCharCode(c === 10 ? 11 : c) : '\ufffd';
      }
      miner.add(s);
    }
    // 2000 lines; without the rule every line is a template of its own
    expect(miner.size).toBeLessThan(50);
  });
});

describe('high-entropy input costs a bounded miner', () => {
  /** n lines of 120 printable ASCII characters from a seeded generator (what `bench ingest` feeds) */
  function* randomAscii(n: number, seed = 3): Generator<string> {
    let x = seed;
    for (let i = 0; i < n; i++) {
      let s = '';
      for (let k = 0; k < 120; k++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        s += String.fromCharCode(32 + ((x >>> 16) % 95));
      }
      yield s;
    }
  }

  /** real kernel-log lines: the family fixtures, the UFW samples, Thunderbird's, the demo stream */
  function normalLog(): string[] {
    const read = (f: string) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .filter((l) => l.trim().length > 0);
    const demo = new DemoLog({ seed: 18, now: () => Date.UTC(2026, 10, 30, 10) });
    return [
      ...read(fileURLToPath(new URL('fixtures/families.txt', import.meta.url))),
      ...read(UFW_SAMPLES),
      ...read(fixture('loghub-hpc/Thunderbird_sample.log')),
      ...Array.from({ length: 2000 }, () => demo.next()),
    ];
  }

  const mine = (miner: TemplateMiner, lines: string[]) => {
    const now = Date.UTC(2026, 10, 30);
    return lines.map((l) => {
      const r = miner.add(parseLine(l, { host: 'h', now }).message);
      return [r.templateId, r.template, r.params.join('\u0001')].join('\t');
    });
  };

  it('a token of both cases and rare symbols that keeps switching class is a value; words stay', () => {
    expect(masked("x kV=@('7[3(8|@>S[{ q")).toBe('x <*> q');
    expect(masked('Rq#x!Lm?Ta$Wb')).toBe('<*>');
    // words and structures of real logs keep their masked form
    expect(masked("XSAVE feature 0x100: 'Hi16_ZMM' <giometti@linux.it>")).toBe(
      "XSAVE feature <*>: '<*>' <giometti@linux.it>",
    );
    expect(masked('xapi: [error|xen3|15|Guest liveness monitor D:bca30ab3f1c1|master_connection]')).toBe(
      'xapi: [error|<*>|<*>|Guest liveness monitor D:<*>|master_connection]',
    );
    expect(masked('eventID="1011"][examplePriority@32473 profile="/usr/sbin/cupsd"')).toBe(
      'eventID="<*>"][examplePriority@<*> profile="<*>"',
    );
  });

  it('100k random printable lines: templates, cache and tree stay bounded, every line counted', () => {
    const maxTemplates = 500;
    const miner = new TemplateMiner({ maxTemplates });
    let created = 0;
    let n = 0;
    for (const l of randomAscii(100_000)) {
      const r = miner.add(l);
      if (r.change === 'new') created++;
      n++;
      if (n % 10_000 === 0) expect(miner.size).toBeLessThanOrEqual(maxTemplates);
    }
    const st = miner.stats();
    // nothing dropped silently: every template made is held or counted as evicted
    expect(created).toBe(st.templates + st.evicted);
    expect(st.evicted).toBeGreaterThan(0);
    // lines whose masked form never comes back do not enter the exact-match cache
    expect(st.cached).toBeLessThan(5_000);
    expect(st.nodes).toBeLessThan(3 * maxTemplates);
    // most lines are noise through and through: they share the few all-`<*>` templates
    const noise = miner
      .templates()
      .filter((t) => t.template.split(' ').every((w) => w === WILDCARD))
      .reduce((a, t) => a + t.count, 0);
    expect(noise).toBeGreaterThan(60_000);
  });

  it("a normal log's templates, ids and parameters are the same after a burst of junk", () => {
    const lines = normalLog();
    const clean = mine(new TemplateMiner(), [...lines, ...lines]);
    const miner = new TemplateMiner();
    const before = mine(miner, lines);
    for (const l of randomAscii(30_000, 5)) miner.add(l);
    const saved = miner.toJSON();
    const after = mine(miner, lines);
    expect([...before, ...after]).toEqual(clean);
    // and its saved state, junk templates included, loads and mines the log the same way
    expect(mine(TemplateMiner.fromJSON(saved), lines)).toEqual(after);
  });
});
