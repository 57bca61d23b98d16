import { closest, distance } from 'fastest-levenshtein';

/**
 * What an unknown `name` may have meant, to append to the message that refuses it: ` (did you mean
 * "x"?)` for the known name it spells in another case, else for the name `aliases` gives for it (other
 * spellings, keyed in lower case), else for the known name nearest to it when that is near (a typo
 * away); '' when nothing is. An alias of a name outside `known` is explained instead: suggesting that
 * name would only fail again.
 */
export function didYouMean(
  name: string,
  known: readonly string[],
  aliases: Readonly<Record<string, string>> = {},
): string {
  const key = name.toLowerCase();
  const lowerKnown = known.map((candidate) => candidate.toLowerCase());
  const alias = Object.hasOwn(aliases, key) ? aliases[key] : undefined;
  if (alias !== undefined && !lowerKnown.includes(key)) {
    return known.includes(alias)
      ? ` (did you mean "${alias}"?)`
      : ` ("${name}" stands for ${alias}, which Callosum does not have)`;
  }
  const nearest = closest(key, lowerKnown);
  return distance(key, nearest) <= 2 ? ` (did you mean "${known[lowerKnown.indexOf(nearest)]}"?)` : '';
}
