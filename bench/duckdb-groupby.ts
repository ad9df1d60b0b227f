/**
 * The peer: DuckDB doing the same job as `segflow aggregate` — read the CSV, GROUP BY user,
 * count and sum, write a CSV. Usage: node dist/bench/duckdb-groupby.js FILE OUT THREADS [USER AMOUNT]
 */
const [file, out, threads = '2', user = 'User_ID', amount = 'Purchase'] = process.argv.slice(2);
if (!file || !out) {
  process.stderr.write('usage: duckdb-groupby FILE OUT [THREADS] [USER_COL] [AMOUNT_COL]\n');
  process.exit(2);
}
let duck: typeof import('@duckdb/node-api');
try {
  duck = await import('@duckdb/node-api');
} catch {
  process.stderr.write('DuckDB is not installed (npm install @duckdb/node-api); skipping\n');
  process.exit(3);
}
const db = await duck.DuckDBInstance.create(':memory:', { threads });
const con = await db.connect();
const q = (s: string): string => `'${s.replace(/'/g, "''")}'`;
await con.run(
  `COPY (SELECT "${user}" AS user_id, count(*) AS purchases, sum("${amount}") AS total FROM read_csv(${q(file)}) GROUP BY "${user}") TO ${q(out)} (HEADER, DELIMITER ',')`,
);
