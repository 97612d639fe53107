// Making a snapshot runnable on the agent: ask which files it lacks, send those in archives of about batchBytes
// (so progress moves), ask again if a blob was evicted meanwhile. Concurrent uploads of one snapshot to one agent
// share one transfer; uploads of one snapshot to several agents (a pool) share the archives, built once.

import { RemoteError } from '../../protocol/errors';
import type { AgentLimits, ManifestEntry } from '../../protocol/messages';
import { AbortError } from './abort';
import { UPLOAD_BATCH_BYTES, UploadOptions, UploadReport } from './client-options';
import { checkBound } from './jobs';
import { localError, RequestChannel, unexpected } from './request-channel';
import { LocalSnapshot, zipFiles } from './snapshot';

export class Uploads {
  private readonly transfers = new Map<string, Promise<UploadReport>>();

  constructor(
    private readonly channel: RequestChannel,
    private readonly limits: () => AgentLimits | undefined,
  ) {}

  upload(snapshot: LocalSnapshot, options: UploadOptions = {}): Promise<UploadReport> {
    const shared = this.transfers.get(snapshot.hash);
    if (shared) return shared;
    const upload: Promise<UploadReport> = this.transfer(snapshot, options).finally(() => forget());
    const forget = (): void => {
      if (this.transfers.get(snapshot.hash) === upload) this.transfers.delete(snapshot.hash);
    };
    this.transfers.set(snapshot.hash, upload);
    // An aborted transfer is its caller's: a later caller starts a fresh one rather than share its end.
    options.signal?.addEventListener('abort', forget, { once: true });
    return upload;
  }

  private async transfer(snapshot: LocalSnapshot, options: UploadOptions): Promise<UploadReport> {
    const report: UploadReport = { snapshot: snapshot.hash, filesSent: 0, bytesSent: 0 };
    const checkAborted = (): void => {
      if (options.signal?.aborted)
        throw new AbortError(`stopped uploading snapshot ${snapshot.hash.slice(0, 12)}: aborted`);
    };
    checkAborted();
    let status = await this.snapshotRequest({ type: 'snapshot.check', snapshot: snapshot.hash, files: snapshot.files });
    // A blob the agent reported present may be evicted before the upload lands: ask again, a bounded number of times.
    for (let round = 0; round < 3 && !status.ready; round++) {
      const lacking = new Set(status.missing);
      const toSend = snapshot.files.filter((file) => lacking.has(file.hash));
      const totalBytes = toSend.reduce((sum, file) => sum + file.size, 0);
      let sentBytes = 0;
      for (const batch of batches(toSend, options.batchBytes ?? UPLOAD_BATCH_BYTES)) {
        const archive = await sharedArchive(snapshot, batch);
        checkBound(this.limits(), 'maxArchiveBytes', archive.length, 'the upload archive', '--max-archive-mb');
        checkAborted();
        status = await this.snapshotRequest(
          { type: 'snapshot.upload', snapshot: snapshot.hash, files: snapshot.files },
          archive,
        );
        sentBytes += batch.reduce((sum, file) => sum + file.size, 0);
        report.filesSent += batch.length;
        report.bytesSent += archive.length;
        options.onProgress?.({ sentBytes, totalBytes, files: batch.length });
      }
    }
    if (!status.ready) {
      throw new RemoteError(
        localError(
          'FILES_MISSING',
          `the agent still lacks ${status.missing.length} file(s) of snapshot ${snapshot.hash.slice(0, 12)} after 3 uploads`,
        ),
      );
    }
    return report;
  }

  private async snapshotRequest(
    body: { type: 'snapshot.check' | 'snapshot.upload'; snapshot: string; files: LocalSnapshot['files'] },
    archive?: Buffer,
  ) {
    const reply = await this.channel.request(body, archive ? [archive] : []);
    if (reply.type !== 'snapshot.status') throw unexpected(reply);
    return reply;
  }
}

/** Archives built lately, by snapshot and files: agents of a pool that lack the same files get the same bytes. */
const archives = new Map<string, { archive: Promise<Buffer>; bytes: number }>();
/** Kept this long after it was built: long enough for every agent of a pool to ask for it. */
const ARCHIVE_KEEP_MS = 5_000;
/** And never more than this in all, however many snapshots are on their way. */
const ARCHIVE_KEEP_BYTES = 64 * 1024 * 1024;

function sharedArchive(snapshot: LocalSnapshot, batch: readonly ManifestEntry[]): Promise<Buffer> {
  const key = `${snapshot.root}\0${snapshot.hash}\0${batch.map((file) => file.hash).join(',')}`;
  const kept = archives.get(key);
  if (kept) {
    archives.delete(key); // re-inserted last: the map's order is the order of last use
    archives.set(key, kept);
    return kept.archive;
  }
  const bytes = batch.reduce((sum, file) => sum + file.size, 0);
  const archive = zipFiles(snapshot, batch);
  const entry = { archive, bytes };
  archives.set(key, entry);
  const drop = (): void => {
    if (archives.get(key) === entry) archives.delete(key);
  };
  archive.then(() => setTimeout(drop, ARCHIVE_KEEP_MS).unref(), drop);
  let total = 0;
  for (const [other, { bytes: size }] of [...archives].reverse()) {
    total += size;
    if (total > ARCHIVE_KEEP_BYTES && other !== key) archives.delete(other);
  }
  return archive;
}

/** Consecutive groups of at most `limit` content bytes (a larger file goes alone). */
function batches(files: readonly ManifestEntry[], limit: number): ManifestEntry[][] {
  const groups: ManifestEntry[][] = [];
  let current: ManifestEntry[] = [];
  let bytes = 0;
  for (const file of files) {
    if (current.length > 0 && bytes + file.size > limit) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(file);
    bytes += file.size;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}
