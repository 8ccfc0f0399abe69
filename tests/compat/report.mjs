// The report of the Node checks: one row per check, `library | check | result`, shown
// on stderr as it is known and as one table on stdout at the end (which
// tests/api/ecosystem.rs reads); the process fails when any row is a FAIL.

const rows = [];

/** Runs `fn` as the check `name` of `library`: PASS when it resolves, FAIL (why) when not. */
export async function check(library, name, fn) {
  let result = 'PASS';
  try {
    await fn();
  } catch (error) {
    result = `FAIL (${String(error?.message ?? error)
      .replaceAll('\n', ' ')
      .slice(0, 300)})`;
    console.error(error);
  }
  rows.push([library, name, result]);
  console.error(rows.at(-1).join(' | '));
}

export function expect(condition, message) {
  if (!condition) throw new Error(message);
}

/** Prints the table and sets the exit code. */
export function finish() {
  const width = (i) => Math.max(...rows.map((row) => row[i].length), i === 0 ? 7 : 5);
  const [a, b] = [width(0), width(1)];
  console.log(`${'library'.padEnd(a)} | ${'check'.padEnd(b)} | result`);
  console.log(`${'-'.repeat(a)}-|-${'-'.repeat(b)}-|-------`);
  for (const [library, name, result] of rows) console.log(`${library.padEnd(a)} | ${name.padEnd(b)} | ${result}`);
  process.exitCode = rows.length === 0 || rows.some(([, , result]) => !result.startsWith('PASS')) ? 1 : 0;
}
