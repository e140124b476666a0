// The learners by name, and every variable they declare (known without loading tfjs, so `virgo
// pin` can check a pinned value against its declaration in a blink).
import { ANOMALY_VARIABLES, createAnomalyLearner } from './anomaly.ts';
import { createDroneLearner, DRONE_VARIABLES } from './drone.ts';
import type { DeclaredVariable } from './gate.ts';
import { createLoadLearner, LOAD_VARIABLES } from './load.ts';
import { createNetbwLearner, NETBW_VARIABLES } from './netbw.ts';
import type { LearnerFactory, VariableDecl } from './types.ts';
import { createUfwLearner, UFW_VARIABLES } from './ufw.ts';
import { checkDeclaration, DeclarationError } from './variables.ts';
import { createWebcamLearner, WEBCAM_VARIABLES } from './webcam.ts';

export const LEARNER_NAMES = ['ufw', 'netbw', 'anomaly', 'load', 'drone', 'webcam'] as const;
export type LearnerName = (typeof LEARNER_NAMES)[number];

export const FACTORIES: Record<LearnerName, LearnerFactory> = {
  ufw: createUfwLearner,
  netbw: createNetbwLearner,
  anomaly: createAnomalyLearner,
  load: createLoadLearner,
  drone: createDroneLearner,
  webcam: createWebcamLearner,
};

/** Which learners read which input, so a host subscribes only to what it needs. */
export const INPUTS: Record<LearnerName, 'kernel' | 'drone' | 'webcam'> = {
  ufw: 'kernel',
  netbw: 'kernel',
  anomaly: 'kernel',
  load: 'kernel',
  drone: 'drone',
  webcam: 'webcam',
};

const STATIC: Record<LearnerName, readonly VariableDecl[]> = {
  ufw: UFW_VARIABLES,
  netbw: NETBW_VARIABLES(10, 1000),
  anomaly: ANOMALY_VARIABLES,
  load: LOAD_VARIABLES,
  drone: DRONE_VARIABLES,
  webcam: WEBCAM_VARIABLES,
};

export class UnknownLearnerError extends Error {
  override readonly name = 'UnknownLearnerError';
}

export function isLearnerName(s: string): s is LearnerName {
  return (LEARNER_NAMES as readonly string[]).includes(s);
}

/** Validates a list of learner names (from --learners ufw,netbw); all when empty. */
export function learnerNames(list?: readonly string[]): LearnerName[] {
  if (!list || list.length === 0) return [...LEARNER_NAMES];
  const out: LearnerName[] = [];
  for (const raw of list) {
    const n = raw.trim();
    if (!n) continue;
    if (!isLearnerName(n)) {
      throw new UnknownLearnerError(`unknown learner "${n}"; learners: ${LEARNER_NAMES.join(', ')}`);
    }
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

/** Every declared variable by key, with default options (what `virgo pin` checks against). */
export function declaredVariables(
  names: readonly LearnerName[] = LEARNER_NAMES,
): Map<string, DeclaredVariable> {
  return declarationsOf(names.map((n) => ({ name: n, variables: STATIC[n] })));
}

export function declarationsOf(
  learners: readonly { name: string; variables: readonly VariableDecl[] }[],
): Map<string, DeclaredVariable> {
  const out = new Map<string, DeclaredVariable>();
  for (const l of learners) {
    for (const d of l.variables) {
      checkDeclaration(d, l.name);
      const other = out.get(d.key);
      if (other)
        throw new DeclarationError(`variable ${d.key} is declared by both ${other.learner} and ${l.name}`);
      out.set(d.key, { decl: d, learner: l.name });
    }
  }
  return out;
}
