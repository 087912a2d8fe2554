// Shared by Concord's page scripts: the page context (strings in the page's language, classification levels and caveats),
// string formatting, classification banners and the live channel. No framework; everything comes from this server.
'use strict';
window.Concord = (() => {
  const context = JSON.parse(document.getElementById('concord-context').textContent);
  const text = (key, ...args) => (context.strings[key] ?? key).replace(/\{(\d+)\}/g, (_, i) => String(args[Number(i)] ?? ''));
  const number = new Intl.NumberFormat(context.culture);
  const day = new Intl.DateTimeFormat(context.culture, { dateStyle: 'medium', timeZone: 'UTC' });

  // Banners show the highest level and every caveat among what is on screen (level index, caveat bits as a BigInt, and
  // codes a page knows only by name). A caveat added since the page was read is never left out: shown as CAVEAT-n, as
  // the server names a bit it does not know, while the list of caveats is read again (then the banner is drawn anew).
  let shown = null;
  let caveatsRead = null;
  function banner(level, caveatBits, extraCodes = []) {
    shown = [level, caveatBits, extraCodes];
    const label = markingLabel(level, caveatBits, extraCodes);
    for (const id of ['banner-top', 'banner-bottom']) {
      const el = document.getElementById(id);
      if (!el) continue;
      el.textContent = label;
      el.className = 'banner level-' + level;
      el.dataset.level = String(level);
      el.dataset.caveats = caveatBits.toString();
      // What a screen reader says of it follows too.
      el.setAttribute('aria-label', (el.dataset.said ?? '') + ': ' + label);
    }
  }

  // A marking as words (UNCLASSIFIED, CONFIDENTIAL//PROTECTED), as the banners write it.
  function markingLabel(level, caveatBits, extraCodes = []) {
    const codes = [];
    let unknown = false;
    for (let bit = 0; bit < 63; bit++) {
      if ((caveatBits & (1n << BigInt(bit))) === 0n) continue;
      if (context.caveats[bit]) codes.push(context.caveats[bit]);
      else {
        codes.push('CAVEAT-' + bit);
        unknown = true;
      }
    }
    for (const code of extraCodes) if (!codes.includes(code)) codes.push(code);
    if (unknown) readCaveats();
    return (context.levels[level] ?? context.levels[0]) + (codes.length ? '//' + codes.join('/') : '');
  }

  // At most once every 10 s; a failed read leaves CAVEAT-n on the banner until the next.
  function readCaveats() {
    if (caveatsRead && Date.now() - caveatsRead < 10000) return;
    caveatsRead = Date.now();
    fetch('/api/caveats', { credentials: 'same-origin', cache: 'no-store' })
      .then(response => response.ok ? response.json() : Promise.reject(new Error(String(response.status))))
      .then(list => {
        let learnt = false;
        for (const c of list) if (context.caveats[c.bit] !== c.code) { context.caveats[c.bit] = c.code; learnt = true; }
        if (learnt && shown) banner(...shown);
      }, () => { /* a weak link: tried again at the next banner */ });
  }

  // A file the page cannot do without (the base map, the areas), read until it comes: a weak link that drops the first
  // request would otherwise leave the map without boundaries until the page is loaded again. Every 5 s, then up to a minute.
  function readUntilRead(url, use, wait = 5000) {
    fetch(url, { credentials: 'same-origin' }).then(r => r.ok ? r.json() : Promise.reject(new Error(String(r.status)))).then(use,
      () => setTimeout(() => readUntilRead(url, use, Math.min(wait * 2, 60000)), wait));
  }

  // Caveat sets travel in the API's JSON as 64-bit integers (GeoJSON properties "caveats"); a plain parse rounds those
  // above 2^53, dropping or inventing caveats of bit 53 and up. Read exactly, as BigInts, from the number's own text.
  const readJson = async response => JSON.parse(await response.text(), (key, value, parsed) =>
    key === 'caveats' && typeof value === 'number' ? BigInt(parsed?.source ?? value) : value);

  // A page whose session has ended (signed out in another window, a new password, a disable, its day is over) leaves for
  // the sign-in page, which brings the member back here, rather than staying on screen with what it last showed: checked
  // when its session's day is over and whenever the live channel drops (the server closes the channel of an ended
  // session). A network failure is not an ended session: the page stays.
  const signedIn = typeof context.sessionEndsIn === 'number';
  let leaving = false;
  function checkSession() {
    if (!signedIn || leaving) return;
    fetch('/api/me', { credentials: 'same-origin', cache: 'no-store' }).then(response => {
      if (response.status === 401 && !leaving) {
        leaving = true;
        location.assign('/signin?returnUrl=' + encodeURIComponent(location.pathname + location.search));
      }
    }).catch(() => {});
  }
  if (signedIn) setTimeout(checkSession, Math.min(Math.max(0, context.sessionEndsIn) + 1000, 2147483647));

  // The live channel carries ids only. The ids received are kept (window.Concord.received) so tests can prove that a
  // member never receives the id of a record they may not see: the latest 10,000, as a page may stay open for days.
  // The channel does not replay what was committed while it was down (a weak link, a server restart) or before it first
  // joined (while the page read its view): each time it connects, onResync reads the view again.
  const received = [];
  const keep = 10000;
  const connections = [];
  function live(onChanges, onState, onResync) {
    if (!window.signalR) return;
    const connection = new signalR.HubConnectionBuilder()
      .withUrl('/hubs/live')
      .withAutomaticReconnect([0, 1000, 2000, 5000, 10000, 30000])
      .configureLogging(signalR.LogLevel.Warning)
      .build();
    connection.on('changes', changes => {
      for (const c of changes) received.push(c.id);
      if (received.length > keep) received.splice(0, received.length - keep);
      onChanges(changes);
    });
    // A round with more ids than one push carries (an import, a large merge) comes as 'resync': the view is read again,
    // as on reconnecting (onResync(true): the channel stayed up, nothing but those changes was missed); after an access
    // change, as on reconnecting, at once and again once every node judges the member anew.
    connection.on('resync', access => {
      if (!onResync) return;
      if (access) afterAccessChange(() => onResync());
      else onResync(true);
    });
    const up = () => { onState && onState(true); onResync && onResync(); };
    connection.onreconnecting(() => { onState && onState(false); checkSession(); });
    connection.onreconnected(up);
    const start = () => connection.start().then(up).catch(() => { onState && onState(false); checkSession(); setTimeout(start, 3000); });
    connection.onclose(() => { onState && onState(false); checkSession(); setTimeout(start, 3000); });
    start();
    connections.push(connection);
    return connection;
  }

  // An access change is heard on the node of the live channel, which reads the member again at once; a read answered by
  // another node (behind a load balancer) may still judge the member as before for up to its member cache's lifetime.
  // What depends on the member's access is read at once and again once that is over (the latest access change counts).
  // A change of what decides the member's reads (a member, a group, an agreement, an organisation): views read again.
  const isAccessChange = c => c.entity === 'member' || c.entity === 'group' || c.entity === 'agreement' || c.entity === 'organization';
  let settling = null;
  const settleKey = 'concord.accessSettlesAt';
  function afterAccessChange(reread) {
    const wait = context.accessSettlesIn || 11000;
    // Kept for the tab: a page that reads itself again by loading anew (the incident page, early warning) finishes the
    // wait in the page it loads (resumeSettling).
    try { sessionStorage.setItem(settleKey, String(Date.now() + wait)); } catch { /* storage off: this page only */ }
    reread();
    clearTimeout(settling);
    settling = setTimeout(reread, wait);
  }

  // A page loaded while an access change settles (loaded anew for it, and perhaps answered by a node that still judged the
  // member as before) reads itself again once the wait is over.
  function resumeSettling(reread) {
    let at = 0;
    try { at = Number(sessionStorage.getItem(settleKey)) || 0; } catch { /* storage off */ }
    if (at > Date.now()) {
      clearTimeout(settling);
      settling = setTimeout(reread, at - Date.now());
    }
  }

  return { context, text, number, day, banner, markingLabel, readJson, readUntilRead, live, received, connections, checkSession, afterAccessChange, resumeSettling, isAccessChange };
})();
