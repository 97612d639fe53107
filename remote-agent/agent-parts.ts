// What an agent is made of: the snapshot store, the ZAP handler, the bound ROUTER, the worker pool and the detached
// jobs, opened in that order (the ZAP handler before the socket that consults it; the workers started before the
// agent answers anyone), with the ones already open closed again when a later one fails.

import * as os from 'node:os';
import * as path from 'node:path';
import * as zmq from 'zeromq';

import { AgentError } from '../protocol/errors';
import { AgentOptions, agentLimits, routerOptions } from './agent-options';
import { DEFAULT_DETACHED_LIMITS, DetachedJobs } from './detached/detached-jobs';
import { WorkerPool } from './pool/worker-pool';
import { DEFAULT_STORE_LIMITS, SnapshotStore } from './store/snapshot-store';
import { ZapHandler } from './zap';

export interface AgentParts {
  store: SnapshotStore;
  zap: ZapHandler | undefined;
  router: zmq.Router;
  /** The endpoint the router bound (a port picked for tcp://…:*). */
  endpoint: string;
  pool: WorkerPool;
  detached: DetachedJobs;
}

/** Opens the parts of an agent whose workdir (locked by the caller) is `workdir`. */
export async function openAgentParts(options: AgentOptions, workdir: string): Promise<AgentParts> {
  const log = options.log ?? (() => undefined);
  const limits = agentLimits(options);
  const store = await SnapshotStore.open({
    ...DEFAULT_STORE_LIMITS,
    diskBudgetBytes: options.limits?.diskBudgetBytes ?? DEFAULT_STORE_LIMITS.diskBudgetBytes,
    maxArchiveBytes: limits.maxArchiveBytes,
    maxFileBytes: limits.maxFileBytes,
    maxSnapshotBytes: limits.maxSnapshotBytes,
    maxFiles: limits.maxFiles,
    workdir,
    compileCacheDir: path.join(workdir, 'compiled'),
    log,
  });
  const zap = options.curve ? await ZapHandler.start(options.curve.allowedClientKeys, log) : undefined;
  const router = new zmq.Router(routerOptions(limits, options.curve));
  let endpoint: string;
  try {
    await router.bind(options.bind);
    endpoint = router.lastEndpoint ?? options.bind;
  } catch (error) {
    router.close();
    await zap?.close();
    throw new AgentError('INTERNAL', `cannot bind ${options.bind}: ${(error as Error).message}`);
  }
  const pool = new WorkerPool({
    size: options.gpus?.length ?? options.workers,
    gpus: options.gpus,
    runDir: path.join(workdir, 'run'),
    snapshotsRoot: store.snapshotsRoot,
    compileCacheDir: path.join(workdir, 'compiled'),
    nodePaths: options.nodePaths,
    agentName: `${os.hostname()} (${endpoint})`,
    graceMs: options.cancelGraceMs,
    maxOldSpaceMb: options.workerMaxOldSpaceMb,
    log,
    onInUseChange: (worker, snapshots) => store.setInUse(`worker-${worker}`, snapshots),
  });
  try {
    await pool.start();
  } catch (error) {
    router.close();
    await zap?.close();
    await pool.stop();
    throw error;
  }
  const detached = new DetachedJobs({
    ...DEFAULT_DETACHED_LIMITS,
    ...options.detached,
    root: path.join(workdir, 'jobs'),
    log,
  });
  return { store, zap, router, endpoint, pool, detached };
}
