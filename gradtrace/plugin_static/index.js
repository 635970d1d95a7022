// gradtrace's TensorBoard tab: findings, a layer x step health map and the
// step timing strip of one run. Plain ES module, no framework, no build.
// Every name that comes from the logdir is inserted as text, never as HTML.

const QUANTITIES = {
  grad_rms: {label: 'gradient RMS', log: true},
  update_ratio: {label: 'update ratio', log: true},
  dead_frac: {label: 'dead unit share', log: false},
  act_std: {label: 'activation std', log: true},
};
const ROW = 18;

function el(tag, attrs = {}, text = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== null) e.textContent = text;
  return e;
}

async function getJSON(path, params = {}) {
  const q = new URLSearchParams(params).toString();
  const r = await fetch(q ? `${path}?${q}` : path);
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

function fmt(v) {
  if (v === null || v === undefined) return 'not measured';
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(2) : v.toPrecision(3);
}

// viridis-like ramp, t in [0, 1]
const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function color(t) {
  const p = Math.max(0, Math.min(1, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(p));
  const f = p - i;
  const c = RAMP[i].map((a, k) => Math.round(a + (RAMP[i + 1][k] - a) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function findingsTable(findings) {
  if (!findings.length) return el('p', {class: 'empty'}, 'No findings.');
  const t = el('table', {class: 'findings'});
  const head = el('tr');
  for (const h of ['severity', 'kind', 'layer', 'steps', 'count', 'message', 'hint']) head.appendChild(el('th', {}, h));
  t.appendChild(head);
  for (const f of findings) {
    const tr = el('tr', {class: `finding ${f.severity}`});
    tr.appendChild(el('td', {class: 'severity'}, f.severity));
    tr.appendChild(el('td', {class: 'kind'}, f.kind));
    tr.appendChild(el('td', {class: 'layer'}, f.layer === null ? '(model)' : f.layer));
    tr.appendChild(el('td', {}, f.step === f.last_step ? `${f.step}` : `${f.step}-${f.last_step}`));
    tr.appendChild(el('td', {}, `${f.count}`));
    tr.appendChild(el('td', {}, f.message));
    tr.appendChild(el('td', {class: 'hint'}, f.hint));
    t.appendChild(tr);
  }
  return t;
}

function drawHealth(container, data, tooltip, onSelect) {
  container.textContent = '';
  if (!data.layers.length || !data.steps.length) {
    container.appendChild(el('p', {class: 'empty'}, 'No per-layer data for this quantity.'));
    return;
  }
  const spec = QUANTITIES[data.quantity];
  const marked = new Map();  // layer -> findings
  for (const f of data.findings) {
    if (f.layer === null) continue;
    if (!marked.has(f.layer)) marked.set(f.layer, []);
    marked.get(f.layer).push(f);
  }
  const map = el('div', {class: 'map'});
  const labels = el('div', {class: 'labels'});
  data.layers.forEach((name, r) => {
    const lab = el('div', {class: 'row-label', 'data-row': `${r}`}, name);
    if (marked.has(name)) {
      lab.classList.add('marked');
      lab.title = marked.get(name).map((f) => f.kind).join(', ');
    }
    lab.addEventListener('click', () => onSelect(name, lab));
    labels.appendChild(lab);
  });
  const width = Math.max(300, Math.min(1100, window.innerWidth - 260));
  const canvas = el('canvas', {class: 'health', width: `${width}`, height: `${data.layers.length * ROW}`});
  const ctx = canvas.getContext('2d');
  const tr = (v) => (v === null ? null : spec.log ? (v > 0 ? Math.log10(v) : null) : v);
  let lo = Infinity, hi = -Infinity;
  for (const row of data.values) for (const v of row) {
    const t = tr(v);
    if (t !== null && isFinite(t)) { lo = Math.min(lo, t); hi = Math.max(hi, t); }
  }
  if (!spec.log) { lo = 0; hi = Math.max(hi, 1); }
  if (!(hi > lo)) { hi = lo + 1; }
  const n = data.steps.length;
  const cw = width / n;
  data.values.forEach((row, r) => {
    row.forEach((v, c) => {
      const t = tr(v);
      ctx.fillStyle = v === 0 && spec.log ? '#000'
          : t === null || !isFinite(t) ? '#bbb' : color((t - lo) / (hi - lo));
      ctx.fillRect(Math.floor(c * cw), r * ROW, Math.ceil(cw), ROW - 1);
    });
  });
  // findings: a red outline over their rows and steps
  const stepAt = (s) => {
    let c = 0;
    while (c + 1 < n && data.steps[c + 1] <= s) c++;
    return c;
  };
  ctx.strokeStyle = '#e00';
  ctx.lineWidth = 2;
  data.layers.forEach((name, r) => {
    for (const f of marked.get(name) || []) {
      const a = stepAt(f.step), b = stepAt(f.last_step);
      ctx.strokeRect(a * cw + 1, r * ROW + 1, Math.max(2, (b - a + 1) * cw - 2), ROW - 3);
    }
  });
  canvas.addEventListener('mousemove', (e) => {
    const box = canvas.getBoundingClientRect();
    const c = Math.min(n - 1, Math.floor((e.clientX - box.left) / cw));
    const r = Math.floor((e.clientY - box.top) / ROW);
    if (r < 0 || r >= data.layers.length || c < 0) { tooltip.style.display = 'none'; return; }
    const step = data.steps[c];
    const end = c + 1 < n ? data.steps[c + 1] - 1 : step;
    tooltip.textContent = `layer ${data.layers[r]}\nstep ${step === end ? step : `${step}-${end}`}\n${spec.label} ${fmt(data.values[r][c])}`;
    tooltip.style.left = `${e.clientX + 12}px`;
    tooltip.style.top = `${e.clientY + 12}px`;
    tooltip.style.display = 'block';
  });
  canvas.addEventListener('mouseleave', () => { tooltip.style.display = 'none'; });
  map.appendChild(labels);
  map.appendChild(canvas);
  container.appendChild(map);
  container.appendChild(el('div', {class: 'legend'},
      `${spec.label}${spec.log ? ' (log10 colour scale)' : ''}: ` +
      `${fmt(spec.log ? 10 ** lo : lo)} (dark) to ${fmt(spec.log ? 10 ** hi : hi)} (yellow); black: exactly 0; grey: not measured; ` +
      `red outline: a finding. Steps ${data.steps[0]}-${data.steps[n - 1]}. Click a layer for its series.`));
}

function drawSeries(container, name, quantity, points) {
  container.textContent = '';
  container.appendChild(el('h2', {}, `${name}: ${QUANTITIES[quantity].label}`));
  const ok = points.filter((p) => p[1] !== null);
  if (!ok.length) { container.appendChild(el('p', {class: 'empty'}, 'Not measured.')); return; }
  const width = Math.max(300, Math.min(1100, window.innerWidth - 60)), height = 140;
  const canvas = el('canvas', {class: 'series', width: `${width}`, height: `${height}`});
  const ctx = canvas.getContext('2d');
  const log = QUANTITIES[quantity].log && ok.every((p) => p[1] > 0);
  const y = (v) => (log ? Math.log10(v) : v);
  const xs = ok.map((p) => p[0]), ys = ok.map((p) => y(p[1]));
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (!(y1 > y0)) { y1 = y0 + 1; }
  ctx.strokeStyle = '#1a73e8';
  ctx.beginPath();
  ok.forEach((p, i) => {
    const px = ((p[0] - x0) / (x1 - x0)) * (width - 10) + 5;
    const py = height - 5 - ((y(p[1]) - y0) / (y1 - y0)) * (height - 10);
    if (i) ctx.lineTo(px, py); else ctx.moveTo(px, py);
  });
  ctx.stroke();
  container.appendChild(canvas);
  container.appendChild(el('div', {class: 'legend'},
      `steps ${x0}-${Math.max(...xs)}; ${fmt(log ? 10 ** y0 : y0)} to ${fmt(log ? 10 ** y1 : y1)}${log ? ' (log scale)' : ''}`));
}

function drawTiming(container, t, findings, tooltip) {
  container.textContent = '';
  if (!t.steps.length) { container.appendChild(el('p', {class: 'empty'}, 'No timing recorded.')); return; }
  const n = t.steps.length;
  const width = Math.max(300, Math.min(1100, window.innerWidth - 60)), height = 120;
  const canvas = el('canvas', {class: 'timing', width: `${width}`, height: `${height}`});
  const ctx = canvas.getContext('2d');
  const total = t.total_ms.map((v) => v || 0);
  const sorted = [...total].sort((a, b) => a - b);
  // Scaled to 4x the median step: compiles and stalls run off the top.
  const cap = Math.max(1e-6, sorted[Math.floor(sorted.length / 2)] * 4);
  const cw = width / n;
  const parts = [['data_ms', '#f4b400'], ['compute_ms', '#1a73e8'], ['host_ms', '#9e9e9e']];
  for (let c = 0; c < n; c++) {
    let y = height;
    for (const [k, col] of parts) {
      const h = Math.min(height, ((t[k][c] || 0) / cap) * height);
      ctx.fillStyle = col;
      ctx.fillRect(c * cw, y - h, Math.max(1, cw - 0.5), h);
      y -= h;
    }
    if (t.retraced[c] > 0) { ctx.fillStyle = '#9c27b0'; ctx.fillRect(c * cw, 0, Math.max(2, cw), 6); }
  }
  const slow = findings.filter((f) => ['slow_step', 'input_bound', 'retracing'].includes(f.kind));
  ctx.fillStyle = '#e00';
  for (const f of slow) {
    let c = 0;
    while (c + 1 < n && t.steps[c + 1] <= f.step) c++;
    ctx.beginPath(); ctx.moveTo(c * cw, 8); ctx.lineTo(c * cw + 5, 0); ctx.lineTo(c * cw - 5, 0); ctx.fill();
  }
  canvas.addEventListener('mousemove', (e) => {
    const box = canvas.getBoundingClientRect();
    const c = Math.min(n - 1, Math.max(0, Math.floor((e.clientX - box.left) / cw)));
    const here = slow.filter((f) => f.step >= t.steps[c] && (c + 1 >= n || f.step < t.steps[c + 1]));
    tooltip.textContent = `step ${t.steps[c]}\ntotal ${fmt(t.total_ms[c])} ms\ndata ${fmt(t.data_ms[c])}, compute ${fmt(t.compute_ms[c])}, host ${fmt(t.host_ms[c])} ms` +
        (t.retraced[c] > 0 ? '\nretraced' : '') + here.map((f) => `\n${f.kind}: ${f.message}`).join('');
    tooltip.style.left = `${e.clientX + 12}px`;
    tooltip.style.top = `${e.clientY + 12}px`;
    tooltip.style.display = 'block';
  });
  canvas.addEventListener('mouseleave', () => { tooltip.style.display = 'none'; });
  container.appendChild(canvas);
  container.appendChild(el('div', {class: 'legend'},
      'Step time split: data (yellow), compute (blue), host (grey), up to 4x the median step; purple: retrace; red marks: timing findings (hover for the cause).'));
}

export async function render() {
  const css = el('link', {rel: 'stylesheet', href: './static/style.css'});
  document.head.appendChild(css);
  document.body.appendChild(el('h1', {}, 'gradtrace: why is training slow, stuck or broken?'));
  const tooltip = el('div', {class: 'tooltip'});
  document.body.appendChild(tooltip);
  const runs = await getJSON('./runs');
  if (!runs.length) {
    document.body.appendChild(el('p', {class: 'empty'}, 'No gradtrace run in this logdir.'));
    return;
  }
  const bar = el('div');
  const runPick = el('select', {class: 'run-picker'});
  for (const r of runs) runPick.appendChild(el('option', {value: r.run}, r.run));
  const qPick = el('select', {class: 'quantity-picker'});
  for (const [k, v] of Object.entries(QUANTITIES)) qPick.appendChild(el('option', {value: k}, v.label));
  bar.append(el('label', {}, 'run '), runPick, el('label', {}, 'quantity '), qPick);
  const findingsBox = el('div', {class: 'findings-box'});
  const healthBox = el('div', {class: 'health-box'});
  const seriesBox = el('div', {class: 'series-box'});
  const timingBox = el('div', {class: 'timing-box'});
  document.body.append(bar,
      el('h2', {}, 'Findings (worst first)'), findingsBox,
      el('h2', {}, 'Layer x step health'), healthBox, seriesBox,
      el('h2', {}, 'Step timing'), timingBox);

  let token = 0;
  async function show() {
    const mine = ++token;
    const run = runPick.value, quantity = qPick.value;
    findingsBox.textContent = healthBox.textContent = timingBox.textContent = 'Loading...';
    seriesBox.textContent = '';
    const [health, timing] = await Promise.all([
      getJSON('./health', {run, quantity}), getJSON('./timing', {run})]);
    if (mine !== token) return;
    findingsBox.textContent = '';
    findingsBox.appendChild(findingsTable(health.findings));
    drawHealth(healthBox, health, tooltip, async (layer, label) => {
      for (const l of healthBox.querySelectorAll('.row-label.selected')) l.classList.remove('selected');
      label.classList.add('selected');
      drawSeries(seriesBox, layer, quantity, await getJSON('./series', {run, layer, quantity}));
    });
    drawTiming(timingBox, timing, health.findings, tooltip);
    document.body.setAttribute('data-ready', run);
  }
  runPick.addEventListener('change', show);
  qPick.addEventListener('change', show);
  await show();
}
