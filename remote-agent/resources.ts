// What the agent's host offers: CPUs, memory, and GPUs as nvidia-smi reports them. GPUs are read from
// nvidia-smi's CSV output (the same on every driver version since 2012), so tests use a fake nvidia-smi script
// and real hosts the real one; a host without it simply has no GPUs.

import { execFile } from 'node:child_process';
import * as os from 'node:os';

import type { GpuInfo, Resources } from '../protocol/messages';

const GPU_QUERY = ['--query-gpu=index,name,memory.total,memory.used,utilization.gpu', '--format=csv,noheader,nounits'];

/** Parses `nvidia-smi --query-gpu=index,name,memory.total,memory.used,utilization.gpu --format=csv,noheader,nounits`. */
export function parseNvidiaSmi(csv: string): GpuInfo[] {
  return csv
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((line) => {
      const fields = line.split(',').map((field) => field.trim());
      if (fields.length !== 5) throw new Error(`unexpected nvidia-smi line: ${JSON.stringify(line)}`);
      const [index, name, total, used, utilization] = fields as [string, string, string, string, string];
      return {
        index: Number(index),
        name,
        memoryTotalMb: numberOrNull(total),
        memoryUsedMb: numberOrNull(used),
        utilizationPercent: numberOrNull(utilization),
      };
    });
}

/** "[N/A]" and friends become null: some GPUs (and MIG slices) do not report every field. */
function numberOrNull(field: string): number | null {
  const value = Number(field);
  return field !== '' && Number.isFinite(value) ? value : null;
}

/** Runs nvidia-smi; no binary means no GPUs (not an error), any other failure is reported in `gpuError`. */
export function readGpus(nvidiaSmi: string): Promise<{ gpus: GpuInfo[]; gpuError?: string }> {
  return new Promise((resolve) => {
    execFile(nvidiaSmi, GPU_QUERY, { timeout: 5_000 }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') return resolve({ gpus: [] });
      if (error) return resolve({ gpus: [], gpuError: `${nvidiaSmi} failed: ${stderr.trim() || error.message}` });
      try {
        resolve({ gpus: parseNvidiaSmi(stdout) });
      } catch (parseError) {
        resolve({ gpus: [], gpuError: (parseError as Error).message });
      }
    });
  });
}

/** How long one nvidia-smi reading answers status requests. */
const GPU_READING_TTL_MS = 2_000;

/**
 * nvidia-smi for status requests: one run at a time, shared by every request that arrives meanwhile, and its
 * reading reused for GPU_READING_TTL_MS, so a burst of status requests cannot start a burst of processes.
 */
export class GpuReader {
  private reading: Promise<{ gpus: GpuInfo[]; gpuError?: string }> | null = null;
  private readAt = -Infinity;

  constructor(private readonly nvidiaSmi: string) {}

  read(): Promise<{ gpus: GpuInfo[]; gpuError?: string }> {
    if (this.reading && performance.now() - this.readAt < GPU_READING_TTL_MS) return this.reading;
    const reading = readGpus(this.nvidiaSmi).finally(() => {
      if (this.reading === reading) this.readAt = performance.now(); // the reading's age counts from its end
    });
    this.reading = reading;
    this.readAt = Infinity; // in flight: shared, whatever its age
    return reading;
  }
}

export async function readResources(gpus: GpuReader): Promise<Resources> {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    loadAverage: os.loadavg().map((load) => Math.round(load * 100) / 100),
    memoryTotalMb: Math.round(os.totalmem() / 1024 / 1024),
    memoryFreeMb: Math.round(os.freemem() / 1024 / 1024),
    ...(await gpus.read()),
  };
}
