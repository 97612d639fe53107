// `tslab-remote/client` (and the bare `tslab-remote`): the client library for scripts and tests. It needs no tslab:
// connect to an agent, ship a snapshot of a directory, call functions there.
//
//   const { connect, snapshotDirectory } = require('tslab-remote/client');
//   const agent = await connect('tcp://127.0.0.1:5555');
//   const snapshot = await snapshotDirectory(process.cwd());
//   await agent.upload(snapshot);
//   console.log(await agent.call(train, [0.1], { snapshot: snapshot.hash, codeRoot: process.cwd() }).result);
//   await agent.close();

export { connect, AgentClient } from './agent-client';
export { UPLOAD_BATCH_BYTES } from './client-options';
export type {
  CallOptions,
  ClientCurve,
  ConnectOptions,
  JobRequest,
  JobSettings,
  RunningJob,
  UploadOptions,
  UploadProgress,
  UploadReport,
} from './client-options';
export { detach, jobs, attach, cancel } from './detached-api';
export type { AttachOptions } from './detached';
export type { DetachedJobInfo, DetachedState } from '../../protocol/job-messages';
export { startLocalAgent } from './local-agent';
export type { LocalAgent, LocalAgentOptions } from './local-agent';
export { snapshot, snapshotDirectory, findCodeRoot, SnapshotError, DEFAULT_EXCLUDES } from './snapshot';
export type { LocalSnapshot, SnapshotOptions, SnapshotResult } from './snapshot';
export { AbortError } from './abort';
export { PickleError, warmPickler } from './capture';
export { AgentError, RemoteError, ERROR_CODES, isErrorCode } from '../../protocol/errors';
export type { ErrorCode, WireError } from '../../protocol/errors';
export type {
  AgentInfo,
  AgentLimits,
  DisplayContent,
  GpuInfo,
  Resources,
  StatusReply,
  WorkerStatus,
} from '../../protocol/messages';
export { writeKeyPair, readKeyPair, readKeyFile } from '../../common/key-files';
export type { KeyPair } from '../../common/key-files';
export { PACKAGE_VERSION as VERSION } from '../../common/package-info';
export { AgentPool } from './cluster/pool';
export type { AllResult, MapOptions, PoolCallOptions, PoolOptions } from './cluster/pool';
export { MapRun, MapItemError } from './cluster/map-run';
export type { ItemResult, MapProgress } from './cluster/map-run';
export type { AgentListing } from './cluster/pool-agent';
export { launchAgents } from './cluster/launch-agents';
export type { LaunchSpec, LaunchOptions } from './cluster/launch-agents';
export type { AgentEndpoint, LaunchedAgents, SessionCurve } from './cluster/types';
