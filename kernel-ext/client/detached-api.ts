// `detach`, `jobs`, `attach` and `cancel` of `tslab-remote/client`: detached jobs as functions of a connection, for
// scripts (the same as AgentClient's detach, detachedJobs, attach and cancelDetached).

import type { DetachedJobInfo } from '../../protocol/job-messages';
import type { AgentClient } from './agent-client';
import type { CallOptions } from './client-options';
import type { AttachOptions } from './detached';

export function detach(
  client: AgentClient,
  fn: Function,
  args: readonly unknown[],
  options: CallOptions & { name?: string } = {},
): Promise<DetachedJobInfo> {
  return client.detach(fn, args, options);
}

export function jobs(client: AgentClient): Promise<DetachedJobInfo[]> {
  return client.detachedJobs();
}

export function attach<T = unknown>(
  client: AgentClient,
  job: string,
  options: AttachOptions & Pick<CallOptions, 'codeRoot'> = {},
): Promise<T> {
  return client.attach<T>(job, options);
}

export function cancel(client: AgentClient, job: string): Promise<DetachedJobInfo> {
  return client.cancelDetached(job);
}
