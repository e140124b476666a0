// `virgo up` in one process: built from the topology (cli/topology/), where each stage is declared.
export {
  type Pipeline,
  type PipelineOptions,
  type SourceKind,
  startPipeline,
} from './topology/index.ts';
