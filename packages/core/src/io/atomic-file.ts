import { rename, rm, writeFile } from 'node:fs/promises';

/**
 * Writes a file so that a reader never sees it half-written: a temporary name, then a rename. A failed
 * write leaves no temporary file behind.
 */
export async function writeFileAtomically(path: string, data: string | Uint8Array): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(temporary, data);
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
