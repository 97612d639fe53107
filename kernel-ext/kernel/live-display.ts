// Status lines in the cell that update in place (one Jupyter display id each): upload progress and elapsed time.

import type { CellIO } from './io';

/** Upload progress shows only for uploads that take longer than this (TSLAB_REMOTE_PROGRESS_MS overrides). */
const PROGRESS_AFTER_MS = nonNegative(process.env.TSLAB_REMOTE_PROGRESS_MS) ?? 400;
/** Elapsed time shows for calls that take longer than this, updated every second. */
const ELAPSED_AFTER_MS = 3_000;

/** One display line: the first show() displays it, later ones update it in place. */
export class LiveDisplay {
  private shown = false;
  private readonly id: string;

  constructor(
    private readonly io: CellIO,
    kind: string,
  ) {
    this.id = `tslab-remote-${kind}-${Math.random().toString(16).slice(2)}`;
  }

  get isShown(): boolean {
    return this.shown;
  }

  show(text: string): void {
    this.io.display({ data: { 'text/plain': text }, metadata: {}, transient: { display_id: this.id } }, this.shown);
    this.shown = true;
  }

  /** Empties the line where it is (Jupyter cannot remove or move a display). */
  clear(): void {
    if (this.shown)
      this.io.display({ data: { 'text/plain': '' }, metadata: {}, transient: { display_id: this.id } }, true);
  }
}

/** Upload progress in the cell: one display line, updated in place, shown only once the upload takes a moment. */
export class ProgressDisplay {
  private readonly started = Date.now();
  private readonly line: LiveDisplay;
  private last: string;
  private readonly timer: NodeJS.Timeout;

  constructor(io: CellIO, agent: string) {
    this.line = new LiveDisplay(io, 'upload');
    this.last = `uploading the code root to ${agent}`;
    // Shown even before the first batch is through, once the upload takes a moment.
    this.timer = setTimeout(() => this.line.show(`${this.last}…`), PROGRESS_AFTER_MS);
    this.timer.unref();
  }

  update(text: string, fraction: number): void {
    this.last = text;
    if (!this.due()) return;
    this.line.show(`${text} (${Math.round(fraction * 100)}%)`);
  }

  done(text: string | undefined): void {
    clearTimeout(this.timer);
    if (!this.due()) return;
    this.line.show(`${text ?? this.last} in ${((Date.now() - this.started) / 1000).toFixed(1)} s`);
  }

  private due(): boolean {
    return this.line.isShown || Date.now() - this.started >= PROGRESS_AFTER_MS;
  }
}

/**
 * Elapsed time for calls that run longer than a few seconds, updated every second, final time at the end. The
 * running line stays where it was first shown; the final one goes below all of the call's output, so that it does
 * not end up between two streamed lines: the running line is emptied then.
 */
export class ElapsedDisplay {
  private readonly timer: NodeJS.Timeout;
  private readonly line: LiveDisplay;

  constructor(
    private readonly io: CellIO,
    private readonly agent: string,
    private readonly started: number,
  ) {
    this.line = new LiveDisplay(io, 'elapsed');
    this.timer = setInterval(() => {
      const ms = Date.now() - this.started;
      if (ms >= ELAPSED_AFTER_MS) this.line.show(`running on ${this.agent}: ${Math.floor(ms / 1000)} s`);
    }, 1_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    if (!this.line.isShown) return;
    this.line.clear();
    new LiveDisplay(this.io, 'elapsed').show(
      `ran on ${this.agent} in ${((Date.now() - this.started) / 1000).toFixed(1)} s`,
    );
  }
}

function nonNegative(text: string | undefined): number | undefined {
  const value = text === undefined || text === '' ? NaN : Number(text);
  return Number.isFinite(value) && value >= 0 ? value : undefined;
}
