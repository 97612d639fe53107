// One detached job on disk, under WORKDIR/jobs/<id>/: `meta.json` (its description and owner, rewritten whole on
// each change), `output.jsonl` and `output.old.jsonl` (one `[stream, text]` line per write, `["display", content]`
// per display; the old file is the
// previous half of the newest --job-output-mb, see detached-job.ts) and, once it succeeded, `result.bin` (its result
// frames). What an agent restart finds there is the job as it last was.

import * as fs from 'node:fs';
import * as path from 'node:path';

import type { DetachedJobInfo } from '../../protocol/job-messages';
import { DisplayContent } from '../../protocol/messages';
import { compile } from '../../protocol/schema';

export interface JobMeta extends DetachedJobInfo {
  /** The key that started it (Z85), or `local` on an agent without keys. */
  owner: string;
  snapshot: string | null;
  /** When its result or error was last handed to a client. */
  fetchedAt: number | null;
}

export type Stream = 'stdout' | 'stderr';
/** Text the job wrote, or a display it made. */
export type OutputLine = [Stream, string] | ['display', DisplayContent];

const DISPLAY_CHECK = compile(DisplayContent);

/** What a line takes of the output bound: its text's bytes, or its display's JSON size. */
export function lineBytes(line: OutputLine): number {
  return Buffer.byteLength(line[0] === 'display' ? JSON.stringify(line[1]) : line[1]);
}

export class JobFiles {
  constructor(
    readonly dir: string,
    readonly log: (line: string) => void,
  ) {}

  static create(root: string, id: string, log: (line: string) => void): JobFiles {
    const files = new JobFiles(path.join(root, id), log);
    fs.mkdirSync(files.dir, { recursive: true, mode: 0o700 });
    return files;
  }

  writeMeta(meta: JobMeta): void {
    const file = path.join(this.dir, 'meta.json');
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(meta));
    fs.renameSync(`${file}.tmp`, file);
  }

  readMeta(): JobMeta {
    return JSON.parse(fs.readFileSync(path.join(this.dir, 'meta.json'), 'utf8')) as JobMeta;
  }

  appendOutput(lines: readonly OutputLine[]): void {
    if (lines.length === 0) return;
    fs.appendFileSync(this.outputFile, lines.map((line) => `${JSON.stringify(line)}\n`).join(''));
  }

  /** Both output files, oldest first. */
  readOutput(): OutputLine[] {
    return [...readLines(this.oldOutputFile), ...readLines(this.outputFile)];
  }

  /** The current output file becomes the old one (the old one goes). */
  rotateOutput(): void {
    fs.renameSync(this.outputFile, this.oldOutputFile);
  }

  writeResult(frames: readonly Uint8Array[]): void {
    const header = Buffer.alloc(4 + 4 * frames.length);
    header.writeUInt32BE(frames.length, 0);
    frames.forEach((frame, i) => header.writeUInt32BE(frame.byteLength, 4 + 4 * i));
    const file = path.join(this.dir, 'result.bin');
    fs.writeFileSync(`${file}.tmp`, Buffer.concat([header, ...frames]));
    fs.renameSync(`${file}.tmp`, file);
  }

  readResult(): Buffer[] {
    const data = fs.readFileSync(path.join(this.dir, 'result.bin'));
    const count = data.readUInt32BE(0);
    const frames: Buffer[] = [];
    let offset = 4 + 4 * count;
    for (let i = 0; i < count; i++) {
      const length = data.readUInt32BE(4 + 4 * i);
      frames.push(data.subarray(offset, offset + length));
      offset += length;
    }
    if (offset !== data.length)
      throw new Error(`${this.dir}/result.bin is damaged: ${data.length} bytes, expected ${offset}`);
    return frames;
  }

  /** Bytes the job holds on disk. */
  size(): number {
    let total = 0;
    for (const name of safeReaddir(this.dir)) {
      try {
        total += fs.statSync(path.join(this.dir, name)).size;
      } catch {
        // removed meanwhile
      }
    }
    return total;
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private get outputFile(): string {
    return path.join(this.dir, 'output.jsonl');
  }

  private get oldOutputFile(): string {
    return path.join(this.dir, 'output.old.jsonl');
  }
}

function readLines(file: string): OutputLine[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .flatMap((line) => {
      try {
        return [outputLine(JSON.parse(line))];
      } catch {
        return []; // a line cut short by a crash, or not one of ours
      }
    });
}

export function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function outputLine(parsed: unknown): OutputLine {
  if (!Array.isArray(parsed) || parsed.length !== 2) throw new TypeError('not an output line');
  const [kind, body] = parsed as [unknown, unknown];
  if ((kind === 'stdout' || kind === 'stderr') && typeof body === 'string') return [kind, body];
  if (kind === 'display' && DISPLAY_CHECK.Check(body)) return [kind, body];
  throw new TypeError('not an output line');
}
