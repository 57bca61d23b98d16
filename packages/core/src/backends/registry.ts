import { CallosumError, ErrorCodes } from '../errors.js';

/** The compute backends a user can ask for; `auto` picks the fastest one that loads. */
export const BackendNames = {
  AUTO: 'auto',
  TENSORFLOW: 'tensorflow',
  WASM: 'wasm',
  CPU: 'cpu',
} as const;

export type BackendName = Exclude<(typeof BackendNames)[keyof typeof BackendNames], 'auto'>;
export type BackendPreference = BackendName | 'auto';

/** One way to get a backend: a package to load and the tfjs backend name it registers. */
export interface BackendCandidate {
  /** The user-facing backend this candidate provides. */
  readonly backend: BackendName;
  /** The npm package that provides it, as shown to the user. */
  readonly packageName: string;
  /** The name tfjs knows the backend by once loaded. */
  readonly tfjsBackend: string;
  /** Loads the package (registering its tfjs backend); throws if it cannot be loaded here. */
  readonly load: () => Promise<void>;
  /** How the loaded backend runs, if worth saying: the end of the backend choice's reason. */
  readonly describe?: () => string;
}

const candidates: BackendCandidate[] = [];

/** Adds a candidate; `auto` tries candidates in registration order. A package registers only once. */
export function registerBackendCandidate(candidate: BackendCandidate): void {
  if (candidates.some((existing) => existing.packageName === candidate.packageName)) {
    throw new CallosumError(
      ErrorCodes.DUPLICATE_REGISTRATION,
      `a backend candidate for package "${candidate.packageName}" is already registered`,
    );
  }
  candidates.push(candidate);
}

/** `name` as a backend preference; throws UNKNOWN_NAME, listing the choices, for any other name. */
export function requireBackendPreference(name: string): BackendPreference {
  const names = Object.values(BackendNames) as string[];
  if (!names.includes(name)) {
    throw new CallosumError(
      ErrorCodes.UNKNOWN_NAME,
      `unknown backend "${name}"; choose one of: ${names.join(', ')}`,
    );
  }
  return name as BackendPreference;
}

/** The candidates for a preference, in the order they are tried. */
export function candidatesFor(preference: BackendPreference): BackendCandidate[] {
  requireBackendPreference(preference);
  return preference === BackendNames.AUTO
    ? [...candidates]
    : candidates.filter((candidate) => candidate.backend === preference);
}
