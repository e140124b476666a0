// learners/: TensorFlow.js online learners that turn KernelEvents (and drone/webcam records) into
// AnalyticsVariables within each variable's declared envelope (docs/design.md §7).
// Owns: the learner framework (declarations, emission gate, pins, snapshots, tfjs file IO), the six
// learners, and the learn stage. Imports: schemas/, bus/, runtime/, ingest/ (the consumer stage).

export { AnomalyLearner, type AnomalyOptions, type ScoredWindow } from './anomaly.ts';
export { type Backend, loadBackend } from './backend.ts';
export { STATE_TOPIC } from './changelog.ts';
export {
  DEFAULT_DRONE_PARAMS,
  type DroneCommand,
  type DroneInput,
  DroneLearner,
  type DroneMemory,
  type DroneParams,
  decide,
} from './drone.ts';
export {
  type DeclaredVariable,
  EmissionGate,
  OPERATOR,
  operatorVariable,
  type VariableState,
  type Verdict,
} from './gate.ts';
export {
  createLearnerHost,
  type LearnerHost,
  type LearnerHostOptions,
  type LearnerHostStats,
  type SnapshotAttachment,
} from './host.ts';
export { CLUSTER_HOST, LoadLearner, parseLoadLine } from './load.ts';
export { fileIO, ModelFileError, registerFileRouter } from './model-io.ts';
export { FEATURES as NETBW_FEATURES, NetbwLearner } from './netbw.ts';
export {
  checkPin,
  decodePinMessage,
  encodePinMessage,
  PINS_TOPIC,
  PINS_TOPIC_SPEC,
  type PinDiff,
  type PinEntry,
  PinFile,
  PinFileError,
  Pins,
  PinValueError,
  publishPin,
  publishUnpin,
  whoAmI,
} from './pins.ts';
export {
  declaredVariables,
  INPUTS,
  LEARNER_NAMES,
  type LearnerName,
  learnerNames,
  UnknownLearnerError,
} from './registry.ts';
export { currentSnapshot } from './snapshot.ts';
export {
  GUARANTEES,
  type Guarantee,
  type LearnStage,
  type LearnStageOptions,
  type LearnStageStats,
  startLearnStage,
} from './stage.ts';
export type { Learner, LearnerContext, Proposal, Tf, VariableDecl, VarType } from './types.ts';
export { UFW_MODEL, UfwLearner, ufwFields } from './ufw.ts';
export { HOST_RE, KEY_RE, normalise, splitHostKey, ValueError, variableMessage } from './variables.ts';
export { bestThreshold, EnrolmentError, WebcamLearner } from './webcam.ts';
export { Rng, SlidingCounter } from './window.ts';
