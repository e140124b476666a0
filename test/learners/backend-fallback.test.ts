// The wasm backend's files missing (a broken or partial install): the learners fall back to the
// pure-JS cpu backend and say why. Its own file: tfjs keeps a failed backend for the process.
import { describe, expect, it } from 'vitest';
import { loadBackend } from '../../learners/backend.ts';

describe('tfjs backend fallback', () => {
  it('uses cpu when the wasm files are not where they should be', async () => {
    process.env.VIRGO_TF_BACKEND = 'wasm';
    process.env.VIRGO_TF_WASM_DIR = '/nonexistent/tfjs-wasm';
    try {
      const b = await loadBackend();
      expect(b.name).toBe('cpu');
      expect(b.tf.getBackend()).toBe('cpu');
      expect(b.skipped.map((s) => s.name)).toEqual(['wasm']);
      expect(b.skipped[0]!.reason).toMatch(/\/nonexistent\/tfjs-wasm/);
      expect(Array.from(b.tf.add(b.tf.scalar(1), b.tf.scalar(2)).dataSync())).toEqual([3]);
    } finally {
      delete process.env.VIRGO_TF_BACKEND;
      delete process.env.VIRGO_TF_WASM_DIR;
    }
  });
});
