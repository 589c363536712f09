#!/usr/bin/env node
// browser_check.js - what a ComfyUI user sees of this pack, checked in a real Chromium (playwright-core).
// Not part of CI: it needs a running ComfyUI with this pack installed, node, playwright-core and Chromium.
//
//   NODE_PATH=<dir with playwright-core> node tools/browser_check.js [--url http://127.0.0.1:8188]
//       [--out browser-check] [--width 1600] [--height 1000] [--wait 600] [--no-run] [--chromium /usr/bin/chromium]
//
// 1. Template browser: /api/workflow_templates lists this pack's templates, the quick start first,
//    each with a thumbnail (<name>.jpg beside it) that loads; a screenshot of the browser dialog.
// 2. Every template: opened from the server (as the browser opens it), fitted into the window; the zoom
//    that needs is printed (the frontend hides text below ~0.6); a screenshot.
// 3. The quick start and the align template, each run with the Run button; on the page: the Scene Cut Hit report
//    on its node (Sync Report / Align Music), an audio player with the music on every node that makes audio,
//    no node outside its group. Load Music's upload button and player are checked in step 2.
// Prints one JSON line per step and a summary; exit 1 when a check fails. Screenshots go to --out.
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

function args(argv) {
  const a = { url: 'http://127.0.0.1:8188', out: 'browser-check', width: 1600, height: 1000, wait: 600, run: true,
              chromium: process.env.CHROMIUM || '/usr/bin/chromium' };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i], next = () => argv[++i];
    if (k === '--url') a.url = next().replace(/\/$/, '');
    else if (k === '--out') a.out = next();
    else if (k === '--width') a.width = Number(next());
    else if (k === '--height') a.height = Number(next());
    else if (k === '--wait') a.wait = Number(next());
    else if (k === '--no-run') a.run = false;
    else if (k === '--chromium') a.chromium = next();
    else { console.error(`unknown argument ${k}`); process.exit(2); }
  }
  return a;
}

const log = (o) => console.log(JSON.stringify(o));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const failures = [];
const errors = [];
let reported = 0;
function check(name, ok, detail) {
  const fresh = errors.slice(reported); reported = errors.length;
  log({ check: name, ok: !!ok, ...(detail === undefined ? {} : { detail }), ...(fresh.length ? { pageErrors: fresh } : {}) });
  if (!ok) failures.push(name);
}

async function getJSON(url) { return (await fetch(url)).json(); }

async function openApp(page, a) {
  await page.goto(a.url, { waitUntil: 'domcontentloaded', timeout: 120000 });
  await page.waitForFunction(() => {
    const app = window.comfyAPI?.app?.app;
    return !!(app && app.graph && app.canvas && document.querySelector('canvas'));
  }, null, { timeout: 120000, polling: 500 });
  await sleep(1500);
  for (let i = 0; i < 3; i++) { await page.keyboard.press('Escape'); await sleep(300); } // first-run dialogs
}

// The zoom at which the whole graph (nodes, their titles, groups) fits the canvas, and apply it.
async function fit(page) {
  return page.evaluate(() => {
    const app = window.comfyAPI.app.app, g = app.graph, c = app.canvas;
    const boxes = (g._nodes || g.nodes || []).map((n) => [n.pos[0], n.pos[1] - 30, n.size[0], n.size[1] + 30])
      .concat((g._groups || g.groups || []).map((gr) => gr._bounding || gr.bounding));
    const x0 = Math.min(...boxes.map((b) => b[0])), y0 = Math.min(...boxes.map((b) => b[1]));
    const x1 = Math.max(...boxes.map((b) => b[0] + b[2])), y1 = Math.max(...boxes.map((b) => b[1] + b[3]));
    const el = c.canvas, W = el.clientWidth, H = el.clientHeight;
    const scale = Math.min(W / (x1 - x0), H / (y1 - y0));
    c.ds.scale = scale;
    c.ds.offset[0] = -x0 + (W / scale - (x1 - x0)) / 2;
    c.ds.offset[1] = -y0 + (H / scale - (y1 - y0)) / 2;
    c.setDirty(true, true);
    return { zoom: +scale.toFixed(3), bounds: [x0, y0, x1, y1].map(Math.round), canvas: [W, H] };
  });
}

// Nodes that lie (partly) outside every group they overlap: the "spills out of its group" defect.
async function spills(page) {
  return page.evaluate(() => {
    const g = window.comfyAPI.app.app.graph;
    const groups = (g._groups || g.groups || []).map((gr) => ({ t: gr.title, b: gr._bounding || gr.bounding }));
    const out = [];
    for (const n of g._nodes || g.nodes || []) {
      const nb = [n.pos[0], n.pos[1] - 30, n.pos[0] + n.size[0], n.pos[1] + n.size[1]];
      for (const { t, b } of groups) {
        const gb = [b[0], b[1], b[0] + b[2], b[1] + b[3]];
        const overlaps = nb[0] < gb[2] && nb[2] > gb[0] && nb[1] < gb[3] && nb[3] > gb[1];
        const inside = nb[0] >= gb[0] && nb[1] >= gb[1] && nb[2] <= gb[2] && nb[3] <= gb[3];
        if (overlaps && !inside) out.push(`${n.title} (${n.id}) outside '${t}'`);
      }
    }
    return out;
  });
}

async function loadTemplate(page, a, module, name) {
  const wf = await getJSON(`${a.url}/api/workflow_templates/${encodeURIComponent(module)}/${encodeURIComponent(name)}.json`);
  await page.evaluate(async (wf) => { await window.comfyAPI.app.app.loadGraphData(wf); }, wf);
  await sleep(1500);
}

async function clickRun(page) {
  for (const sel of ['[data-testid="queue-button"]', 'button:has-text("Run")', 'button:has-text("Queue")', '#queue-button']) {
    const b = page.locator(sel).first();
    if (await b.count() && await b.isVisible()) { await b.click(); return sel; }
  }
  return null;
}

async function main() {
  const a = args(process.argv);
  fs.mkdirSync(a.out, { recursive: true });
  const browser = await chromium.launch({ executablePath: a.chromium, headless: true,
                                          args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] });
  try {
    const page = await (await browser.newContext({ viewport: { width: a.width, height: a.height } })).newPage();
    page.on('pageerror', (e) => errors.push(String(e).slice(0, 300)));
    const thumbsLoaded = []; // thumbnails the page fetched (the dialog's cards)
    page.on('response', (r) => {
      if (/workflow_templates\/.*\.jpg/.test(r.url())) thumbsLoaded.push({ src: decodeURIComponent(r.url().split('/').pop()), loaded: r.status() === 200 });
    });
    page.on('console', (m) => { if (m.type() === 'error') errors.push('console: ' + m.text().slice(0, 300)); });
    await openApp(page, a);
    await page.evaluate(() => { // the minimap would cover part of the screenshots
      try { window.comfyAPI.app.app.ui.settings.setSettingValue('Comfy.Minimap.Visible', false); } catch (e) { /* older */ }
    });
    const stats = await getJSON(`${a.url}/system_stats`);
    log({ host: stats.system?.comfyui_version, frontend: await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ || null) });

    // 1. template browser
    const listed = await getJSON(`${a.url}/api/workflow_templates`);
    const module = Object.keys(listed).find((m) => (listed[m] || []).some((n) => /quick[ _-]?start/i.test(n)));
    check('templates listed', module, listed);
    if (!module) throw new Error('no template of this pack listed');
    const names = listed[module];
    log({ step: 'server listing order (file system order)', names });
    for (const n of names) {
      const r = await fetch(`${a.url}/api/workflow_templates/${encodeURIComponent(module)}/${encodeURIComponent(n)}.jpg`);
      const size = Number(r.headers.get('content-length') || 0);
      check(`thumbnail ${n}`, r.status === 200 && /image\/jpeg/.test(r.headers.get('content-type') || ''), { status: r.status, size });
    }
    const opened = await page.evaluate(async () => {
      const app = window.comfyAPI.app.app;
      try { await app.extensionManager.command.execute('Comfy.BrowseTemplates'); return true; } catch (e) { return String(e); }
    });
    await sleep(2500);
    try { // this pack's category in the dialog's side bar
      const item = page.getByText(module, { exact: true }).last();
      await item.scrollIntoViewIfNeeded({ timeout: 5000 });
      await item.click({ timeout: 5000 });
    } catch (e) { log({ step: 'template browser', note: `no side-bar entry '${module}': ${String(e).slice(0, 120)}` }); }
    await sleep(2500);
    // the cards as the dialog shows them: our titles in page order, and whether their thumbnails loaded
    const cards = await page.evaluate((names) => {
      const seen = [];
      const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const t = n.textContent.trim();
        if (names.includes(t) && n.parentElement.offsetParent !== null && !seen.includes(t)) seen.push(t);
      }
      return { order: seen };
    }, names);
    cards.thumbs = thumbsLoaded;
    log({ step: 'template browser', opened, ...cards });
    // the frontend lists a pack's templates in the server's order (its folder listing), or sorted A -> Z
    check('quick start is the first card in the dialog', cards.order.length && /quick[ _-]?start/i.test(cards.order[0]), cards.order);
    check('quick start first A -> Z', /quick[ _-]?start/i.test([...names].sort((x, y) => x.localeCompare(y))[0]));
    check('every card loaded its thumbnail', names.every((n) => cards.thumbs.some((t) => t.src === `${n}.jpg` && t.loaded)), cards.thumbs);
    await page.screenshot({ path: path.join(a.out, 'template_browser.png') });
    for (let i = 0; i < 3; i++) { await page.keyboard.press('Escape'); await sleep(300); }

    // 2. every template, fitted into the window
    for (const n of names) {
      await loadTemplate(page, a, module, n);
      const f = await fit(page);
      await sleep(800);
      const file = path.join(a.out, `template_${n.replace(/[^A-Za-z0-9]+/g, '_')}.png`);
      await page.screenshot({ path: file });
      const info = await page.evaluate(() => {
        const g = window.comfyAPI.app.app.graph;
        return (g._nodes || g.nodes).filter((n) => n.type === 'V2M_LoadAudio').map((n) => ({
          widgets: n.widgets.map((w) => `${w.name}:${w.type}`), values: n.serialize().widgets_values }));
      });
      log({ template: n, ...f, screenshot: file, loadMusic: info.length ? info : undefined });
      check(`${n}: readable zoom (>= 0.7 at ${a.width}x${a.height})`, f.zoom >= 0.7, f.zoom);
      if (info.length) {
        check(`${n}: Load Music has core's upload button and player`,
              info.every((i) => i.widgets.includes('upload:button') && i.widgets.some((w) => w.startsWith('audioUI:'))), info);
      }
    }

    // 3. run the quick start (and the align template) with the Run button, as a user does; not 'Generate, then
    //    align': with its Music Source on 'file' the lazy generator branch (Sampler, Decode Latents) never runs
    const runs = a.run ? [[/quick[ _-]?start/i, 'quick start'], [/align your own/i, 'align']] : [];
    for (const [pattern, label] of runs) {
      const name = names.find((n) => pattern.test(n));
      if (!name) continue;
      await loadTemplate(page, a, module, name);
      // the server's cache would skip nodes that ran before, and with them the messages this check reads
      await fetch(`${a.url}/free`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                     body: JSON.stringify({ free_memory: true }) });
      const before = new Set(Object.keys(await getJSON(`${a.url}/history?max_items=10000`)));
      const via = await clickRun(page);
      check(`${label}: Run button found`, via, via);
      const t0 = Date.now();
      let done = null;
      while (Date.now() - t0 < a.wait * 1000) {
        await sleep(2000);
        const h = await getJSON(`${a.url}/history?max_items=10000`);
        const fresh = Object.entries(h).filter(([k]) => !before.has(k));
        const q = await getJSON(`${a.url}/queue`);
        if (fresh.length && !(q.queue_running || []).length && !(q.queue_pending || []).length) { done = fresh[0][1]; break; }
      }
      check(`${label} ran`, done && done.status?.status_str === 'success',
            done ? (done.status?.messages || []).filter((m) => m[0] === 'execution_error').map((m) => m[1].exception_message) : 'timeout');
      await sleep(2500);
      const seen = await page.evaluate(() => {
        const g = window.comfyAPI.app.app.graph;
        const nodes = g._nodes || g.nodes;
        const texts = {};
        for (const n of nodes) {
          const w = (n.widgets || []).find((x) => x.name === 'v2m_report');
          if (w) texts[`${n.type}#${n.id}`] = String(w.value || '').slice(0, 160);
        }
        const areas = Array.from(document.querySelectorAll('textarea')).filter((t) => t.offsetParent !== null).map((t) => t.value);
        const players = {};
        for (const n of nodes) {
          const w = (n.widgets || []).find((x) => x.name === 'audioUI');
          if (w) players[`${n.type}#${n.id}`] = w.element?.getAttribute('src') || '';
        }
        return { texts, reportOnPage: areas.some((v) => v.includes('Scene Cut Hit')), players };
      });
      log({ step: `${label} after run`, ...seen });
      log({ step: `${label} node sizes after run`, nodes: await page.evaluate(() => {
        const g = window.comfyAPI.app.app.graph;
        return (g._nodes || g.nodes).map((n) => [n.id, n.type, n.pos.map(Math.round), n.size.map(Math.round)]);
      }) });
      check(`${label}: Scene Cut Hit report shown on its node`, seen.reportOnPage
            && Object.values(seen.texts).some((v) => v.includes('Scene Cut Hit')), seen.texts);
      const players = Object.entries(seen.players);
      check(`${label}: an audio player with the music on every node that makes audio`,
            players.length > 0 && players.every(([, src]) => /\/view\?/.test(src)), seen.players);
      const sp = await spills(page);
      check(`${label}: no node outside its group after the run`, sp.length === 0, sp);
      const f = await fit(page);
      await sleep(800);
      await page.screenshot({ path: path.join(a.out, `${label.replace(/ /g, '_')}_after_run.png`) });
      log({ step: `${label} after run, fitted`, ...f });
      check(`${label} readable after the run (zoom >= 0.7)`, f.zoom >= 0.7, f.zoom);
    }
  } finally {
    await browser.close();
  }
  log({ summary: failures.length ? 'FAILED' : 'ok', failures, pageErrors: [...new Set(errors)].slice(0, 15) });
  process.exit(failures.length ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(3); });
