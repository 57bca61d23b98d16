// Builds core's native kernels (native/) into dist/callosum-kernels.node with node-gyp. They are
// optional: without a C++ compiler, Node's headers or a supported platform the build says why in one
// line and succeeds, and the wasm backend keeps its WebAssembly kernels (the same results, slower).
// CALLOSUM_REQUIRE_NATIVE_KERNELS=1 makes such a failure fail the build (CI, so that tests cover them).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(packageRoot, 'native');
const target = join(packageRoot, 'dist', 'callosum-kernels.node');
const required = process.env.CALLOSUM_REQUIRE_NATIVE_KERNELS === '1';

/** Node's headers next to this node (Debian, Homebrew, the official tarballs), so no download is needed. */
function localNodeDir() {
  const prefix = resolve(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

function fail(reason) {
  rmSync(target, { force: true });
  const message = `@callosum/core: native kernels not built (${reason}); the wasm backend uses its WebAssembly kernels`;
  if (required) {
    console.error(`${message}, and CALLOSUM_REQUIRE_NATIVE_KERNELS=1 requires them`);
    process.exit(1);
  }
  console.warn(message);
  process.exit(0);
}

let nodeGyp;
try {
  nodeGyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
} catch {
  fail('node-gyp is not installed');
}
const nodeDir = process.env.npm_config_nodedir ?? localNodeDir();
const args = [nodeGyp, 'rebuild', '--directory', nativeDir, ...(nodeDir ? [`--nodedir=${nodeDir}`] : [])];
// Without local headers node-gyp downloads them; offline that must fail, not hang the build.
const build = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 5 * 60 * 1000 });
if (build.error !== undefined) fail(`node-gyp did not finish: ${build.error.message}`);
if (build.status !== 0) {
  const output = `${build.stderr ?? ''}${build.stdout ?? ''}`.trim().split('\n');
  const firstError = output.find((line) => /error/i.test(line)) ?? output.at(-1) ?? `exit ${build.status}`;
  fail(`node-gyp failed: ${firstError.trim()}`);
}
try {
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(join(nativeDir, 'build', 'Release', 'callosum_kernels.node'), target);
} catch (error) {
  fail(`the built addon could not be copied: ${error.message}`);
}
