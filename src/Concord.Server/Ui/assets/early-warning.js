// Observed against forecast per area: out-of-sample, one month ahead.
'use strict';
(() => {
  // Spike alerts stay live: when records this member may see change, the spikes are read again through the API.
  const { text: t, number } = Concord;
  // As the server renders them, in the page's language: two decimals, and up to four.
  const twoDecimals = new Intl.NumberFormat(Concord.context.culture, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const upToFour = new Intl.NumberFormat(Concord.context.culture, { maximumFractionDigits: 4 });
  const table = document.querySelector('#spikes tbody');
  const hint = document.getElementById('spikes-hint');
  // As the server writes a date ("d"): numeric day, month and year in the page's language, in UTC as the window is counted.
  const shortDate = new Intl.DateTimeFormat(Concord.context.culture, { year: 'numeric', month: 'numeric', day: 'numeric', timeZone: 'UTC' });
  let timer = null;
  let alerted = new Set([...document.querySelectorAll('#spikes tr.alert')].map(r => r.dataset.area));
  // A read that fails (a weak link, a server answering 5xx) is tried again five seconds later: a new alert must not wait
  // for the next change to be announced. Refused (no session, no access) it is not: the page's session check says why.
  let retry = null;
  async function refreshSpikes() {
    clearTimeout(retry);
    const response = await fetch('/api/early-warning/spikes').catch(() => null);
    if (!table) return;
    const data = response && response.ok ? await response.json().catch(() => null) : null;
    if (!data) {
      if (response && response.status === 401) Concord.checkSession();
      else if (!response || response.status !== 403) retry = setTimeout(refreshSpikes, 5000);
      return;
    }
    table.replaceChildren(...data.items.slice(0, 12).map(s => {
      const tr = document.createElement('tr');
      tr.dataset.area = s.area;
      if (s.alert) tr.className = 'alert';
      // No rate before any baseline day is covered: the server leaves it out, and the table says so as the page renders it.
      const rate = (value, format) => value == null ? '–' : format.format(value);
      for (const value of [s.name, number.format(s.recent), number.format(s.baseline), rate(s.expected, twoDecimals), rate(s.probability, upToFour),
        s.alert ? t('alert') : '–']) {
        const td = document.createElement('td');
        td.textContent = value;
        tr.append(td);
      }
      return tr;
    }));
    // The caption names the window counted: by default it ends at the latest incident this member may see, so a new
    // one moves its end and the baseline days it covers; the counts above are of the new window.
    if (hint && data.at && (Date.parse(data.at) !== Date.parse(hint.dataset.at) || String(data.baselineObservedDays) !== hint.dataset.baseline)) {
      hint.textContent = t('spikesHint', number.format(data.days), number.format(data.baselineObservedDays), shortDate.format(new Date(data.at)),
        upToFour.format(data.threshold));
      hint.dataset.at = data.at;
      hint.dataset.baseline = String(data.baselineObservedDays);
    }
    const fresh = data.items.filter(s => s.alert && !alerted.has(s.area));
    if (fresh.length) {
      const notice = document.getElementById('spike-alert');
      notice.textContent = t('newAlert', fresh.map(s => s.name).join(', '));
      notice.hidden = false;
    }
    alerted = new Set(data.items.filter(s => s.alert).map(s => s.area));
    // The banners cover what is on screen: the rest of the page as rendered, and now these counts too, which name the
    // highest classification and every caveat of the records they were counted from.
    const top = document.getElementById('banner-top');
    if (top) {
      const levels = Concord.context.levels;
      const level = Math.max(Number(top.dataset.level || 0), levels.indexOf(data.classification));
      let bits = BigInt(top.dataset.caveats || '0');
      for (const code of data.caveats || []) {
        const bit = Concord.context.caveats.indexOf(code);
        if (bit >= 0) bits |= 1n << BigInt(bit);
      }
      Concord.banner(level, bits);
    }
    document.body.dataset.spikesRefreshed = String(Number(document.body.dataset.spikesRefreshed || 0) + 1);
  }
  // Half a second after the last change of a burst, and at least every five seconds while changes keep coming (an
  // import's batches): a wait reset by every batch would never end, and no new alert would be announced.
  let firstAsked = 0;
  const refreshSoon = () => {
    const now = Date.now();
    if (timer === null) firstAsked = now;
    else if (now - firstAsked >= 5000) return;
    clearTimeout(timer);
    timer = setTimeout(() => { timer = null; refreshSpikes(); }, 500);
  };
  // Spikes are counted from incidents (which reports open and change): other records' changes do not move them.
  const counted = changes => changes.some(c => c.entity === 'incident' || c.entity === 'report');
  // An access change (this member, an organisation, a sharing group, an agreement) may take away records that the
  // server-rendered sections (hotspots, history, forecasts) were counted from: the whole page is read again, once, a
  // second later (changes come in bursts). Other members' changes (an administrator hears of them) change nothing here.
  const access = changes => changes.some(c => (c.entity === 'member' && c.id === Concord.context.member)
    || c.entity === 'group' || c.entity === 'agreement' || c.entity === 'organization');
  let reloading = false;
  let listened = false;
  Concord.resumeSettling(() => location.reload());
  Concord.live(changes => {
    if (reloading) return;
    // Loaded again a second later, and once more when every node judges the member anew (Concord.afterAccessChange): the
    // first load may be answered by a node that still judged the member as before.
    if (access(changes)) { reloading = true; Concord.afterAccessChange(() => setTimeout(() => location.reload(), 1000)); } else if (counted(changes)) refreshSoon();
  }, null, many => {
    // Connected: the spikes are read again. Connected again after a drop: what changed meanwhile was pushed to nobody
    // (an access change among it), so the whole page is read again, its server-rendered sections too. Too many changes
    // for one push, none of access: the spikes are read again, as those changes' ids would have had them.
    if (many) { if (!reloading) refreshSoon(); return; }
    if (!listened) { listened = true; refreshSoon(); } else if (!reloading) { reloading = true; location.reload(); }
  });

  const source = document.getElementById('history-data');
  if (!source || !window.Chart) return;
  Chart.defaults.animation = false;
  JSON.parse(source.textContent).forEach((series, i) => {
    new Chart(document.getElementById('history-' + i), {
      type: 'line',
      data: {
        labels: series.months,
        datasets: [
          { label: t('observed'), data: series.observed, borderColor: '#a4161a', backgroundColor: '#a4161a', pointRadius: 2 },
          { label: t('forecast'), data: series.forecast, borderColor: '#0b4f8a', backgroundColor: '#0b4f8a', borderDash: [5, 4], pointRadius: 0 },
        ],
      },
      options: { locale: Concord.context.culture, responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } },
    });
  });
})();
