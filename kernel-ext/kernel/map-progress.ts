// A map's progress line in its cell: done/total, running, failed, retried and per-agent counts, one display updated
// in place (as the elapsed line of %remote is), at most a few times a second, and a last update when the map ends.

import type { MapProgress } from '../client/cluster/map-run';
import type { DisplayData } from './tslab-parts';

/** Updates closer together than this are merged into one (the last wins). */
const MIN_INTERVAL_MS = 250;

type Display = ((data: DisplayData, update: boolean) => void) | null;

export class MapProgressLine {
  private readonly id = `tslab-remote-map-${Math.random().toString(16).slice(2)}`;
  private readonly started = Date.now();
  private shown = false;
  private lastShown = 0;
  private latest?: MapProgress;
  private timer?: NodeJS.Timeout;

  constructor(private readonly display: Display) {}

  update(progress: MapProgress): void {
    this.latest = progress;
    if (this.timer) return;
    const wait = this.lastShown + MIN_INTERVAL_MS - Date.now();
    if (wait <= 0) return this.show(false);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.show(false);
    }, wait);
    this.timer.unref();
  }

  end(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.latest) this.show(true);
  }

  private show(final: boolean): void {
    if (!this.display || !this.latest) return;
    this.lastShown = Date.now();
    const text = progressText(this.latest, final ? Date.now() - this.started : undefined);
    this.display({ data: { 'text/plain': text }, metadata: {}, transient: { display_id: this.id } }, this.shown);
    this.shown = true;
  }
}

/** `map: 12/60 done, 6 running, 0 failed | a 4 done 2 running | b ...`, with the time taken once it ended. */
export function progressText(p: MapProgress, elapsedMs?: number): string {
  const head = `map: ${p.done}/${p.total} done, ${p.running} running, ${p.failed} failed${p.retried ? `, ${p.retried} retried` : ''}`;
  const agents = Object.entries(p.perAgent).map(
    ([name, a]) =>
      `${name} ${a.done} done${a.running ? ` ${a.running} running` : ''}${a.failed ? ` ${a.failed} failed` : ''}`,
  );
  const time = elapsedMs !== undefined ? ` in ${(elapsedMs / 1000).toFixed(1)} s` : '';
  return `${head}${time} | ${agents.join(' | ')}`;
}
