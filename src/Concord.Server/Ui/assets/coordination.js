// The coordination inbox: requests and tasks of this member's organisation on boards by status, moved through the API,
// refreshed live when the server announces a change to one of them (ids only; the boards re-read through the API).
'use strict';
(() => {
  const t = Concord.text;
  const me = JSON.parse(document.getElementById('co-context').textContent);
  const when = new Intl.DateTimeFormat(Concord.context.culture, { dateStyle: 'short', timeStyle: 'short', timeZone: 'UTC' });
  const fmt = iso => iso ? when.format(new Date(iso)) + ' UTC' : '–';
  // The markings on screen, keyed by a letter for the part of the page that shows the record (r request, t task, l liaison,
  // m meeting, p patrol) and its id, and x for the metrics' counts: each part, read again, forgets only its own, as the
  // parts load apart.
  const onScreen = new Map();
  const forget = parts => { for (const key of [...onScreen.keys()]) if (parts.includes(key[0])) onScreen.delete(key); };

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  // The banners show the highest marking among the records on screen.
  function updateBanner() {
    let level = 0; let bits = 0n;
    // Caveats added since the page was read are named by their codes (never left out).
    const unknown = [];
    for (const m of onScreen.values()) {
      level = Math.max(level, Math.max(0, Concord.context.levels.indexOf(m.classification)));
      for (const code of m.caveats) {
        const bit = Concord.context.caveats.indexOf(code);
        if (bit >= 0) bits |= 1n << BigInt(bit);
        else if (!unknown.includes(code)) unknown.push(code);
      }
    }
    Concord.banner(level, bits, unknown);
  }

  // A send that failed on the way (the link dropped) answers as a refusal without fields, so that every form says so
  // and keeps what was typed.
  async function post(path, body) {
    try {
      const response = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, body: JSON.stringify(body) });
      const json = await response.json().catch(() => ({}));
      return { ok: response.ok, status: response.status, json };
    } catch {
      return { ok: false, status: 0, json: { detail: t('co.failed') } };
    }
  }

  function deadlines(d) {
    const parts = [];
    if (d.acknowledgeBy && !d.acknowledgedAt && !d.respondedAt) parts.push(t('co.ackby', fmt(d.acknowledgeBy)));
    if (d.respondBy && !d.respondedAt) parts.push(t('co.respondby', fmt(d.respondBy)));
    const line = el('p', { class: 'deadlines' }, parts.join(' · '));
    if (d.overdue) line.append(' ', el('strong', { class: 'overdue-flag' }, t('co.overdue.' + d.overdue)));
    return line;
  }

  // A move that needs a reason (decline) asks for it inline; the server checks it too.
  function actionButtons(actions, path, after) {
    const box = el('div', { class: 'co-actions' });
    const problem = el('p', { class: 'field-error', role: 'alert' });
    for (const action of actions) {
      box.append(el('button', {
        type: 'button', class: action === 'declined' || action === 'cancelled' ? null : 'primary', 'data-action': action,
        onclick: async () => {
          let reason;
          if (action === 'declined' || action === 'cancelled') {
            const input = box.querySelector('input.reason');
            if (!input) {
              const field = el('input', { class: 'reason', 'aria-label': t('co.reason'), placeholder: t('co.reason') });
              box.prepend(field); field.focus(); return;
            }
            reason = input.value;
          }
          const result = await post(path, { status: action, reason });
          if (!result.ok) problem.textContent = Object.values(result.json.errors || {}).flat().join(' ') || result.json.detail || t('co.failed');
          else after();
        },
      }, t('co.do.' + action)));
    }
    box.append(problem);
    return box;
  }

  function criteria(request) {
    const c = request.criteria || {};
    const rows = [];
    for (const [group, values] of [['lastResort', c.lastResort], ['escort', c.escort]]) {
      if (!values) continue;
      rows.push(el('h4', {}, t('co.criteria.' + group)));
      for (const [k, v] of Object.entries(values)) rows.push(el('p', {}, el('strong', {}, t('co.criteria.' + k) + ': '), v));
    }
    if (!rows.length) return null;
    // The addressee reads the criteria before answering: open while the request awaits its answer.
    const open = request.actions.includes('accepted');
    return el('details', { class: 'criteria', open }, el('summary', {}, t('co.criteria')), rows);
  }

  function requestCard(r) {
    onScreen.set('r' + r.id, r.marking);
    const who = `${r.requester} → ${r.addressee || t('co.anykind', t('kindof.' + r.addresseeKind))}${r.assignedTo && r.assignedTo !== r.addressee ? ' (' + r.assignedTo + ')' : ''}`;
    return el('li', { class: 'co-card' + (r.deadlines.overdue ? ' overdue' : '') + ' priority-' + r.priority, 'data-id': r.id, 'data-status': r.status },
      el('p', { class: 'co-title' }, el('strong', {}, r.title)),
      el('p', {}, t('co.type.' + r.type), ' · ', t('co.priority.' + r.priority), ' · ', who),
      el('p', {}, t('co.window', fmt(r.windowStart), fmt(r.windowEnd))),
      deadlines(r.deadlines),
      r.reason ? el('p', { class: 'reason' }, t('co.reason') + ': ' + r.reason) : null,
      criteria(r),
      el('span', { class: 'marking' }, r.marking.label),
      actionButtons(r.actions, `/api/requests/${r.id}/status`, refresh));
  }

  const taskMoves = { open: ['acknowledged', 'in-progress', 'done', 'declined'], acknowledged: ['in-progress', 'done', 'declined'], 'in-progress': ['done', 'declined'] };
  function taskCard(task) {
    onScreen.set('t' + task.id, task.marking);
    // A reason keeps the marking it was written under, which may be above the task's now (it followed its incident).
    if (task.reasonMarking) onScreen.set('q' + task.id, task.reasonMarking);
    else onScreen.delete('q' + task.id);
    const mine = task.organization === me.organization;
    return el('li', { class: 'co-card' + (task.deadlines.overdue ? ' overdue' : ''), 'data-id': task.id, 'data-status': task.status },
      el('p', { class: 'co-title' }, el('strong', {}, task.title)),
      el('p', {}, t('co.role.' + task.role), ' · ', task.organization, task.incident ? ' · ' : null,
        task.incident ? el('a', { href: `/incidents/${task.incident}` }, t('co.incident')) : null),
      task.description ? el('p', {}, task.description) : null,
      deadlines(task.deadlines),
      // Why it was declined or closed (its incident merged away, withdrawn from the organisation), when the member may read it.
      task.reason ? el('p', { class: 'reason' }, t('co.reason') + ': ' + task.reason,
        task.reasonMarking && task.reasonMarking.label !== task.marking.label ? [' ', el('span', { class: 'marking' }, task.reasonMarking.label)] : null) : null,
      el('span', { class: 'marking' }, task.marking.label),
      mine ? actionButtons(taskMoves[task.status] || [], `/api/tasks/${task.id}/status`, refresh) : null,
      comments(task));
  }

  // Comments load when opened (and stay open when the boards refresh); anyone who may see the task may add one.
  const openComments = new Set();
  function comments(task) {
    const list = el('ul', { class: 'comments' });
    const input = el('input', { 'aria-label': t('co.comment'), placeholder: t('co.comment'), maxlength: '4000' });
    const problem = el('p', { class: 'field-error', role: 'alert' });
    // Each read supersedes the one before: an older answer arriving late (a weak link) would drop a comment just added.
    let reads = 0;
    async function load() {
      const mine = ++reads;
      const response = await fetch(`/api/tasks/${task.id}`).catch(() => null);
      const full = response && response.ok ? await response.json().catch(() => null) : null;
      if (mine !== reads) return;
      if (!full) {
        // Not an empty list, which would pass for a task without comments: the read failed, and says so.
        problem.textContent = t('co.failed');
        return;
      }
      problem.textContent = '';
      const shown = full.comments || [];
      list.replaceChildren(...shown.map(c => el('li', {}, el('strong', {}, c.author), ' · ', fmt(c.at), ': ', c.text, ' ', el('span', { class: 'marking' }, c.marking.label))));
      // Each comment keeps the marking the task had when it was written, which may be above the task's now: the banners
      // rise to the highest shown.
      if (openComments.has(task.id) && shown.length) {
        const top = shown.reduce((m, c) => Concord.context.levels.indexOf(c.marking.classification) > Concord.context.levels.indexOf(m.classification) ? c.marking : m, shown[0].marking);
        onScreen.set('c' + task.id, { classification: top.classification, caveats: [...new Set(shown.flatMap(c => c.marking.caveats))] });
      } else {
        onScreen.delete('c' + task.id);
      }
      updateBanner();
    }
    const box = el('details', { class: 'task-comments', open: openComments.has(task.id),
      ontoggle: e => {
        if (e.target.open) { openComments.add(task.id); load(); } else { openComments.delete(task.id); onScreen.delete('c' + task.id); updateBanner(); }
      } },
      el('summary', {}, t('co.comments')), list,
      el('form', { onsubmit: async e => {
        e.preventDefault();
        const result = await postOnce(e.target, `/api/tasks/${task.id}/comments`, { text: input.value });
        if (!result.ok) { problem.textContent = Object.values(result.json.errors || {}).flat().join(' ') || t('co.failed'); return; }
        input.value = ''; problem.textContent = ''; load();
      } }, input, el('button', { type: 'submit' }, t('co.comment.add')), problem));
    if (openComments.has(task.id)) load();
    return box;
  }

  // What is being typed on a card (a comment, a reason for declining) goes to the card drawn in its place.
  const typed = ['input.reason', '.task-comments input'];
  function carry(from, to) {
    const reason = from.querySelector('input.reason');
    const actions = to.querySelector('.co-actions');
    if (reason && reason.value && actions && !actions.querySelector('input.reason')) {
      actions.prepend(el('input', { class: 'reason', 'aria-label': t('co.reason'), placeholder: t('co.reason') }));
    }
    for (const selector of typed) {
      const was = from.querySelector(selector), now = to.querySelector(selector);
      if (was && now && was.value) now.value = was.value;
    }
  }

  // A card is redrawn only when its record changed (or became overdue), so that a refresh caused by another record does
  // not take away a comment being typed or a reason being written; one redrawn (its record changed, or every card after
  // the live channel came back) keeps what was typed on it, and the field being typed in keeps the cursor.
  const cards = new Map();
  function fill(board, items, card) {
    const drawn = new Map([...board.querySelectorAll('.co-card[data-id]')].map(node => [node.dataset.id, node]));
    const active = document.activeElement;
    const activeCard = active && board.contains(active) ? active.closest('.co-card[data-id]') : null;
    const selection = activeCard && typeof active.selectionStart === 'number' ? [active.selectionStart, active.selectionEnd] : null;
    for (const column of board.querySelectorAll('.column')) column.querySelector('.cards').replaceChildren();
    for (const item of items) {
      const stamp = `${item.updatedAt}|${item.deadlines.overdue ?? ''}|${(item.actions || []).join(',')}`;
      let known = cards.get(item.id);
      if (!known || known.stamp !== stamp) {
        const node = card(item);
        const before = drawn.get(item.id) ?? known?.node;
        if (before) carry(before, node);
        cards.set(item.id, known = { stamp, node });
      } else {
        onScreen.set((card === requestCard ? 'r' : 't') + item.id, item.marking);
        // Its reason too, still shown on the card kept (forgotten with the rest before the boards were filled).
        if (item.reasonMarking) onScreen.set('q' + item.id, item.reasonMarking);
      }
      board.querySelector(`.column[data-status="${item.status}"] .cards`)?.append(known.node);
    }
    // Records that left this board (closed past its first page, withdrawn) are forgotten: a page open for days would
    // otherwise keep every card it ever drew.
    const shown = new Set(items.map(item => item.id));
    for (const id of drawn.keys()) if (!shown.has(id)) cards.delete(id);
    if (activeCard) {
      // Taken out and put back (or drawn anew): the field gets the cursor back where it was.
      const now = board.querySelector(`.co-card[data-id="${activeCard.dataset.id}"]`);
      const field = now === activeCard ? active : typed.map(selector => active.matches(selector) && now?.querySelector(selector)).find(Boolean);
      if (field && document.activeElement !== field) {
        field.focus();
        if (selection && field.setSelectionRange) field.setSelectionRange(...selection);
      }
    }
  }

  // Since when the boards could not be read (null while they are current), and the next try.
  let failed = null;
  let retry;
  let connected = false;
  const state = document.getElementById('co-live');
  function showState() {
    state.textContent = failed ? t('co.stale', failed.toISOString().slice(11, 19)) : connected ? t('co.live.on') : t('co.live.off');
    state.dataset.connected = String(connected);
    state.dataset.stale = String(failed !== null);
  }

  const direction = document.getElementById('co-direction');
  const showClosed = document.getElementById('co-closed');
  // One read at a time; one asked for during a read runs once more after it (what it must show may be newer than what
  // the read under way fetched).
  let loading = null;
  let again = false;
  async function refresh() {
    if (loading) { again = true; return loading; }
    loading = (async () => {
      // Everything still open (however old: an unanswered request or an overdue task must not drop off the board behind
      // newer closed ones), page after page, and the latest closed ones for the closed columns.
      const get = async (path, params, pages) => {
        const items = [];
        let cursor = null;
        for (let i = 0; i < pages; i++) {
          const query = new URLSearchParams({ ...params, limit: 200, ...(cursor ? { cursor } : {}) });
          const page = await fetch(path + '?' + query).then(r => r.ok ? r.json() : null).catch(() => null);
          // A page that could not be read fails the whole read: half a board would pass for the whole of it.
          if (!page) return null;
          items.push(...page.items);
          if (!(cursor = page.next)) break;
        }
        return items;
      };
      const read = await Promise.all([
        get('/api/requests', { direction: direction.value, open: true }, 25),
        get('/api/requests', { direction: direction.value, open: false }, 1),
        get('/api/tasks', { organization: me.organization, open: true }, 25),
        get('/api/tasks', { organization: me.organization, open: false }, 1),
      ]);
      if (read.includes(null)) {
        // The boards keep what they last showed, the page says since when it is not up to date, and reads again.
        failed ??= new Date();
        showState();
        clearTimeout(retry);
        retry = setTimeout(refresh, 5000);
        return;
      }
      failed = null;
      showState();
      const [openRequests, closedRequests, openTasks, closedTasks] = read;
      const requests = openRequests.concat(closedRequests), tasks = openTasks.concat(closedTasks);
      // Reasons' markings too ('q'): a task that left the boards no longer holds the banners up.
      forget('rtq');
      // Comments of tasks no longer on the boards are no longer on screen.
      const shownTasks = new Set(tasks.map(task => task.id));
      for (const key of [...onScreen.keys()]) if (key[0] === 'c' && !shownTasks.has(key.slice(1))) onScreen.delete(key);
      fill(document.getElementById('request-board'), requests, requestCard);
      fill(document.getElementById('task-board'), tasks, taskCard);
      updateBanner();
      loadMetrics();
    })().finally(() => { loading = null; if (again) { again = false; refresh(); } });
    return loading;
  }
  direction.addEventListener('change', refresh);
  showClosed.addEventListener('change', () => {
    for (const c of document.querySelectorAll('#request-board .column, #task-board .column')) {
      if (['declined', 'completed', 'cancelled', 'done'].includes(c.dataset.status)) c.hidden = !showClosed.checked;
    }
  });

  // The request form: criteria sections appear when they apply; errors come back per field and show beside it.
  const form = document.getElementById('request-form');
  const type = document.getElementById('rq-type');
  const addressee = document.getElementById('rq-addressee');
  function toggleCriteria() {
    const kind = addressee.selectedOptions[0]?.dataset.kind;
    document.getElementById('rq-lastresort').hidden = !(me.kind === 'humanitarian' && kind === 'military');
    document.getElementById('rq-escort').hidden = type.value !== 'armed-escort';
  }
  type.addEventListener('change', toggleCriteria);
  addressee.addEventListener('change', toggleCriteria);
  toggleCriteria();

  form.addEventListener('submit', async event => {
    event.preventDefault();
    for (const p of form.querySelectorAll('.field-error')) p.textContent = '';
    const error = document.getElementById('rq-error');
    error.hidden = true;
    const value = id => document.getElementById(id).value.trim();
    const lat = value('rq-lat'); const lon = value('rq-lon');
    const iso = v => v ? new Date(v + 'Z').toISOString() : null;
    const criteriaBody = {};
    for (const area of form.querySelectorAll('fieldset:not([hidden]) textarea[data-criterion]')) {
      const [group, key] = area.dataset.criterion.split('.');
      (criteriaBody[group] ??= {})[key] = area.value;
    }
    const body = {
      type: type.value, addressee: addressee.value, priority: value('rq-priority'), title: value('rq-title'), details: value('rq-details'),
      // A half left blank goes as nothing (the server names it), not as 0 (a place in the Gulf of Guinea).
      location: lat || lon ? { latitude: coordinate(lat), longitude: coordinate(lon) } : null,
      windowStart: iso(value('rq-start')), windowEnd: iso(value('rq-end')),
      criteria: Object.keys(criteriaBody).length ? criteriaBody : null,
    };
    const result = await postOnce(form, '/api/requests', body);
    if (result.ok) {
      form.reset(); toggleCriteria();
      document.getElementById('rq-sent').textContent = t('co.sent');
      refresh();
      return;
    }
    showErrors(form, error, result);
  });

  // Sends what a form makes with one id per record, kept until it is stored: sent again after a lost answer, the server
  // answers the record it already stored rather than storing a second one. A 409 on the id (the form was changed before
  // sending again) starts a new record with a new id.
  async function postOnce(form, path, body) {
    form.dataset.clientId ||= newId();
    const result = await post(path, { ...body, id: form.dataset.clientId });
    if (result.ok || (result.status === 409 && result.json.errors && result.json.errors.id)) delete form.dataset.clientId;
    return result;
  }

  // A random (version 4) id; crypto.randomUUID is only offered to pages served over HTTPS or from localhost.
  function newId() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map(x => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // A number typed with a comma or a point; blank or not a number is null, which the server refuses by field.
  function coordinate(text) {
    if (!text) return null;
    const number = Number(text.replace(',', '.'));
    return Number.isFinite(number) ? number : null;
  }

  // Errors go next to their fields; those of fields the form has no place for (and a refusal without fields) go in the
  // form's alert, so that nothing the server said is lost.
  function showErrors(form, alert, result) {
    const rest = [];
    for (const [field, messages] of Object.entries(result.json.errors || {})) {
      const target = form.querySelector(`.field-error[data-for="${CSS.escape(field)}"]`);
      if (target) target.textContent = messages.join(' ');
      else rest.push(`${field}: ${messages.join(' ')}`);
    }
    if (!result.json.errors) rest.push(result.json.detail || t('co.failed'));
    alert.textContent = rest.join(' ');
    alert.hidden = rest.length === 0;
  }

  // The liaison log: contacts this member may see, newest first, and a form to log one.
  let logGeneration = 0;
  async function loadLog() {
    const mine = ++logGeneration;
    // As many as the page shows: the latest 30 contacts, 10 meetings and 10 patrols.
    const read = await Promise.all([['/api/liaison', 30], ['/api/meetings', 10], ['/api/patrols', 10]]
      .map(([path, limit]) => fetch(`${path}?limit=${limit}`).then(r => r.ok ? r.json() : null).then(page => page?.items ?? null).catch(() => null)));
    if (mine !== logGeneration) return; // a newer read was asked for meanwhile
    if (read.includes(null)) {
      // Kept as last read, and read again shortly (an empty log would pass for no contacts).
      setTimeout(() => { if (mine === logGeneration) loadLog(); }, 5000);
      return;
    }
    const [entries, meetings, patrols] = read;
    forget('lmp');
    for (const e of entries) onScreen.set('l' + e.id, e.marking);
    for (const m of meetings) onScreen.set('m' + m.id, m.marking);
    for (const p of patrols) onScreen.set('p' + p.id, p.marking);
    updateBanner();
    document.querySelector('#liaison-log tbody').replaceChildren(...entries.map(e => el('tr', { 'data-id': e.id },
      el('td', {}, fmt(e.at)), el('td', {}, `${e.organization} (${e.member}) ↔ ${e.counterpart}${e.counterpartOrganization ? ' (' + e.counterpartOrganization + ')' : ''}`),
      el('td', {}, t('co.channel.' + e.channel)), el('td', {}, e.summary), el('td', {}, el('span', { class: 'marking' }, e.marking.label)))));
    document.getElementById('meetings').replaceChildren(...meetings.map(m => el('li', { 'data-id': m.id },
      el('strong', {}, m.title), ` · ${fmt(m.heldAt)} · ${m.place} · ${m.participants.join(', ')}`,
      m.decisions.length ? el('ul', {}, m.decisions.map(d => el('li', {}, d))) : null, el('span', { class: 'marking' }, m.marking.label))));
    document.getElementById('patrols').replaceChildren(...patrols.map(p => el('li', { 'data-id': p.id },
      el('strong', {}, p.name), ` · ${t('co.patrol.' + p.status)} · ${fmt(p.startsAt)} – ${fmt(p.endsAt)} · ${p.organizations.join(', ')}`,
      el('span', { class: 'marking' }, p.marking.label))));
  }

  const liaison = document.getElementById('liaison-form');
  liaison.addEventListener('submit', async event => {
    event.preventDefault();
    for (const p of liaison.querySelectorAll('.field-error')) p.textContent = '';
    const value = id => document.getElementById(id).value.trim();
    const result = await postOnce(liaison, '/api/liaison', {
      counterpartOrganization: value('li-organization') || null, counterpart: value('li-counterpart') || null,
      channel: value('li-channel'), summary: value('li-summary'),
    });
    const error = document.getElementById('li-error');
    error.hidden = true;
    if (result.ok) { liaison.reset(); loadLog(); return; }
    showErrors(liaison, error, result);
  });

  let charts = [];
  const oneDecimal = new Intl.NumberFormat(Concord.context.culture, { maximumFractionDigits: 1 });
  async function loadMetrics() {
    const response = await fetch('/api/coordination/metrics').catch(() => null);
    if (!response || !response.ok) return;
    const m = await response.json();
    // The figures count records of other organisations too (not only the cards shown): the banners cover them.
    onScreen.set('x', { classification: m.classification, caveats: m.caveats });
    updateBanner();
    // Organisations by their codes, request types and minutes in the page's language.
    const rows = [{ ...m.total, label: t('co.metrics.all') }, ...m.byOrganization.map(f => ({ ...f, label: f.key })),
      ...m.byRequestType.map(f => ({ ...f, label: t('co.type.' + f.key) }))];
    const minutes = value => value === null || value === undefined ? '–' : oneDecimal.format(value);
    document.querySelector('#co-metrics-table tbody').replaceChildren(...rows.map(f => el('tr', {},
      el('td', {}, f.label), el('td', { class: 'number' }, Concord.number.format(f.items)),
      el('td', { class: 'number' }, minutes(f.medianAcknowledgeMinutes)), el('td', { class: 'number' }, minutes(f.medianRespondMinutes)),
      el('td', { class: 'number' + (f.openOverdue ? ' overdue' : '') }, Concord.number.format(f.overdue)))));
    if (!window.Chart) return;
    charts.forEach(c => c.destroy());
    Chart.defaults.animation = false;
    const options = { locale: Concord.context.culture, responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } };
    charts = [
      new Chart(document.getElementById('chart-co-organization'), { type: 'bar', options, data: {
        labels: m.byOrganization.map(f => f.key),
        datasets: [
          { label: t('co.metrics.ack'), data: m.byOrganization.map(f => f.medianAcknowledgeMinutes), backgroundColor: '#1565c0' },
          { label: t('co.metrics.respond'), data: m.byOrganization.map(f => f.medianRespondMinutes), backgroundColor: '#2e7d32' },
        ] } }),
      new Chart(document.getElementById('chart-co-week'), { type: 'bar', options, data: {
        labels: m.byWeek.map(f => f.key),
        datasets: [
          { label: t('co.metrics.items'), data: m.byWeek.map(f => f.items), backgroundColor: '#546e7a' },
          { label: t('co.metrics.overdue'), data: m.byWeek.map(f => f.overdue), backgroundColor: '#b3261e' },
        ] } }),
    ];
  }

  // A change to the member (clearance, caveats, organisation), a sharing group or an agreement may change what this member
  // may see: the board is read again, so that nothing stays on screen the member no longer may see.
  const access = Concord.isAccessChange;
  Concord.live(changes => {
    // Cards are redrawn on an access change, open comments read again with them, at once and again once every node
    // judges the member anew (Concord.afterAccessChange).
    if (changes.some(access)) {
      Concord.afterAccessChange(() => { cards.clear(); refresh(); loadLog(); });
      return;
    }
    if (changes.some(c => c.entity === 'request' || c.entity === 'task')) refresh();
    if (changes.some(c => c.entity === 'liaison' || c.entity === 'meeting' || c.entity === 'patrol')) loadLog();
  }, up => { connected = up; showState(); },
  () => { cards.clear(); refresh(); loadLog(); });
  refresh();
  loadLog();
})();
