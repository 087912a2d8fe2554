// The operating picture: Natural Earth boundaries (no tile server needed), the mission's areas, incidents (points, or
// counts per cell when there are many in view), TAK tracks, filters with a time slider, a side panel, and live updates
// that re-read the map through the API whenever the server announces a change this member may see.
'use strict';
(() => {
  const { text: t, number, day, banner } = Concord;
  const el = document.getElementById('map');
  const panel = document.getElementById('panel');
  const status = document.getElementById('map-status');
  const form = document.getElementById('filters');
  const from = document.getElementById('f-from');
  const to = document.getElementById('f-to');
  const windowOut = document.getElementById('f-window');
  const start = new Date(el.dataset.start);
  const days = Number(el.dataset.days);

  // Zoom stops where the server's map stops (22): with no tile layer to set a limit, Leaflet would zoom on for ever, to a
  // zoom the map query refuses.
  const map = L.map(el, { preferCanvas: true, worldCopyJump: true, attributionControl: true, maxZoom: 22 });
  // The base map's credit, on the map itself (Natural Earth asks for it; the page footer credits the event data).
  map.attributionControl.setPrefix(false).addAttribution('Made with Natural Earth');
  const b = (el.dataset.bounds || '14.4,2.2,27.5,11.0').split(',').map(Number);
  map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
  if (el.dataset.tiles) L.tileLayer(el.dataset.tiles, { maxNativeZoom: 18, maxZoom: 22 }).addTo(map);
  else Concord.readUntilRead('ui/geo/countries-50m.json', topo => {
    L.geoJSON(topojson.feature(topo, topo.objects.countries), { style: { color: '#7a7a70', weight: 1, fillColor: '#f1f1ea', fillOpacity: 1 }, interactive: false }).addTo(map).bringToBack();
    // (Tests watch it.)
    el.dataset.baseMap = 'drawn';
  });

  const areas = L.geoJSON(null, {
    style: { color: '#5b6b7a', weight: 1.2, fill: false, dashArray: '4 3' },
    onEachFeature: (f, layer) => layer.bindTooltip(escapeHtml(f.properties.name), { sticky: true }),
  });
  Concord.readUntilRead('/api/areas/geojson', g => areas.addData(g));
  const incidents = L.layerGroup().addTo(map);
  const tracks = L.layerGroup().addTo(map);
  const risk = L.layerGroup();
  const coordination = L.layerGroup().addTo(map);
  const layerToggles = { 'layer-incidents': incidents, 'layer-tracks': tracks, 'layer-areas': areas, 'layer-risk': risk, 'layer-coordination': coordination };
  areas.addTo(map);

  // Category families: a colour and a letter, so that symbols read without colour too.
  const families = [
    ['violence', 'V', c => /^(acled\.(battles|violence-against-civilians)|ucdp\.|poc\.killing)/.test(c)],
    ['remote', 'E', c => c.startsWith('acled.explosions-remote-violence')],
    ['unrest', 'P', c => /^acled\.(protests|riots)/.test(c)],
    ['access', 'A', c => c.startsWith('ocha-access.') || c === 'poc.denial-of-humanitarian-access'],
    ['protection', 'C', c => c.startsWith('poc.')],
    ['other', 'O', () => true],
  ];
  const family = code => families.find(f => f[2](code));
  const legend = document.getElementById('legend');
  for (const [name, letter] of families) {
    const li = document.createElement('li');
    li.innerHTML = `<span class="sym sym-${name}">${letter}</span> `;
    li.append(t('legend.' + name));
    legend.append(li);
  }
  const clusterItem = document.createElement('li');
  clusterItem.innerHTML = '<span class="cluster-key">12</span> ';
  clusterItem.append(t('legend.cluster'));
  legend.append(clusterItem);

  const iso = offset => new Date(start.getTime() + offset * 86400000);
  // At its left end the slider sets no start: incidents before it are drawn too (the span is set by unclassified ones only,
  // whose dates may be written under any banner), so the window says only where it ends.
  function describeWindow() {
    const a = iso(Number(from.value)), z = day.format(new Date(iso(Number(to.value) + 1).getTime() - 1));
    windowOut.textContent = Number(from.value) > 0 ? t('window', day.format(a), z) : t('window.until', z);
  }

  function query(extra) {
    const p = new URLSearchParams();
    for (const name of ['q', 'category', 'organization', 'status', 'classification']) {
      const v = form.elements[name].value.trim();
      if (v) p.set(name, v);
    }
    if (Number(from.value) > 0) p.set('from', iso(Number(from.value)).toISOString());
    // The last moment of the window's last day (`to` is inclusive): the next midnight would draw that day's incidents too.
    if (Number(to.value) < days) p.set('to', new Date(iso(Number(to.value) + 1).getTime() - 1).toISOString());
    for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
    return p;
  }

  // margin: degrees added on every side (the risk layer's cells are chosen by their centre, which may lie off screen).
  function viewport(margin = 0) {
    const bounds = map.getBounds();
    const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
    return [clamp(bounds.getWest() - margin, -180, 180), clamp(bounds.getSouth() - margin, -90, 90), clamp(bounds.getEast() + margin, -180, 180),
      clamp(bounds.getNorth() + margin, -90, 90)].map(v => v.toFixed(5)).join(',');
  }

  // What is on screen decides the banners: incidents and cells, tracks, requests and patrols, and the open panel.
  let onScreen = { level: 0, caveats: 0n };
  const layerMarks = { tracks: { level: 0, caveats: 0n }, coordination: { level: 0, caveats: 0n } };
  const marksOf = features => features.reduce((m, f) => ({ level: Math.max(m.level, f.properties.level ?? 0), caveats: m.caveats | BigInt(f.properties.caveats ?? 0) }), { level: 0, caveats: 0n });
  // The incidents drawn go (a refused read): nothing of them is shown or counted in the banner.
  function clearIncidents() {
    incidents.clearLayers();
    onScreen = { level: 0, caveats: 0n };
    updateBanner();
    Object.assign(state, { clustered: false, total: 0, ids: [] });
  }

  // A layer's read refused because the session ended (signed out in another window, a password changed, an account
  // disabled) or may no longer read it: what the layer shows goes at once, as the incidents do, rather than staying drawn
  // (tracks move without a change on the live channel, which would close it). True when it was so.
  function refusedLayer(response, layer, name) {
    if (!response || (response.status !== 401 && response.status !== 403)) return false;
    layer.clearLayers();
    state[name] = [];
    layerMarks[name] = { level: 0, caveats: 0n };
    updateBanner();
    Concord.checkSession();
    return true;
  }

  function updateBanner() {
    // Incidents count only while their layer is shown, as the other layers do; so does the line that counts them, which
    // is figures drawn from them (a count of three STRICTLY CONFIDENTIAL incidents under an UNCLASSIFIED banner otherwise).
    status.hidden = !map.hasLayer(incidents);
    let level = map.hasLayer(incidents) ? onScreen.level : 0, caveats = map.hasLayer(incidents) ? onScreen.caveats : 0n;
    for (const [name, marks] of Object.entries(layerMarks)) {
      if (!map.hasLayer(name === 'tracks' ? tracks : coordination)) continue;
      level = Math.max(level, marks.level);
      caveats |= marks.caveats;
    }
    const shown = panel.hidden ? null : panel.querySelector('[data-level]');
    if (shown) { level = Math.max(level, Number(shown.dataset.level)); caveats |= BigInt(shown.dataset.caveats); }
    banner(level, caveats);
  }

  const fresh = new Set();
  let generation = 0;
  // The live channel's state: up once the view read after it (re)connected is on screen.
  let resynced = true;
  let resyncedFrom = 0;
  // What the map shows, for tests and benchmarks: incident ids, track uids, shaded risk cells, requests and patrols.
  const state = window.concordMap = { loads: 0, lastLoadMs: 0, clustered: false, total: 0, ids: [], tracks: [], riskCells: 0, coordination: [], map };
  // quiet: a read in the background (after the live channel came up), which leaves the status line as it is.
  // Each read supersedes the one before (a pan, a filter: what the older one asked is not what the map should show), and
  // the superseded one is cancelled, not left to use up a weak link. A live change while a read is under way waits for it
  // and reads once more (liveChange): on a link slower than the changes come, a change superseding every read left the
  // layer never drawn.
  let reading = 0, readAgain = false, aborter = null;
  async function load(quiet = false) {
    const mine = ++generation;
    aborter?.abort();
    const abort = aborter = new AbortController();
    reading++;
    try {
      await read(mine, abort.signal, quiet);
    } finally {
      if (aborter === abort) aborter = null;
      if (--reading === 0 && readAgain) { readAgain = false; soon(0); }
    }
  }
  const liveChange = () => { if (reading > 0) readAgain = true; else soon(100); };
  async function read(mine, signal, quiet) {
    const began = performance.now();
    if (!quiet) status.textContent = t('loading');
    let response;
    try {
      response = await fetch('/api/incidents/map?' + query({ bbox: viewport(), zoom: map.getZoom() }), { headers: { Accept: 'application/geo+json' }, signal });
    } catch {
      if (mine === generation) { status.textContent = t('failed'); setTimeout(load, 5000); }
      return;
    }
    if (!response.ok) {
      if (mine !== generation) return;
      if (response.status === 401 || response.status === 403) {
        // The session ended (signed out in another window, a password changed, an account disabled) or no longer reads
        // the map: what it showed goes at once, and an ended session leaves for the sign-in page, rather than keeping the
        // incidents drawn until the next change anywhere closes the live channel.
        clearIncidents();
        status.textContent = t('failed');
        Concord.checkSession();
        return;
      }
      if (response.status === 400) {
        // The filters as they now stand were refused (a "from" after "to"): what the map shows was read for others. It
        // goes, and the reason shows, at once (not an empty map still saying it is loading while the reason is read).
        const problem = await response.json().catch(() => null);
        if (mine !== generation) return;
        clearIncidents();
        // Crossed sliders are said in the page's language; any other refusal (an address edited by hand) as the server words it.
        status.textContent = !problem || !problem.errors ? t('failed')
          : problem.errors.from ? t('crossed') : Object.entries(problem.errors).map(([k, v]) => `${k}: ${v.join(' ')}`).join(' ');
        // What is on screen is what these filters give (nothing): the channel is live if it came up meanwhile.
        if (!resynced && mine > resyncedFrom) { resynced = true; el.dataset.live = 'up'; }
      } else {
        // The server or a proxy failed (a 5xx, a 429): tried again, as after a network failure.
        status.textContent = t('failed');
        setTimeout(() => { if (mine === generation) load(); }, 5000);
      }
      return;
    }
    let data;
    try {
      data = await Concord.readJson(response);
    } catch {
      // The link broke while the answer came (it is streamed): tried again, as after a failed request.
      if (mine === generation) { status.textContent = t('failed'); setTimeout(() => { if (mine === generation) load(); }, 5000); }
      return;
    }
    if (mine !== generation) return; // a newer request has been made meanwhile
    const clustered = response.headers.get('X-Concord-Clustered') === 'true';
    const total = Number(response.headers.get('X-Concord-Total'));
    // More incidents combining reports under different markings than one answer rebuilds: the counts may be short.
    const short = response.headers.get('X-Concord-Truncated') === 'true';
    incidents.clearLayers();
    let level = 0, caveats = 0n;
    const ids = [];
    for (const f of data.features) {
      const [x, y] = f.geometry.coordinates;
      const p = f.properties;
      level = Math.max(level, p.classification);
      caveats |= BigInt(p.caveats);
      if (p.cluster) {
        const size = p.count < 10 ? 26 : p.count < 100 ? 32 : p.count < 1000 ? 38 : 46;
        // Its highest marking in words too, not by colour alone (green and red are one colour to many eyes), and opened
        // with Enter as an incident is: a country-wide view is all clusters, and the keyboard could open none.
        const said = `${number.format(p.count)} · ${Concord.markingLabel(p.classification, BigInt(p.caveats))}`;
        const m = L.marker([y, x], {
          icon: L.divIcon({ className: 'cluster level-' + p.classification, html: `<span>${number.format(p.count)}</span>`, iconSize: [size, size] }),
          title: said, alt: said, riseOnHover: true,
        });
        const open = () => map.setView([y, x], Math.min(map.getZoom() + 2, 18));
        m.on('click', open);
        m.on('keypress', e => { if (e.originalEvent.key === 'Enter') open(); });
        incidents.addLayer(m);
      } else {
        const [name, letter] = family(p.category);
        ids.push(f.id);
        const classes = `sym sym-${name}` + (fresh.has(f.id) ? ' fresh' : '') + (p.classification > 0 ? ' classified' : '');
        const m = L.marker([y, x], {
          icon: L.divIcon({ className: 'incident-icon', html: `<span class="${classes}" data-id="${f.id}">${letter}</span>`, iconSize: [22, 22] }),
          title: p.title, alt: p.title, riseOnHover: true,
        });
        m.bindTooltip(`${escapeHtml(p.title)}<br>${escapeHtml(p.marking ?? '')}`);
        m.on('click', () => openPanel(f.id, true));
        m.on('keypress', e => { if (e.originalEvent.key === 'Enter') openPanel(f.id, true); });
        incidents.addLayer(m);
      }
    }
    onScreen = { level, caveats };
    updateBanner();
    status.textContent = clustered ? t(short ? 'clusteredShort' : 'clustered', number.format(total)) : t('incidents', number.format(total));
    Object.assign(state, { loads: state.loads + 1, lastLoadMs: performance.now() - began, clustered, total, ids });
    el.dataset.loaded = String(state.loads);
    // Live once a read started after the channel came up is on screen (this one, or a newer one that overtook it).
    if (!resynced && mine > resyncedFrom) { resynced = true; el.dataset.live = 'up'; }
  }

  const escapeHtml = s => String(s).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

  // Each opening (a click, a live re-read) supersedes the one before, and a close supersedes them all: a slow answer
  // does not bring back a panel closed meanwhile. An incident the server no longer shows closes it. A live re-read that
  // fails (a weak link, a server answering 5xx) hides the panel too, since the change it was for may have withdrawn what
  // it shows (a clearance lowered, a report split out), and tries again every five seconds until it is answered or the
  // member opens another; a click that fails leaves the panel as it was.
  let panelGeneration = 0;
  let panelWanted = null;
  // Whether an opening is under way: a change told while it loads (the incident merged away) reads the panel again.
  let panelLoading = false;
  // focus: the member opened it (a click, Enter), not a live re-read, which must not take the focus from where they type.
  async function openPanel(id, focus = false, reread = false) {
    const mine = ++panelGeneration;
    panelWanted = id;
    panelLoading = true;
    const response = await fetch(`/ui/incidents/${id}/panel`).catch(() => null);
    const html = response && response.ok ? await response.text().catch(() => null) : null;
    if (mine !== panelGeneration) return;
    panelLoading = false;
    if (html === null) {
      // Not shown to this member (404, 403) or no session (401): the panel goes. A server failing (5xx, 429, a proxy's
      // 502) fails as the link does.
      if (response && (response.status === 404 || response.status === 403 || response.status === 401)) {
        hidePanel();
        if (response.status === 401) Concord.checkSession();
      } else if (reread) {
        hidePanel();
        const hidden = panelGeneration;
        setTimeout(() => { if (hidden === panelGeneration) openPanel(id, false, true); }, 5000);
      }
      return;
    }
    panel.innerHTML = html;
    panel.hidden = false;
    panel.dataset.id = id;
    updateBanner();
    panel.querySelector('h2')?.setAttribute('tabindex', '-1');
    if (focus) panel.querySelector('h2')?.focus();
    panel.querySelector('#panel-close')?.addEventListener('click', closePanel);
  }
  // A live re-read reads the incident last asked for (a click still loading wins over the one shown).
  const rereadPanel = () => openPanel(panelWanted ?? panel.dataset.id, false, true);
  function hidePanel() {
    panelGeneration++;
    panelWanted = null;
    panelLoading = false;
    panel.hidden = true;
    panel.innerHTML = '';
    delete panel.dataset.id;
    updateBanner();
  }
  function closePanel() {
    hidePanel();
    el.focus();
  }
  document.addEventListener('keydown', e => { if (e.key === 'Escape' && !panel.hidden) closePanel(); });

  // Each layer draws an answer only if it is newer than the one it shows: an older one arriving late (a weak network)
  // would draw again what a withdrawal since took away. Newer than the one shown, not the newest asked: on a link slower
  // than the tracks' five-second poll, every answer would otherwise be overtaken by the next request and none drawn.
  const latest = { tracks: 0, risk: 0, coordination: 0 };
  const drawn = { tracks: 0, risk: 0, coordination: 0 };
  // The answer's body, or null when the request or the body failed (a weak link).
  const bodyOf = async (response, read) => (response && response.ok ? await read(response).catch(() => null) : null);
  async function loadTracks() {
    if (!map.hasLayer(tracks)) return;
    const mine = ++latest.tracks;
    const response = await fetch('/api/tracks/geojson?' + new URLSearchParams({ bbox: viewport() })).catch(() => null);
    if (mine >= drawn.tracks && refusedLayer(response, tracks, 'tracks')) { drawn.tracks = mine; return; }
    const data = await bodyOf(response, Concord.readJson);
    if (!data || mine < drawn.tracks) return;
    drawn.tracks = mine;
    tracks.clearLayers();
    state.tracks = data.features.map(f => f.id);
    layerMarks.tracks = marksOf(data.features);
    updateBanner();
    for (const f of data.features) {
      const [x, y] = f.geometry.coordinates;
      tracks.addLayer(L.circleMarker([y, x], { radius: 6, color: '#0b3d91', weight: 2, fillColor: '#8ab4f8', fillOpacity: 0.9 })
        .bindTooltip(`${escapeHtml(f.properties.callsign ?? f.id)}<br>${escapeHtml(f.properties.marking ?? '')}`));
    }
  }

  // The forecast risk layer: P(at least one fatality in the forecast month) per 0.5° cell, with the model's back-test skill beside it.
  async function loadRisk() {
    if (!map.hasLayer(risk)) return;
    const mine = ++latest.risk;
    // The API keeps the cells whose centre lies in the box: half a cell more on every side shades every cell the screen
    // touches (zoomed in on a town inside one cell, the screen holds no centre at all).
    const response = await fetch('/api/early-warning/forecasts?' + new URLSearchParams({ bbox: viewport(0.25) })).catch(() => null);
    const data = await bodyOf(response, r => r.json());
    if (!data || mine < drawn.risk) return;
    drawn.risk = mine;
    risk.clearLayers();
    state.riskCells = 0;
    // The month forecast: the one after the last complete month with data (the month in progress, in a live mission).
    const oneDecimal = new Intl.NumberFormat(Concord.context.culture, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
    const forecastMonth = data.month
      ? new Intl.DateTimeFormat(Concord.context.culture, { year: 'numeric', month: 'long', timeZone: 'UTC' }).format(new Date(data.month))
      : '';
    for (const f of data.items) {
      const p = f.atLeastOne;
      if (p < 0.02) continue;
      state.riskCells++;
      risk.addLayer(L.rectangle([[f.latitude - 0.25, f.longitude - 0.25], [f.latitude + 0.25, f.longitude + 0.25]],
        { stroke: false, fillColor: '#a4161a', fillOpacity: Math.min(0.75, 0.1 + p * 0.8), interactive: true })
        .bindTooltip(t('risk', number.format(Math.round(p * 100)), oneDecimal.format(f.expected), number.format(f.low), number.format(f.high), forecastMonth)));
    }
    const skill = document.getElementById('risk-skill');
    if (skill.hidden) {
      const s = await fetch('/api/early-warning/skill').then(r => r.ok ? r.json() : null).catch(() => null);
      if (s) {
        // Scores as the page's language writes numbers; a model missing from the back-test shows as a dash.
        const fourDecimals = new Intl.NumberFormat(Concord.context.culture, { minimumFractionDigits: 4, maximumFractionDigits: 4 });
        const crps = name => { const m = s.models.find(m => m.model.startsWith(name)); return m ? fourDecimals.format(m.crps) : '—'; };
        skill.textContent = t('skill', crps('Concord'), crps('all zeros'), crps('conflictology'), s.from, s.to);
        skill.hidden = false;
      }
    }
  }

  // Open requests for assistance (at their place or along their route) and planned or running joint patrols.
  async function loadCoordination() {
    if (!map.hasLayer(coordination)) return;
    const mine = ++latest.coordination;
    const response = await fetch('/api/coordination/geojson').catch(() => null);
    if (mine >= drawn.coordination && refusedLayer(response, coordination, 'coordination')) { drawn.coordination = mine; return; }
    const data = await bodyOf(response, Concord.readJson);
    if (!data) {
      // Not polled as the tracks are: a failed read is tried again, or a request withdrawn meanwhile would stay drawn.
      if (mine === latest.coordination && (!response || response.status >= 500 || response.status === 429 || response.ok)) setTimeout(() => { if (mine === latest.coordination) loadCoordination(); }, 5000);
      return;
    }
    if (mine < drawn.coordination) return;
    drawn.coordination = mine;
    // More than the layer draws (the newest requests and patrols only): the layer's switch says so.
    const cut = response.headers.get('X-Concord-Truncated') === 'true';
    const toggle = document.getElementById('layer-coordination').parentElement;
    let note = toggle.querySelector('.layer-cut');
    if (cut && !note) toggle.append(' ', note = Object.assign(document.createElement('small'), { className: 'layer-cut', textContent: t('coordinationCut') }));
    else if (!cut && note) note.remove();
    coordination.clearLayers();
    state.coordination = data.features.map(f => f.id);
    layerMarks.coordination = marksOf(data.features);
    updateBanner();
    for (const f of data.features) {
      const p = f.properties;
      const color = p.kind === 'patrol' ? '#2e7d32' : p.overdue ? '#b3261e' : '#6a1b9a';
      const label = `${escapeHtml(p.title)} · ${escapeHtml(p.kind === 'patrol' ? t('patrol') : t('request', t('co.type.' + p.type)))} · ${escapeHtml(t((p.kind === 'patrol' ? 'co.patrol.' : 'co.request.') + p.status))}${p.overdue ? ' · ' + escapeHtml(t('overdue')) : ''} · ${escapeHtml(p.marking)}`;
      const layer = f.geometry.type === 'Point'
        ? L.circleMarker([f.geometry.coordinates[1], f.geometry.coordinates[0]], { radius: 8, color, weight: 3, fillColor: '#ffffff', fillOpacity: 0.9 })
        : L.polyline(f.geometry.coordinates.map(([x, y]) => [y, x]), { color, weight: 4, dashArray: p.kind === 'patrol' ? null : '8 6' });
      coordination.addLayer(layer.bindTooltip(label));
    }
  }

  let timer = null;
  const soon = (ms = 200) => { clearTimeout(timer); timer = setTimeout(load, ms); };
  map.on('moveend', () => { soon(50); loadTracks(); loadRisk(); });
  // The filters apply as they change: Enter in the text field submits nothing (no inline handler: the policy forbids them).
  form.addEventListener('submit', e => e.preventDefault());
  form.addEventListener('input', () => { describeWindow(); soon(250); });
  form.addEventListener('change', () => soon(0));
  form.addEventListener('reset', () => setTimeout(() => { describeWindow(); soon(0); }, 0));
  for (const [id, layer] of Object.entries(layerToggles)) {
    document.getElementById(id).addEventListener('change', e => { e.target.checked ? layer.addTo(map) : map.removeLayer(layer); updateBanner(); if (layer === tracks) loadTracks(); if (layer === risk) loadRisk(); if (layer === coordination) loadCoordination(); });
  }
  setInterval(loadTracks, 5000);

  // Live: ids only. Re-read the view through the API, so visibility is decided there; reopen the panel if it changed.
  Concord.live(changes => {
    for (const c of changes) fresh.add(c.id);
    // A map may stay open for days: the oldest marks go first (a set keeps the order ids came in).
    for (const id of fresh) { if (fresh.size <= 5000) break; fresh.delete(id); }
    liveChange();
    // A change of access (the member's clearance or caveats, a group, an agreement, an organisation) may take away what
    // is drawn or open: everything is read again, as on reconnecting.
    const access = changes.some(Concord.isAccessChange);
    if (access) {
      // Read at once and again once every node judges the member anew (Concord.afterAccessChange).
      Concord.afterAccessChange(() => { soon(0); loadTracks(); loadCoordination(); if (!panel.hidden || panelLoading) rereadPanel(); });
      return;
    }
    if (changes.some(c => c.entity === 'request' || c.entity === 'patrol')) loadCoordination();
    if ((!panel.hidden || panelLoading) && changes.some(c => c.id === panel.dataset.id || c.id === panelWanted)) rereadPanel();
  }, up => { if (!up) { resynced = true; el.dataset.live = 'down'; status.textContent = t('offline'); } }, () => {
    // (Re)connected: what changed while the channel was down, or before it first joined, was not pushed. The map says it
    // is live once it has read the view again.
    clearTimeout(timer);
    resyncedFrom = generation;
    resynced = false;
    load(true);
    loadTracks();
    loadCoordination();
    if (!panel.hidden || panelLoading) rereadPanel();
  });

  describeWindow();
  load();
  loadTracks();
  loadCoordination();
})();
