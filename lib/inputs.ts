/**
 * Stage 1a: resolve the inputs (files, folders, globs) into a sorted list of files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SegflowError } from './errors.js';

/** File names a folder contributes: text tables, optionally gzip-compressed. */
export const DATA_FILE = /\.(csv|tsv|txt|dat|jsonl|ndjson|json)(\.gz)?$/i;

/** Turn a glob (`*`, `?`, `**`, `[...]`) into a RegExp over '/'-separated paths. */
function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
        if (glob[i + 1] === '/') i++;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const j = glob.indexOf(']', i);
      if (j < 0) re += '\\[';
      else {
        re += '[' + glob.slice(i + 1, j).replace(/^!/, '^') + ']';
        i = j;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp('^' + re + '$');
}

function walk(dir: string, out: string[], recursive: boolean): void {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (recursive) walk(p, out, true);
    } else if (entry.isFile() || entry.isSymbolicLink()) out.push(p);
  }
}

/**
 * Resolve inputs to files. A folder contributes its data files (by extension, not recursing); a
 * glob matches files below its fixed prefix. Duplicates are removed; the order is the order of the
 * inputs, and sorted within a folder or glob.
 */
export function resolveInputs(input: string | string[]): string[] {
  const inputs = (Array.isArray(input) ? input : [input]).filter((s) => s !== '');
  if (inputs.length === 0) throw new SegflowError('ERR_USAGE', 'no input given');
  const files: string[] = [];
  for (const item of inputs) {
    if (/[*?[]/.test(item) && !fs.existsSync(item)) {
      const parts = item.split(/[\\/]/);
      const fixed: string[] = [];
      for (const part of parts) {
        if (/[*?[]/.test(part)) break;
        fixed.push(part);
      }
      const root = fixed.join('/') || '.';
      const re = globToRegExp(item.replace(/\\/g, '/'));
      const found: string[] = [];
      if (fs.existsSync(root) && fs.statSync(root).isDirectory()) walk(root, found, true);
      const matched = found.filter((f) => re.test(f.replace(/\\/g, '/')) || re.test('./' + f.replace(/\\/g, '/'))).sort();
      if (matched.length === 0) throw new SegflowError('ERR_INPUT_NOT_FOUND', `no file matches ${item}`, { input: item });
      files.push(...matched);
      continue;
    }
    let st: fs.Stats;
    try {
      st = fs.statSync(item);
    } catch {
      throw new SegflowError('ERR_INPUT_NOT_FOUND', `input not found: ${item}`, { input: item });
    }
    if (st.isDirectory()) {
      const found: string[] = [];
      walk(item, found, false);
      const data = found.filter((f) => DATA_FILE.test(f)).sort();
      if (data.length === 0) {
        throw new SegflowError('ERR_INPUT_NOT_FOUND', `folder ${item} holds no input files (*.csv, *.tsv, *.txt, *.jsonl, *.ndjson, optionally .gz)`, { input: item });
      }
      files.push(...data);
    } else files.push(item);
  }
  const seen = new Set<string>();
  return files.filter((f) => {
    const k = path.resolve(f);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
