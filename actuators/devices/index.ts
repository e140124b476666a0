// actuators/devices/: device models that act on analytics variables: the PXRC drone (a
// deterministic flight simulation steered by pxrc.throttle|brake|yaw) and the UVC webcam (acts on
// match=True|False). Both reply asynchronously to the VIRGO queue. Imports: bus/, schemas/,
// runtime/, ../drivers/ (variables, line client).

export { gaussian, seededRandom, uniform } from '../../runtime/rng.ts';
export { type ClosedLoopOptions, type Command, type FlightReport, runClosedLoop } from './drone-loop.ts';
export {
  bearing,
  type Course,
  type CourseOptions,
  DEFAULT_DRONE,
  type DroneControls,
  type DroneParams,
  DroneSim,
  type DroneState,
  type DroneStatus,
  generateCourse,
  type Obstacle,
  type Point,
  rayCircle,
  rayWalls,
  type Senses,
  wrapAngle,
} from './drone-sim.ts';
export { DEFAULT_DEVICE_IDS, DEVICE_NAMES, type DeviceName } from './ids.ts';
export {
  type ControlRead,
  FAILSAFE,
  PXRC_VARS,
  PxrcDrone,
  type PxrcDroneOptions,
  type PxrcStats,
  readControls,
} from './pxrc.ts';
export { OrderedSender, type ReplySink, type SenderStats, TcpQueueSink } from './reply-sink.ts';
export {
  type Subject,
  UVC_VARS,
  UvcWebcam,
  type UvcWebcamOptions,
  type WebcamAction,
  type WebcamActionEvent,
} from './uvc-webcam.ts';
