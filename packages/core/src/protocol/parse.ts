import type { z } from 'zod';
import { CallosumError, ErrorCodes } from '../errors.js';
import {
  type CoordinatorMessage,
  coordinatorMessageSchema,
  type PeerMessage,
  peerMessageSchema,
  type WorkerMessage,
  workerMessageSchema,
} from './messages.js';
import { escapeUnprintable } from './printable.js';

function parseWith<T>(schema: z.ZodType<T>, value: unknown, sender: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue?.path.length ? issue.path.join('.') : 'message';
  // Escaped: the sender chose the keys a path or an unknown key's message names, and this is logged.
  throw new CallosumError(
    ErrorCodes.MALFORMED_MESSAGE,
    escapeUnprintable(
      `invalid message from ${sender}: ${where}: ${issue?.message ?? 'does not match the protocol'}`,
    ),
  );
}

/** Validates a decoded frame received from a worker; throws MALFORMED_MESSAGE naming the bad field. */
export function parseWorkerMessage(value: unknown): WorkerMessage {
  return parseWith(workerMessageSchema, value, 'worker');
}

/** Validates a decoded frame received from the coordinator. */
export function parseCoordinatorMessage(value: unknown): CoordinatorMessage {
  return parseWith(coordinatorMessageSchema, value, 'coordinator');
}

/** Validates a decoded frame received from another worker (ring topology). */
export function parsePeerMessage(value: unknown): PeerMessage {
  return parseWith(peerMessageSchema, value, 'peer');
}
