// The templates each host's lines matched, so a host that moves to another instance brings them:
// template ids are the hash of the template text, the same everywhere, but the prefix tree that
// matches a line to its template is each instance's own, grown from the lines it saw. Adopting
// the texts a host used lets the new instance's miner match that host's lines to the same
// templates (and ids) the old one did. Per host the most recent MAX_PER_HOST distinct templates.
import type { TemplateMiner } from '../ingest/index.ts';
import type { KernelEvent } from '../schemas/index.ts';
import type { HostPart } from './host.ts';

export const MAX_PER_HOST = 1_000;

export class HostTemplates implements HostPart {
  readonly name = 'templates';
  private readonly byHost = new Map<string, Set<string>>();

  /** `miner()`: the miner now (a restored snapshot replaces it) */
  constructor(private readonly miner: () => TemplateMiner) {}

  /** Notes the templates of events handed to the learners (in ingest's turn, with them). */
  note(events: readonly KernelEvent[]): void {
    let host = '';
    let ids: Set<string> | undefined;
    for (const e of events) {
      if (!e.templateId) continue;
      if (e.host !== host || !ids) {
        host = e.host;
        ids = this.byHost.get(host);
        if (!ids) {
          ids = new Set();
          this.byHost.set(host, ids);
        }
      }
      if (ids.has(e.templateId)) continue;
      ids.add(e.templateId);
      if (ids.size > MAX_PER_HOST) ids.delete(ids.values().next().value!);
    }
  }

  get(hosts: ReadonlySet<string>): Map<string, unknown> {
    const out = new Map<string, unknown>();
    const m = this.miner();
    for (const h of hosts) {
      const ids = this.byHost.get(h);
      if (!ids || ids.size === 0) continue;
      // an id given out before its template was generalised resolves to the template now
      const texts = new Set<string>();
      for (const id of ids) {
        const t = m.resolve(id);
        if (t) texts.add(t.template);
      }
      if (texts.size > 0) out.set(h, [...texts].sort());
    }
    return out;
  }

  put(host: string, value: unknown): void {
    if (!Array.isArray(value)) return;
    const m = this.miner();
    const ids = new Set<string>();
    for (const t of value) if (typeof t === 'string') ids.add(m.adopt(t));
    this.byHost.set(host, ids);
  }

  drop(hosts: ReadonlySet<string>): void {
    for (const h of hosts) this.byHost.delete(h);
  }
}
