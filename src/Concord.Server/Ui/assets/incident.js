// The full incident page is read once on the server (its merge and split are forms); it stays current through the live
// channel. When the incident may have changed (a change of it is pushed: a report joined, its status, a merge or a split,
// a report released to the member; or of the member's access), the page is read again in the background and compared
// with what is on screen; if it differs (or the incident is gone from the member's view) the page shows the new reading,
// unless the analyst has begun a correction (ids typed to merge, reports ticked to split): then it says the incident
// changed, with a link to read it again. The page's own merge or split is already on screen and changes nothing. A reading
// that fails hides the incident until one succeeds.
'use strict';
(() => {
  const notice = document.getElementById('incident-changed');
  if (!notice) return;
  const id = notice.dataset.id;
  const version = notice.dataset.version;
  // The change feed's position when the server read the page: what changed after it, the page has not shown.
  let after = Number(notice.dataset.after);
  const concerns = c => c.id === id || Concord.isAccessChange(c);
  const correcting = () => Boolean(document.getElementById('merge-ids')?.value.trim()) || document.querySelector('input[name="split"]:checked') !== null;
  const body = document.getElementById('incident-body');
  const unread = document.getElementById('incident-unread');
  let leaving = false;
  let checking = null;
  // Whether the next reading is asked for by a change of the member's access.
  let accessPending = false;
  // After a failed reading: the wait before the next, doubling from 5 s to a minute while readings fail.
  let retryIn = 5000;
  let retry = null;

  // How often the page was read again (tests watch it).
  window.concordIncident = { reads: 0 };

  async function differs() {
    window.concordIncident.reads++;
    const response = await fetch('/incidents/' + id, { credentials: 'same-origin', cache: 'no-store' });
    if (response.status === 404) return 'gone';
    if (!response.ok) {
      Concord.checkSession();
      throw new Error('the page answered ' + response.status);
    }
    const page = new DOMParser().parseFromString(await response.text(), 'text/html');
    return page.getElementById('incident-changed')?.dataset.version !== version;
  }

  // A change was told and the page could not be read again: what it shows may be what the member may no longer see (a
  // clearance lowered, a report split out), so it is hidden, as the map hides its panel, and read again until it can be.
  function failed() {
    body.hidden = true;
    unread.hidden = false;
    clearTimeout(retry);
    retry = setTimeout(check, retryIn);
    retryIn = Math.min(retryIn * 2, 60000);
  }

  function check() {
    // One reading at a time; changes pushed meanwhile are in it or start one more after it.
    if (leaving) return;
    if (checking) {
      checking.again = true;
      return;
    }
    checking = { again: false };
    const forAccess = accessPending;
    accessPending = false;
    differs().then(changed => {
      const again = checking.again;
      checking = null;
      clearTimeout(retry);
      retryIn = 5000;
      if (changed) {
        if (correcting() && changed !== 'gone') {
          // What was typed stays, with the notice. After a change of the member's access the reading may show less than
          // the page (a clearance lowered, a group left): what is on screen is hidden until the page is read again.
          notice.hidden = false;
          if (forAccess) body.hidden = true;
          // An access change told while this reading was under way is read (and judged) once more.
          else if (again || accessPending) check();
        } else {
          // Gone from the member's view (merged away, no longer theirs to see) the page is left, correction or not: one
          // typed against an incident that is gone could not be made anyway.
          leaving = true;
          // A GET of the page's own address: the page on screen may be the answer to a merge or split (a POST).
          location.replace('/incidents/' + id);
        }
      } else {
        body.hidden = false;
        unread.hidden = true;
        if (again) check();
      }
    }, () => { checking = null; failed(); });
  }

  // What was committed before the live channel joined (the page was read first) or while it was down is not pushed: the
  // feed is read from the page's position, a few pages at most (beyond them the page is simply compared).
  async function changedSince() {
    for (let page = 0; page < 10; page++) {
      const response = await fetch('/api/changes?after=' + after + '&limit=500', { credentials: 'same-origin', cache: 'no-store' });
      if (!response.ok) {
        Concord.checkSession();
        // Whether the member's access changed meanwhile is not known: judged as if it did.
        accessPending = true;
        return true;
      }
      const changes = await response.json();
      // An access change missed while the channel was down is judged as one.
      if (changes.items.some(Concord.isAccessChange)) accessPending = true;
      if (changes.items.some(concerns)) return true;
      if (changes.next === after) return false;
      after = changes.next;
    }
    accessPending = true;
    return true;
  }

  // An access change is read at once and again once every node judges the member anew (Concord.afterAccessChange), also
  // in the page loaded anew for it.
  Concord.live(changes => {
    if (changes.some(Concord.isAccessChange)) {
      accessPending = true;
      Concord.afterAccessChange(() => { accessPending = true; check(); });
    }
    else if (changes.some(concerns)) check();
  }, null,
    // The feed unreadable, the page itself is compared (and hidden while it cannot be read).
    () => changedSince().then(changed => { if (changed) check(); }, () => { accessPending = true; check(); }));
  Concord.resumeSettling(check);
})();
