// Tail probabilities in nats against closed forms, and the level of a line when the parser had
// none: the anomaly learner's evidence is only as good as these.
import { describe, expect, it } from 'vitest';
import { lexicalSeverity, severityOf, severityWeight } from '../../learners/severity.ts';
import {
  countSurprise,
  gammaPoissonSurprise,
  logGamma,
  MAX_SURPRISE,
  normalSurprise,
  poissonSurprise,
} from '../../learners/tail.ts';
import { ev } from '../helpers/events.ts';

const p = (nats: number) => Math.exp(-nats);

describe('tail surprises', () => {
  it('match closed forms', () => {
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 12);
    expect(logGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 12);
    // P(Poisson(2) >= 3) = 1 - e^-2 (1 + 2 + 2)
    expect(p(poissonSurprise(3, 2))).toBeCloseTo(1 - Math.exp(-2) * 5, 12);
    expect(p(poissonSurprise(1, 0.01))).toBeCloseTo(1 - Math.exp(-0.01), 12);
    // negative binomial with shape 1 is geometric: P(X >= m) = q^m, q = mean / (1 + mean)
    expect(p(countSurprise(3, 2, 6))).toBeCloseTo((2 / 3) ** 3, 12);
    expect(countSurprise(100, 2, 6)).toBeCloseTo(-100 * Math.log(2 / 3), 9);
    expect(p(gammaPoissonSurprise(3, 1, 2))).toBeCloseTo((2 / 3) ** 3, 12);
    // the Gamma-Poisson predictive with shape r is the negative binomial of variance mean + mean²/r
    expect(gammaPoissonSurprise(4, 5, 3)).toBeCloseTo(countSurprise(4, 3, 3 + 9 / 5), 9);
    // and tends to the Poisson as the shape grows
    expect(gammaPoissonSurprise(10, 1e7, 2)).toBeCloseTo(poissonSurprise(10, 2), 4);
    expect(p(normalSurprise(3))).toBeCloseTo(0.0013499, 6);
  });

  it('stays finite and ordered far in the tail', () => {
    expect(poissonSurprise(60, 0.5)).toBe(MAX_SURPRISE);
    expect(poissonSurprise(0, 0.5)).toBe(0);
    expect(countSurprise(30, 1, 2)).toBeGreaterThan(countSurprise(20, 1, 2));
    // fractional (decayed) counts interpolate between their integers
    const s = gammaPoissonSurprise(2.5, 3, 1);
    expect(s).toBeGreaterThan(gammaPoissonSurprise(2, 3, 1));
    expect(s).toBeLessThan(gammaPoissonSurprise(3, 3, 1));
  });
});

describe('line severity', () => {
  it('takes the parsed level, else the words printk messages use', () => {
    expect(severityOf(ev('h', 0, 'EXT4-fs error (device sda1)', { severity: 6 }))).toBe(6);
    expect(lexicalSeverity('BUG: unable to handle kernel NULL pointer dereference at 0000000000000008')).toBe(
      2,
    );
    expect(lexicalSeverity('Kernel panic - not syncing: Fatal exception')).toBe(2);
    expect(lexicalSeverity('EXT4-fs error (device sda1): ext4_find_entry:1455')).toBe(3);
    expect(lexicalSeverity('ata1.00: failed command: READ FPDMA QUEUED')).toBe(3);
    expect(lexicalSeverity('Out of memory: Killed process 123 (java)')).toBe(3);
    expect(lexicalSeverity('WARNING: CPU: 0 PID: 1 at kernel/fork.c:1 x')).toBe(4);
    expect(lexicalSeverity('usb 1-1: new high-speed USB device number 5 using xhci_hcd')).toBeNull();
    expect(lexicalSeverity('BUGS fixed: terrorist-free errorless')).toBeNull();
    expect(severityWeight(2)).toBe(1);
    expect(severityWeight(3)).toBe(1);
    expect(severityWeight(4)).toBe(0.5);
    expect(severityWeight(6)).toBe(0);
    expect(severityWeight(null)).toBe(0);
  });
});
