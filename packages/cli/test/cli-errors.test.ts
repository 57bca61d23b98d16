import { mkdir, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { PROTOCOL_VERSION } from '@callosum/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, smallTestSetData, temporaryDirectory } from './processes.js';

let root: string;
beforeAll(async () => {
  root = await temporaryDirectory('cli-errors');
});

/** The first stderr line, and no stack trace anywhere. */
function oneLine(stderr: string): string {
  expect(stderr).not.toMatch(/^\s+at /m);
  return stderr.split('\n').find((line) => line.trim() !== '') ?? '';
}

describe('boolean flags and environment variables are strict', () => {
  it('CALLOSUM_INSECURE=0 does not start an insecure coordinator', async () => {
    const run = await runCli(
      ['coordinator', '--host', '0.0.0.0', '--steps', '2', '--out', join(root, 'i0')],
      {
        env: { CALLOSUM_INSECURE: '0' },
        timeoutMs: 30_000,
      },
    );
    expect(run.code).toBe(1);
    expect(oneLine(run.stderr)).toMatch(/refusing to listen on 0\.0\.0\.0 without a token/);
  });

  it('a value that is not a yes/no word is an error naming the variable', async () => {
    const run = await runCli(['train', '--steps', '1'], { env: { CALLOSUM_JSON: 'maybe' } });
    expect(run.code).not.toBe(0);
    expect(oneLine(run.stderr)).toMatch(
      /CALLOSUM_JSON.*expected one of 1\/0, true\/false, yes\/no, on\/off.*"maybe"/,
    );
    const flag = await runCli(['coordinator', '--insecure', 'perhaps']);
    expect(oneLine(flag.stderr)).toMatch(/--insecure.*"perhaps"/);
    const memory = await runCli(['train', '--steps', '1'], {
      env: { CALLOSUM_KEEP_FREED_MEMORY: 'sometimes' },
    });
    expect(memory.code).toBe(1);
    expect(oneLine(memory.stderr)).toBe(
      'callosum: INVALID_ARGUMENT: CALLOSUM_KEEP_FREED_MEMORY: expected one of 1/0, true/false, yes/no, on/off, got "sometimes"',
    );
  });

  it('an empty path (CALLOSUM_OUT= left by a template, --out "") is an error naming the variable or flag', async () => {
    for (const variable of ['CALLOSUM_OUT', 'CALLOSUM_RESUME', 'CALLOSUM_TASK', 'CALLOSUM_TRACE']) {
      const run = await runCli(['train', '--steps', '1'], { env: { [variable]: '' } });
      expect(run.code, variable).not.toBe(0);
      expect(oneLine(run.stderr)).toMatch(
        new RegExp(`value '' from env '${variable}' is invalid\\. a path is needed, got an empty value`),
      );
    }
    const flag = await runCli(['train', '--steps', '1', '--out', '']);
    expect(oneLine(flag.stderr)).toBe(
      "error: option '--out <dir>' argument '' is invalid. a path is needed, got an empty value",
    );
  });

  it('a boolean flag takes the next word only when it is a yes/no word', async () => {
    // Before the command, --debug used to read "train" as its value.
    const before = await runCli(['--debug', 'train', '--resume', join(root, 'no-such-run')]);
    expect(before.stderr).toMatch(/no run directory .*no-such-run to resume/);
    expect(before.stderr).toMatch(/^\s+at /m); // --debug on: the stack is printed
    const report = await runCli(['report', '--debug', join(root, 'no-such-report')]);
    expect(report.stderr).toMatch(/no-such-report/);
    expect(report.stderr).not.toMatch(/argument .* is invalid/);
    const off = await runCli(['--debug', 'no', 'train', '--resume', join(root, 'no-such-run')]);
    expect(off.stderr).not.toMatch(/^\s+at /m);
  });

  it('a setting the libraries refuse is named by the flag that set it', async () => {
    const workers = await runCli(['coordinator', '--min-workers', '3', '--max-workers', '2']);
    expect(oneLine(workers.stderr)).toBe(
      'callosum: INVALID_ARGUMENT: coordinator options: --min-workers must be at most --max-workers (2), got 3',
    );
    const microBatch = await runCli(['train', '--micro-batch-size', '1000', '--steps', '1']);
    expect(oneLine(microBatch.stderr)).toMatch(
      /^callosum: INVALID_ARGUMENT: training config: --micro-batch-size .*got 1000$/,
    );
  });

  it('a usage error is the error and a pointer to --help, not the whole help', async () => {
    const run = await runCli(['train', '--workers', '0']);
    expect(run.code).not.toBe(0);
    expect(run.stderr.trim().split('\n')).toEqual([
      `error: option '--workers <n>' argument '0' is invalid. expected an integer from 1 to 256, got "0"`,
      '(--help lists the options)',
    ]);
  });
});

describe('everyday errors are one line without a stack trace', () => {
  it('a port in use names --port', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const outDir = join(root, 'port');
      const run = await runCli(['coordinator', '--port', String(port), '--steps', '1', '--out', outDir]);
      expect(run.code).toBe(1);
      expect(oneLine(run.stderr.split('\n').slice(-2).join('\n'))).toBe(
        `callosum: port 127.0.0.1:${port} is already in use (--port): choose another port, or 0 for any free one`,
      );
      // A failed start leaves no run directory behind.
      await expect(stat(outDir)).rejects.toThrow(/ENOENT/);
    } finally {
      blocker.close();
    }
  });

  it('an --out under a file, an unwritable --out, --resume of a file or of nothing', async () => {
    const file = join(root, 'a-file');
    await writeFile(file, '');
    const underFile = await runCli(['train', '--out', join(file, 'run'), '--steps', '1']);
    expect(oneLine(underFile.stderr)).toMatch(
      /^callosum: INVALID_ARGUMENT: cannot create the run directory .*ENOTDIR.*--out/,
    );
    const proc = await runCli(['train', '--out', '/proc/callosum-x', '--steps', '1'], { timeoutMs: 20_000 });
    expect(proc.signal).toBeNull();
    expect(oneLine(proc.stderr)).toMatch(/cannot create the run directory \/proc\/callosum-x \(ENOENT\)/);
    const resumeFile = await runCli(['train', '--resume', file]);
    expect(oneLine(resumeFile.stderr)).toMatch(/is a file, not a run directory to resume/);
    const missing = join(root, 'missing');
    const resumeMissing = await runCli(['train', '--resume', missing]);
    expect(oneLine(resumeMissing.stderr)).toMatch(/no run directory .*missing to resume/);
    await expect(stat(missing)).rejects.toThrow(/ENOENT/);
  });

  it('a bad --connect fails before a backend loads; a short token, a missing token file, a bad --host', async () => {
    const notUrl = await runCli(['worker', '--connect', 'notaurl']);
    expect(oneLine(notUrl.stderr)).toMatch(/--connect.*expected ws:\/\/host:port.*"notaurl"/);
    expect(notUrl.stderr).not.toMatch(/worker .*: backend/);
    const http = await runCli(['worker', '--connect', 'http://127.0.0.1:1']);
    expect(oneLine(http.stderr)).toMatch(/--connect.*expected ws:\/\/host:port or wss:\/\/host:port.*"http:/);
    const out = join(root, 'tokens');
    await mkdir(out);
    const short = await runCli(['coordinator', '--token', 'short', '--steps', '1', '--out', join(out, 'a')]);
    expect(oneLine(short.stderr)).toBe(
      'callosum: INVALID_ARGUMENT: the token must be at least 16 characters long',
    );
    // A worker says so itself, before it connects, not only after the coordinator refused it.
    const shortWorker = await runCli(['worker', '--connect', 'ws://127.0.0.1:1'], {
      env: { CALLOSUM_TOKEN: 'short' },
    });
    expect(oneLine(shortWorker.stderr)).toBe(
      'callosum: INVALID_ARGUMENT: worker options: token must be at least 16 characters long (a coordinator refuses shorter ones)',
    );
    const noFile = await runCli(['coordinator', '--token-file', join(root, 'nope'), '--out', join(out, 'b')]);
    expect(oneLine(noFile.stderr)).toMatch(/^callosum: cannot read the token file .*nope/);
    const tokenFile = join(out, 'token');
    await writeFile(tokenFile, '0123456789abcdef0123\n');
    const both = await runCli(['coordinator', '--token-file', tokenFile, '--out', join(out, 'c')], {
      env: { CALLOSUM_TOKEN: 'fedcba9876543210fedc' },
    });
    expect(oneLine(both.stderr)).toMatch(
      /both a token \(--token or CALLOSUM_TOKEN\) and a token file .* are set: give one/,
    );
    // callosum train gives its workers the run's own token; a token file set in the shell is not theirs.
    const inherited = await runCli(
      ['train', '--workers', '1', '--steps', '2', ...smallTestSetData(), '--out', join(out, 'd')],
      {
        env: { CALLOSUM_TOKEN_FILE: tokenFile },
      },
    );
    expect(inherited.code, inherited.stderr).toBe(0);
    const host = await runCli([
      'coordinator',
      '--host',
      '999.1.1.1',
      '--token',
      '0123456789abcdef0123',
      '--steps',
      '1',
      '--out',
      join(out, 'c'),
    ]);
    expect(host.stderr.trim().split('\n').at(-1)).toMatch(
      /cannot resolve the host name 999\.1\.1\.1 \(--host/,
    );
    expect(host.stderr).not.toMatch(/^\s+at /m);
  });

  it('TLS between ring peers: a certificate without the CA, the CA without a certificate, a bad PEM, --peer-tls on a star', async () => {
    const connect = ['worker', '--connect', 'ws://127.0.0.1:1', '--give-up-after', '1'];
    const pem = join(root, 'not-a.pem');
    await writeFile(pem, 'not a certificate\n');
    const stray = await runCli([...connect, '--peer-tls-cert', pem]);
    expect(oneLine(stray.stderr)).toMatch(/--peer-tls-cert needs --peer-tls-ca \(the peers' CA\)/);
    const noCertificate = await runCli([...connect, '--peer-tls-ca', pem]);
    expect(oneLine(noCertificate.stderr)).toMatch(
      /--peer-tls-ca needs this worker's certificate and key: --tls-cert and --tls-key \(or --peer-tls-cert and --peer-tls-key\)/,
    );
    const missing = await runCli([
      ...connect,
      '--peer-tls-ca',
      join(root, 'nope.pem'),
      '--peer-tls-cert',
      pem,
      '--peer-tls-key',
      pem,
    ]);
    expect(oneLine(missing.stderr)).toMatch(/--peer-tls-ca: cannot read .*nope\.pem/);
    // PEM-shaped, so that the flags take it, but no certificate: the handshake at start refuses it.
    const badPem = join(root, 'bad-shape.pem');
    await writeFile(badPem, '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n');
    const bad = await runCli([
      ...connect,
      '--peer-tls-ca',
      badPem,
      '--tls-cert',
      badPem,
      '--tls-key',
      badPem,
    ]);
    expect(oneLine(bad.stderr)).toMatch(
      /INVALID_ARGUMENT: peer TLS \(--peer-tls-ca, and the certificate and key\): a TLS handshake of this worker with itself fails: .+/,
    );
    const star = await runCli([
      'coordinator',
      '--peer-tls',
      '--steps',
      '1',
      '--out',
      join(root, 'star-peer-tls'),
    ]);
    expect(oneLine(star.stderr)).toMatch(/--peer-tls is for the ring topology, .*topology is star/);
  });

  it('an empty, blank or PEM-less TLS file is refused at start for every TLS flag, naming the flag and the file', async () => {
    const dir = join(root, 'empty-tls');
    await mkdir(dir);
    const empty = join(dir, 'empty.pem');
    const blank = join(dir, 'blank.pem');
    const text = join(dir, 'text.pem');
    const shaped = join(dir, 'shaped.pem');
    await writeFile(empty, '');
    await writeFile(blank, '\n  \n');
    await writeFile(text, 'not a certificate\n');
    await writeFile(shaped, '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n');
    const coordinator = ['coordinator', '--steps', '1', '--out', join(dir, 'run')];
    const worker = ['worker', '--connect', 'wss://127.0.0.1:1', '--give-up-after', '1'];
    const cases: [string[], string, string][] = [
      [[...coordinator, '--tls-cert', empty, '--tls-key', shaped], '--tls-cert', empty],
      [[...coordinator, '--tls-cert', shaped, '--tls-key', blank], '--tls-key', blank],
      [
        [...coordinator, '--tls-cert', shaped, '--tls-key', shaped, '--tls-client-ca', empty],
        '--tls-client-ca',
        empty,
      ],
      [[...worker, '--tls-ca', empty], '--tls-ca', empty],
      [[...worker, '--tls-cert', shaped, '--tls-key', empty], '--tls-key', empty],
      [
        [...worker, '--peer-tls-ca', blank, '--tls-cert', shaped, '--tls-key', shaped],
        '--peer-tls-ca',
        blank,
      ],
    ];
    for (const [args, flag, file] of cases) {
      const run = await runCli(args);
      expect(run.code, args.join(' ')).toBe(1);
      expect(oneLine(run.stderr)).toBe(`callosum: ${flag}: ${file} is empty: expected a PEM file`);
    }
    const pemLess = await runCli([
      ...coordinator,
      '--tls-cert',
      shaped,
      '--tls-key',
      shaped,
      '--tls-client-ca',
      text,
    ]);
    expect(oneLine(pemLess.stderr)).toBe(
      `callosum: --tls-client-ca: ${text} holds no PEM block (no "-----BEGIN" line)`,
    );
    // Not listening: nothing was started that no client could reach.
    expect(pemLess.stderr).not.toMatch(/listening on/);
  });

  it('an empty CALLOSUM_TOKEN or --token is refused as empty, naming where it came from', async () => {
    const run = await runCli(['coordinator', '--steps', '1', '--out', join(root, 'empty-token')], {
      env: { CALLOSUM_TOKEN: '' },
    });
    expect(run.code).toBe(1);
    expect(oneLine(run.stderr)).toMatch(
      /option '--token <secret>' value '' from env 'CALLOSUM_TOKEN' is invalid\. the token is empty: set CALLOSUM_TOKEN \(or --token-file\) to the shared secret, or unset an empty CALLOSUM_TOKEN/,
    );
    const worker = await runCli(['worker', '--connect', 'ws://127.0.0.1:1', '--token', ' ']);
    expect(oneLine(worker.stderr)).toMatch(
      /option '--token <secret>' argument ' ' is invalid\. the token is empty/,
    );
  });

  it('a worker --name the coordinator would refuse (too long, control characters) is refused at start', async () => {
    const connect = ['worker', '--connect', 'ws://127.0.0.1:1', '--give-up-after', '60000'];
    const long = await runCli([...connect, '--name', 'n'.repeat(257)]);
    expect(long.code).toBe(1);
    expect(oneLine(long.stderr)).toBe(
      "callosum: --name (or CALLOSUM_WORKER_NAME) must be at most 256 characters long (the protocol's limit), got 257",
    );
    const forged = await runCli(connect, {
      env: { CALLOSUM_WORKER_NAME: 'evil\ncoordinator: worker w9 (x) joined (backend wasm); 2 healthy' },
    });
    expect(forged.code).toBe(1);
    expect(oneLine(forged.stderr)).toBe(
      "callosum: --name (or CALLOSUM_WORKER_NAME) must not contain control characters, line separators or bidi overrides (found \\n): it is written into the coordinator's log",
    );
    expect(forged.stderr).not.toMatch(/^coordinator: /m);
  });

  it('--debug (or CALLOSUM_DEBUG=1) adds the stack trace', async () => {
    const run = await runCli(['train', '--resume', join(root, 'absent')], { env: { CALLOSUM_DEBUG: '1' } });
    expect(run.stderr).toMatch(/^\s+at /m);
  });

  it('--version prints the version and the protocol it speaks', async () => {
    const run = await runCli(['--version']);
    expect(run.code).toBe(0);
    const { major, minor } = PROTOCOL_VERSION;
    expect(run.stdout.trim()).toMatch(new RegExp(`^\\d+\\.\\d+\\.\\d+ \\(protocol ${major}\\.${minor}\\)$`));
  });
});

describe('a batch too big for the backend', () => {
  it('--batch-size 1000000 on wasm fails before training with one line naming the largest batch that fits', async () => {
    const started = Date.now();
    const run = await runCli([
      'train',
      '--workers',
      '2',
      '--backend',
      'wasm',
      '--batch-size',
      '1000000',
      '--out',
      join(root, 'huge'),
    ]);
    expect(run.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(run.stderr).not.toMatch(/^\s+at /m);
    expect(run.stderr.split('\n').filter((line) => line.startsWith('callosum:'))).toHaveLength(1);
    expect(run.stderr).toMatch(
      /^callosum: INVALID_ARGUMENT: --batch-size 1000000 does not fit the wasm backend's 4 GiB: .*the largest batch that fits with 2 workers and \d+ threads? each is \d+/m,
    );
    expect(run.stderr).not.toMatch(/COMPUTE_FAILED|memory access out of bounds/);
  });
});
