// A cell's value as a Jupyter MIME bundle: `text/plain` always (what tslab would have printed), plus `text/html`
// where the value calls for it: arrays of plain objects (and objects of arrays) as tables, typed arrays as a
// summary with statistics, and image bytes or SVG text as images.

import * as util from 'node:util';

export type MimeBundle = Record<string, string>;

const MAX_TABLE_ROWS = 50;
const MAX_TABLE_COLUMNS = 30;

/** The value as tslab prints a cell's last expression (console.log formatting), plus rich forms. */
export function mimeBundle(value: unknown): MimeBundle {
  const image = imageOf(value);
  if (image) return { [image.mime]: image.data, 'text/plain': image.plain };
  const bundle: MimeBundle = { 'text/plain': plainText(value) };
  const html = htmlOf(value);
  if (html) bundle['text/html'] = html;
  return bundle;
}

/** Exactly what tslab prints for a cell's value (console.log's formatting: strings as they are, the rest inspected). */
export function plainText(value: unknown): string {
  return util.format(value);
}

function htmlOf(value: unknown): string | undefined {
  if (Array.isArray(value) && value.length > 0 && value.every(isPlainRecord)) return recordsTable(value);
  if (ArrayBuffer.isView(value) && !(value instanceof DataView))
    return typedArraySummary(value as unknown as ArrayLike<number | bigint>);
  if (isPlainRecord(value)) {
    const entries = Object.entries(value);
    const columns = entries.filter(([, v]) => Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView)));
    if (columns.length > 0 && columns.length === entries.length)
      return columnsTable(columns as [string, ArrayLike<unknown>][]);
  }
  return undefined;
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function recordsTable(rows: Record<string, unknown>[]): string {
  const columns: string[] = [];
  const seen = new Set<string>();
  for (const row of rows.slice(0, MAX_TABLE_ROWS)) {
    for (const key of Object.keys(row)) {
      if (!seen.has(key) && columns.length < MAX_TABLE_COLUMNS) {
        seen.add(key);
        columns.push(key);
      }
    }
  }
  const head = `<tr><th></th>${columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('')}</tr>`;
  const body = rows
    .slice(0, MAX_TABLE_ROWS)
    .map((row, i) => `<tr><th>${i}</th>${columns.map((c) => `<td>${cell(row[c])}</td>`).join('')}</tr>`)
    .join('');
  return table(head, body, rows.length);
}

function columnsTable(columns: [string, ArrayLike<unknown>][]): string {
  const length = Math.max(...columns.map(([, v]) => v.length));
  const head = `<tr><th></th>${columns.map(([c]) => `<th>${escapeHtml(c)}</th>`).join('')}</tr>`;
  const rows: string[] = [];
  for (let i = 0; i < Math.min(length, MAX_TABLE_ROWS); i++) {
    rows.push(`<tr><th>${i}</th>${columns.map(([, v]) => `<td>${i < v.length ? cell(v[i]) : ''}</td>`).join('')}</tr>`);
  }
  return table(head, rows.join(''), length);
}

function table(head: string, body: string, total: number): string {
  const more = total > MAX_TABLE_ROWS ? `<p>${MAX_TABLE_ROWS} of ${total} rows shown</p>` : '';
  return `<table class="tslab-remote"><thead>${head}</thead><tbody>${body}</tbody></table>${more}`;
}

function cell(value: unknown): string {
  if (value === undefined) return '';
  const text =
    typeof value === 'string' ? value : util.inspect(value, { depth: 1, breakLength: Infinity, maxArrayLength: 10 });
  return escapeHtml(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}

/** A typed array: its type, length, size and (for numbers) min / max / mean, then its first values. */
function typedArraySummary(view: ArrayLike<number | bigint>): string {
  const name = (view as object).constructor.name;
  const bytes = (view as unknown as ArrayBufferView).byteLength;
  const rows: [string, string][] = [
    ['type', name],
    ['length', view.length.toLocaleString('en-US')],
    ['bytes', formatBytes(bytes)],
  ];
  if (view.length > 0 && typeof view[0] === 'number') {
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    let nan = 0;
    for (let i = 0; i < view.length; i++) {
      const v = view[i] as number;
      if (Number.isNaN(v)) {
        nan++;
        continue;
      }
      if (v < min) min = v;
      if (v > max) max = v;
      sum += v;
    }
    const counted = view.length - nan;
    rows.push(
      ['min', counted ? formatNumber(min) : '–'],
      ['max', counted ? formatNumber(max) : '–'],
      ['mean', counted ? formatNumber(sum / counted) : '–'],
    );
    if (nan) rows.push(['NaN', nan.toLocaleString('en-US')]);
  }
  const first = Array.from({ length: Math.min(view.length, 8) }, (_, i) => String(view[i])).join(', ');
  rows.push(['first', view.length > 8 ? `${first}, …` : first]);
  return `<table class="tslab-remote">${rows.map(([k, v]) => `<tr><th>${k}</th><td>${escapeHtml(v)}</td></tr>`).join('')}</table>`;
}

function formatNumber(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toPrecision(6);
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

const IMAGE_SIGNATURES: [string, number[]][] = [
  ['image/png', [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]],
  ['image/jpeg', [0xff, 0xd8, 0xff]],
  ['image/gif', [0x47, 0x49, 0x46, 0x38]],
];

/** Bytes that start like a PNG, JPEG or GIF file, or a string that is an SVG document. */
function imageOf(value: unknown): { mime: string; data: string; plain: string } | undefined {
  if (value instanceof Uint8Array && value.length > 8) {
    for (const [mime, signature] of IMAGE_SIGNATURES) {
      if (signature.every((byte, i) => value[i] === byte)) {
        const data = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
        return { mime, data, plain: `<${mime} image, ${formatBytes(value.length)}>` };
      }
    }
  }
  if (typeof value === 'string' && /^\s*(<\?xml[^>]*>\s*)?<svg[\s>]/.test(value) && /<\/svg>\s*$/.test(value)) {
    return { mime: 'image/svg+xml', data: value, plain: `<SVG image, ${formatBytes(value.length)}>` };
  }
  return undefined;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
