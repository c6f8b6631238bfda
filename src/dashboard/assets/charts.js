// Time-series charts on uPlot (loaded as a classic script before the modules run).

import { h } from './dom.js';

const AXIS = {
  stroke: '#8a93a3',
  font: '11px system-ui, sans-serif',
  grid: { stroke: '#eef0f3', width: 1 },
  ticks: { stroke: '#e4e7ec', width: 1, size: 4 },
};

/**
 * A live time chart. `series`: [{ label, color, fill? }]; `format` turns a y value into text.
 * `stacked` draws bars stacked in series order (the legend still shows each series' own value).
 * Answers { el, update(points), destroy() } where points is [{ t: epoch ms, v: [y...] }].
 */
export function timeChart({ series, format = String, height = 170, stacked = false, emptyText = 'No activity yet' }) {
  const el = h('div', { class: 'chart' });
  const overlay = h('div', { class: 'empty-overlay', text: emptyText });
  el.append(overlay);
  let plot = null;
  let raw = [[], ...series.map(() => [])];
  const uPlot = globalThis.uPlot;

  const drawn = () => {
    if (!stacked) return raw;
    // Cumulative sums, drawn from the tallest down so each bar shows its own slice.
    const out = [raw[0]];
    const acc = raw[0].map(() => 0);
    for (let s = 1; s < raw.length; s++) out.push(raw[s].map((v, i) => (acc[i] += v ?? 0)));
    return [out[0], ...out.slice(1).reverse()];
  };
  const ordered = stacked ? [...series].reverse() : series;
  const seriesOpts = ordered.map((s, k) => ({
    label: s.label,
    stroke: s.color,
    width: stacked ? 0 : 1.6,
    fill: stacked ? s.color : s.fill ? `${s.color}1f` : undefined,
    points: { show: false },
    paths: stacked ? uPlot.paths.bars({ size: [0.8, 14], gap: 1 }) : undefined,
    value: (_u, _v, _si, idx) => {
      if (idx === null || idx === undefined) return '–';
      const own = raw[stacked ? series.length - k : k + 1][idx];
      return own === null || own === undefined ? '–' : format(own);
    },
  }));

  const create = (width) => {
    plot = new uPlot(
      {
        width,
        height,
        cursor: { drag: { x: false, y: false }, points: { size: 6 } },
        legend: { live: true },
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] } },
        axes: [{ ...AXIS }, { ...AXIS, size: 58, values: (_u, vals) => vals.map((v) => format(v)) }],
        series: [{}, ...seriesOpts],
      },
      drawn(),
      el,
    );
  };
  const ro = new ResizeObserver(() => {
    const width = Math.floor(el.clientWidth);
    if (width <= 0) return;
    if (!plot) create(width);
    else if (Math.abs(plot.width - width) > 1) plot.setSize({ width, height });
  });
  ro.observe(el);

  return {
    el,
    update(points) {
      raw = [points.map((p) => p.t / 1000), ...series.map((_s, i) => points.map((p) => p.v[i]))];
      overlay.hidden = points.some((p) => p.v.some((v) => v !== null && v !== 0));
      plot?.setData(drawn());
    },
    destroy() {
      ro.disconnect();
      plot?.destroy();
    },
  };
}
