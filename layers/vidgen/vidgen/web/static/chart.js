// A bar chart in plain SVG: one bar per day, a few grid lines, labels that thin out when days are many.

const NS = 'http://www.w3.org/2000/svg';
const WIDTH = 560;
const HEIGHT = 220;
const PAD = { top: 16, right: 8, bottom: 28, left: 36 };

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceMax(value) {
  if (value <= 4) return 4;
  const step = 10 ** Math.floor(Math.log10(value));
  return Math.ceil(value / step) * step;
}

// points: [{date, value}], one per day in order.
export function barChart(points, { label, unit, barClass }) {
  const root = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-label': label });
  root.append(svg('title', {}, label));
  const max = niceMax(Math.max(0, ...points.map((p) => p.value)));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  for (let i = 0; i <= 4; i += 1) {
    const y = PAD.top + plotH - (plotH * i) / 4;
    root.append(svg('line', { class: i ? 'grid' : 'axis', x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y }));
    root.append(svg('text', { x: PAD.left - 6, y: y + 4, 'text-anchor': 'end' }, String(Math.round((max * i) / 4))));
  }
  const slot = plotW / Math.max(points.length, 1);
  const barW = Math.max(2, Math.min(28, slot * 0.7));
  const every = Math.ceil(points.length / 8);
  points.forEach((point, index) => {
    const x = PAD.left + slot * index + (slot - barW) / 2;
    const h = max ? (plotH * point.value) / max : 0;
    const bar = svg('rect', { class: `bar ${barClass}`, x: x.toFixed(1), y: (PAD.top + plotH - h).toFixed(1),
      width: barW.toFixed(1), height: h.toFixed(1), rx: 3, 'data-date': point.date, 'data-value': point.value });
    bar.append(svg('title', {}, `${point.date}: ${point.value} ${unit}`));
    root.append(bar);
    if (point.value && points.length <= 16) {
      root.append(svg('text', { class: 'value', x: (x + barW / 2).toFixed(1), y: (PAD.top + plotH - h - 4).toFixed(1),
        'text-anchor': 'middle' }, String(point.value)));
    }
    if (index % every === 0 || index === points.length - 1) {
      root.append(svg('text', { x: (x + barW / 2).toFixed(1), y: HEIGHT - 8, 'text-anchor': 'middle' }, point.date.slice(5)));
    }
  });
  return root;
}
