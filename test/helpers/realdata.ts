/** Where ../shared/realdata is (CI has it; a user's clone may not: tests skip then). */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

export const REALDATA = process.env.SEGFLOW_REALDATA ?? fileURLToPath(new URL('../../../../shared/realdata/', import.meta.url));

/** The path of a real data file, or undefined (with a message) when it is not here. */
export function realFile(name: string): string | undefined {
  const p = `${REALDATA.replace(/\/$/, '')}/${name}`;
  if (fs.existsSync(p)) return p;
  console.log(`  (skipped: ${p} is not here; real data lives in ../shared/realdata beside the repo)`);
  return undefined;
}
