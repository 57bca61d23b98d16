import { panel } from './panel.js';
import type { RunModel } from './run-model.js';

const SVG = 'http://www.w3.org/2000/svg';
const HEIGHT = 240;
const MARGIN = { left: 56, right: 12, top: 10, bottom: 28 };
/** Where a worker's time in a step went, bottom to top; `update` is the coordinator's, after every shard is in. */
const PARTS = [
  { key: 'computeMs', label: 'compute', color: '#2563eb' },
  { key: 'transferMs', label: 'transfer', color: '#f59e0b' },
  { key: 'waitMs', label: 'wait', color: '#9ca3af' },
  { key: 'updateMs', label: 'update (coordinator)', color: '#059669' },
] as const;

function element<K extends keyof SVGElementTagNameMap>(
  name: K,
  attributes: Record<string, string | number>,
  text?: string,
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * The latest steps, one group of bars per step and one bar per worker in shard order, each stacked:
 * compute, transfer and wait as the coordinator measured them, then the coordinator's update.
 */
export class Timeline {
  private readonly svg: SVGSVGElement;
  private readonly panel: HTMLElement;

  constructor(container: HTMLElement) {
    const title = 'Timeline of the latest steps (ms per worker, stacked)';
    this.panel = panel(container, { id: 'timeline', title, wide: true });
    const legend = document.createElement('div');
    legend.className = 'legend';
    for (const part of PARTS) {
      const swatch = document.createElement('span');
      swatch.style.setProperty('--swatch', part.color);
      swatch.textContent = part.label;
      legend.append(swatch);
    }
    this.svg = element('svg', { height: HEIGHT, role: 'img' });
    this.panel.append(legend, this.svg);
  }

  render(model: RunModel): void {
    const steps = model.recentSteps;
    const width = Math.max(this.panel.clientWidth - 24, 200);
    this.svg.setAttribute('width', String(width));
    this.svg.dataset.steps = String(steps.length);
    const tallest = Math.max(
      1,
      ...steps.flatMap((step) =>
        step.perWorker.map((worker) => worker.computeMs + worker.transferMs + worker.waitMs + step.updateMs),
      ),
    );
    const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
    const y = (ms: number) => (ms / tallest) * plotHeight;
    const groupWidth = (width - MARGIN.left - MARGIN.right) / Math.max(steps.length, 1);
    const nodes: SVGElement[] = [];
    for (const fraction of [0, 0.5, 1]) {
      const top = MARGIN.top + plotHeight - y(tallest * fraction);
      nodes.push(
        element('line', { x1: MARGIN.left, x2: width - MARGIN.right, y1: top, y2: top, class: 'grid' }),
      );
      nodes.push(
        element(
          'text',
          { x: MARGIN.left - 6, y: top + 4, 'text-anchor': 'end' },
          `${Math.round(tallest * fraction)} ms`,
        ),
      );
    }
    steps.forEach((step, index) => {
      const left = MARGIN.left + index * groupWidth;
      const barWidth = (groupWidth * 0.8) / step.perWorker.length;
      step.perWorker.forEach((worker, rank) => {
        let bottom = MARGIN.top + plotHeight;
        for (const part of PARTS) {
          const ms = part.key === 'updateMs' ? step.updateMs : worker[part.key];
          const height = y(ms);
          bottom -= height;
          const bar = element('rect', {
            x: left + groupWidth * 0.1 + rank * barWidth,
            y: bottom,
            width: Math.max(barWidth - 1, 1),
            height,
            fill: part.color,
          });
          bar.append(
            element('title', {}, `step ${step.step}, ${worker.id}: ${part.label} ${ms.toFixed(1)} ms`),
          );
          nodes.push(bar);
        }
      });
      if (index % Math.ceil(steps.length / 10) === 0) {
        nodes.push(
          element(
            'text',
            { x: left + groupWidth / 2, y: HEIGHT - 8, 'text-anchor': 'middle' },
            `step ${step.step}`,
          ),
        );
      }
    });
    this.svg.replaceChildren(...nodes);
  }
}
