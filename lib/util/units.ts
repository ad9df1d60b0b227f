/** Parse byte sizes such as 1048576, 64MiB, 1GiB, 1.5GB, 512k. */
export function parseBytes(v: string | number | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$/i.exec(v);
  if (!m) throw new Error(`${flag}: expected a size such as 1048576, 64MiB or 1GiB, got "${v}"`);
  const unit = m[2].toLowerCase();
  const base = m[3] || unit === '' ? 1024 : 1000;
  const exp = ['', 'k', 'm', 'g', 't'].indexOf(unit);
  return Math.round(Number(m[1]) * base ** exp);
}

/** Format a byte count for people: 1.5 GiB. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}
