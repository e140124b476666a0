// The changelog's names and keys (learners/changelog.ts, docs/design.md §7.6), no broker: one
// topic per group and log topic, keys of chunks parsed back, the shared parts' prefix not a host.
import { describe, expect, it } from 'vitest';
import { parseStateKey, SHARED_PREFIX, STATE_TOPIC, stateTopicFor } from '../../learners/changelog.ts';

describe('learner-state changelog names', () => {
  it('one topic per consumer group and log topic; the defaults keep virgo.learner-state', () => {
    expect(stateTopicFor('virgo.kernel-logs', 'virgo-learners')).toBe(STATE_TOPIC);
    expect(stateTopicFor('virgo.kernel-logs', 'team-a')).toBe('virgo.learner-state.team-a');
    expect(stateTopicFor('edge.logs', 'virgo-learners')).toBe('virgo.learner-state.virgo-learners.edge.logs');
    // a group id may hold what a topic name cannot
    expect(stateTopicFor('virgo.kernel-logs', 'site/a b')).toBe('virgo.learner-state.site_a_b');
    expect(stateTopicFor('virgo.kernel-logs', 'g'.repeat(400)).length).toBe(249);
  });

  it('reads a part and its chunks from a key, and refuses what is not one', () => {
    expect(parseStateKey('node-1/ufw')).toEqual({ host: 'node-1', part: 'ufw', chunk: 0 });
    expect(parseStateKey('node-1/model#2')).toEqual({ host: 'node-1', part: 'model', chunk: 2 });
    expect(parseStateKey(`${SHARED_PREFIX}abc/netbw`)).toEqual({ host: '~abc', part: 'netbw', chunk: 0 });
    for (const bad of ['', 'no-slash', '/ufw', 'h/ufw#0', 'h/ufw#x'])
      expect(parseStateKey(bad)).toBeUndefined();
  });
});
