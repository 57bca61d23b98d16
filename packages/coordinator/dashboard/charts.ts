import uPlot from 'uplot';
import { panel } from './panel.js';
import type { RunModel } from './run-model.js';

const CHART_HEIGHT = 220;
/** A chart fills its panel but for the panel's padding. */
const chartWidth = (box: HTMLElement) => Math.max(box.clientWidth - 24, 200);
const COLORS = { train: '#2563eb', test: '#dc2626', rate: '#059669', lr: '#7c3aed' };

type Series = (number | null)[];

interface ChartSpec {
  readonly id: string;
  /** What is measured, in which unit. */
  readonly title: string;
  /** The y axis's label. */
  readonly axis: string;
  readonly series: readonly { readonly label: string; readonly color: string; readonly sparse?: boolean }[];
  /** The x values (steps) and one array of y values per series. */
  readonly data: (model: RunModel) => [number[], ...Series[]];
}

/** Per step, merged with the evaluations (at the step they followed): training and test side by side. */
function trainingAndTest(
  model: RunModel,
  train: (step: RunModel['steps'][number]) => number,
  test: (evaluation: RunModel['evaluations'][number]) => number,
): [number[], Series, Series] {
  const columns = new Map<number, [number | null, number | null]>();
  for (const step of model.steps) columns.set(step.step, [train(step), null]);
  for (const evaluation of model.evaluations) {
    const column = columns.get(evaluation.step) ?? [null, null];
    columns.set(evaluation.step, [column[0], test(evaluation)]);
  }
  const steps = [...columns.keys()].sort((a, b) => a - b);
  return [
    steps,
    steps.map((step) => columns.get(step)?.[0] ?? null),
    steps.map((step) => columns.get(step)?.[1] ?? null),
  ];
}

/** A chart of a figure per step, with the test figure of each epoch's evaluation on it. */
function trainingAndTestChart(
  spec: Pick<ChartSpec, 'id' | 'title' | 'axis'>,
  train: (step: RunModel['steps'][number]) => number,
  test: (evaluation: RunModel['evaluations'][number]) => number,
): ChartSpec {
  return {
    ...spec,
    series: [
      { label: 'training (per step)', color: COLORS.train },
      { label: 'test (per epoch)', color: COLORS.test, sparse: true },
    ],
    data: (model) => trainingAndTest(model, train, test),
  };
}

const CHARTS: readonly ChartSpec[] = [
  trainingAndTestChart(
    { id: 'loss', title: 'Loss', axis: 'loss' },
    (step) => step.loss,
    (evaluation) => evaluation.testLoss ?? Number.NaN,
  ),
  trainingAndTestChart(
    { id: 'accuracy', title: 'Accuracy (%)', axis: '%' },
    (step) => (step.accuracy ?? Number.NaN) * 100,
    (evaluation) => (evaluation.testAccuracy ?? Number.NaN) * 100,
  ),
  {
    id: 'throughput',
    title: 'Throughput (samples/s, per step)',
    axis: 'samples/s',
    series: [{ label: 'samples/s', color: COLORS.rate }],
    data: (model) => [model.steps.map((step) => step.step), model.steps.map((step) => step.samplesPerSecond)],
  },
  {
    id: 'learning-rate',
    title: 'Learning rate (per step)',
    axis: 'learning rate',
    series: [{ label: 'learning rate', color: COLORS.lr }],
    data: (model) => [model.steps.map((step) => step.step), model.steps.map((step) => step.learningRate)],
  },
];

/** The run's charts, one uPlot each, x = step; `data-points` on each says how many steps it plots. */
export class RunCharts {
  private readonly charts: { readonly spec: ChartSpec; readonly plot: uPlot; readonly box: HTMLElement }[];

  constructor(container: HTMLElement) {
    this.charts = CHARTS.map((spec) => {
      const box = panel(container, { id: `chart-${spec.id}`, title: spec.title, wide: false });
      const plot = new uPlot(options(spec, chartWidth(box)), [[], ...spec.series.map(() => [])], box);
      return { spec, plot, box };
    });
    new ResizeObserver(() => {
      for (const { plot, box } of this.charts) plot.setSize({ width: chartWidth(box), height: CHART_HEIGHT });
    }).observe(container);
  }

  render(model: RunModel): void {
    for (const { spec, plot, box } of this.charts) {
      const data = spec.data(model);
      plot.setData(data);
      box.dataset.points = String(data[1]?.filter((value) => value !== null).length ?? 0);
      box.dataset.lastStep = String(data[0].at(-1) ?? 0);
    }
  }
}

function options(spec: ChartSpec, width: number): uPlot.Options {
  return {
    width,
    height: CHART_HEIGHT,
    scales: { x: { time: false } },
    axes: [{ label: 'step' }, { label: spec.axis, size: 60 }],
    series: [
      { label: 'step' },
      ...spec.series.map((series) => ({
        label: series.label,
        stroke: series.color,
        width: 1.5,
        spanGaps: series.sparse === true,
        points: { show: series.sparse === true, size: 6, fill: series.color },
      })),
    ],
  };
}
