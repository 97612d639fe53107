// The client library's public vocabulary: how to connect, where and how a job runs, what an upload reports. The
// defaults every connection starts from live here too.

import type { DisplayContent, JobOptions } from '../../protocol/messages';

export interface ConnectOptions {
  /** How long to wait for the agent's welcome. */
  connectTimeoutMs?: number;
  /** How often to ping the agent. */
  heartbeatMs?: number;
  /** Pending requests fail when the connection to the agent has been down this long. */
  heartbeatTimeoutMs?: number;
  /**
   * Calls are told (a stderr line) when the agent has said nothing, pongs included, for this long although the
   * connection is up: it may be stuck. Not a failure: a large result on a slow link also silences it.
   */
  silenceNoticeMs?: number;
  /**
   * Pending requests fail AGENT_UNREACHABLE when the agent has said nothing, pongs included, for this long although
   * the connection is up: a frozen or partitioned host that TCP has not noticed yet. Off by default, since a result
   * larger than this long's worth of the link also silences the agent; a pool sets it (15 s) to move work on.
   */
  silenceTimeoutMs?: number;
  /**
   * A call whose signal aborted is cancelled on the agent; when the agent does not acknowledge the cancel within
   * this long (stuck, or cut off), the call stops waiting and fails CANCELLED at once.
   */
  cancelAckMs?: number;
  /** Fixed routing id, so a reconnecting kernel is the same client to the agent. */
  routingId?: string;
  /** Shown in the agent's log. */
  clientName?: string;
  /** CurveZMQ: the agent's public key and this client's key pair (Z85); required for agents serving with --keys. */
  curve?: ClientCurve;
  /** Gives up waiting for the welcome: the half-made socket is closed and connect rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface ClientCurve {
  serverKey: string;
  publicKey: string;
  secretKey: string;
}

/** Where and how a job runs, for `start` and `call` alike. */
export interface JobSettings {
  /** Snapshot to run in (uploaded first with `upload`); null runs outside any snapshot. */
  snapshot?: string | null;
  /** Shown as the job's file name in remote stacks. */
  filename?: string;
  timeoutMs?: JobOptions['timeoutMs'];
  worker?: JobOptions['worker'];
  /** The job's working directory, relative to the snapshot root (the notebook's directory). */
  cwd?: JobOptions['cwd'];
  onOutput?: (stream: 'stdout' | 'stderr', text: string) => void;
  /** Rich output (tslab's display API on the agent). Without it, a display's text/plain goes to onOutput. */
  onDisplay?: (display: DisplayContent) => void;
  /**
   * Aborted before the job is sent, it is not sent and its result rejects with an AbortError; after, the job is
   * cancelled on the agent (its result rejects with CANCELLED, unless it already ended).
   */
  signal?: AbortSignal;
}

export interface JobRequest extends JobSettings {
  /** A JavaScript function expression; it is called with `args` on the agent. */
  source: string;
  args?: unknown[];
}

export interface CallOptions extends JobSettings {
  /** The notebook's locals (tslab's executor.locals): a cell function's free `exports.X` read from them. */
  locals?: Record<string, unknown>;
  /** Absolute code root: modules inside it travel as requires of their path inside the snapshot. */
  codeRoot?: string;
  /** First segment of pickling error paths; default the function's name. */
  label?: string;
  /** A package whose version on the agent differs from the notebook's (shown once per package). */
  onVersionMismatch?: (pkg: string, local: string, remote: string | undefined) => void;
}

export interface RunningJob<T> {
  readonly id: string;
  readonly result: Promise<T>;
  cancel(): Promise<void>;
}

export interface UploadProgress {
  /** Bytes of file content sent so far and in all, for this upload. */
  sentBytes: number;
  totalBytes: number;
  /** Files in the batch just sent. */
  files: number;
}

export interface UploadOptions {
  onProgress?: (progress: UploadProgress) => void;
  /** Content bytes per archive; default UPLOAD_BATCH_BYTES. */
  batchBytes?: number;
  /**
   * Stops the transfer before its next request (an archive already handed over still travels) and rejects with an
   * AbortError. Concurrent uploads of one snapshot share one transfer, and so the signal of the first; an upload
   * asked for after that signal aborted starts a transfer of its own.
   */
  signal?: AbortSignal;
}

/** Big enough that per-request overhead vanishes, small enough for progress to move every fraction of a second. */
export const UPLOAD_BATCH_BYTES = 8 * 1024 * 1024;

export interface UploadReport {
  snapshot: string;
  /** Files the agent lacked and that were sent. */
  filesSent: number;
  bytesSent: number;
}

export const CONNECT_DEFAULTS = {
  connectTimeoutMs: 10_000,
  heartbeatMs: 1_000,
  heartbeatTimeoutMs: 10_000,
  silenceNoticeMs: 30_000,
  cancelAckMs: 5_000,
};

/** A connection's settings: the defaults, overridden by what connect() was given. */
export type ClientSettings = typeof CONNECT_DEFAULTS & Omit<ConnectOptions, 'signal'>;
