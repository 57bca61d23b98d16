/** What one progress line can show. */
export interface ProgressFields {
  readonly step: number;
  readonly totalSteps: number;
  readonly epoch: string;
  readonly loss: string;
  /** Absent when the task does not measure accuracy. */
  readonly acc?: string | undefined;
  readonly rate: string;
  /** "4 workers". */
  readonly workers: string;
  /** Seconds left, once it can be estimated. */
  readonly etaSeconds?: number | undefined;
}

type Optional = 'epoch' | 'loss' | 'acc' | 'rate' | 'workers' | 'eta';

/** When the terminal is too narrow, these go first to last: the ETA is what a person looks for. */
const DROP_ORDER: readonly Optional[] = ['workers', 'rate', 'acc', 'loss', 'epoch', 'eta'];
const MIN_BAR = 10;
const MAX_BAR = 30;
const SEPARATOR = ' | ';

function formatEta(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s).padStart(2, '0')}s`;
}

function bar(fraction: number, width: number): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
}

/**
 * One progress line that fits `columns` (one column spare, so the terminal never wraps it): fields that do
 * not fit are dropped in DROP_ORDER, then the bar; the step count always stays.
 */
export function formatProgressLine(fields: ProgressFields, columns: number): string {
  const texts: Record<Optional, string | undefined> = {
    epoch: `epoch ${fields.epoch}`,
    loss: `loss ${fields.loss}`,
    acc: fields.acc === undefined ? undefined : `acc ${fields.acc}`,
    rate: `${fields.rate} samples/s`,
    workers: fields.workers,
    eta: fields.etaSeconds === undefined ? undefined : `eta ${formatEta(fields.etaSeconds)}`,
  };
  const room = Math.max(1, columns - 1);
  const step = `step ${fields.step}/${fields.totalSteps}`;
  for (let dropped = 0; dropped <= DROP_ORDER.length; dropped++) {
    const kept = new Set(DROP_ORDER.slice(dropped));
    const shown = (name: Optional) => (kept.has(name) ? texts[name] : undefined);
    const head = shown('epoch');
    const tail = [step, shown('loss'), shown('acc'), shown('rate'), shown('workers'), shown('eta')]
      .filter((text) => text !== undefined)
      .join(SEPARATOR);
    const withoutBar = head === undefined ? tail : `${head}${SEPARATOR}${tail}`;
    const barRoom = room - withoutBar.length - 3; // "|" around the bar and a space
    if (barRoom >= MIN_BAR) {
      const width = Math.min(MAX_BAR, barRoom);
      const drawn = `|${bar(fields.step / fields.totalSteps, width)}|`;
      return head === undefined ? `${drawn} ${tail}` : `${head} ${drawn} ${tail}`;
    }
    if (withoutBar.length <= room) return withoutBar;
  }
  return step.slice(0, room);
}
