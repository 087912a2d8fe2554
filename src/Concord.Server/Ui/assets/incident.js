// The full incident page is read once on the server (its merge and split are forms); it stays current through the live
// channel. When the incident may have changed (a change of it is pushed: a report joined, its status, a merge or a split,
// a report released to the member; or of the member's access), the page is read again in the background and compared
// with what is on screen; if it differs (or the incident is gone from the member's view) the page shows the new reading,
// unless the analyst has begun a correction (ids typed to merge, reports ticked to split): then it says the incident
// changed, with a link to read it again. The page's own merge or split is already on screen and changes nothing.
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
  let leaving = false;
  let checking = null;

  async function differs() {
    const response = await fetch('/incidents/' + id, { credentials: 'same-origin', cache: 'no-store' });
    if (response.status === 404) return true;
    if (!response.ok) {
      Concord.checkSession();
      return false;
    }
    const page = new DOMParser().parseFromString(await response.text(), 'text/html');
    return page.getElementById('incident-changed')?.dataset.version !== version;
  }

  function check() {
    // One reading at a time; changes pushed meanwhile are in it or start one more after it.
    if (leaving) return;
    if (checking) {
      checking.again = true;
      return;
    }
    checking = { again: false };
    differs().then(changed => {
      const again = checking.again;
      checking = null;
      if (changed) {
        if (correcting()) notice.hidden = false;
        else {
          leaving = true;
          // A GET of the page's own address: the page on screen may be the answer to a merge or split (a POST).
          location.replace('/incidents/' + id);
        }
      } else if (again) check();
    }, () => { checking = null; });
  }

  // What was committed before the live channel joined (the page was read first) or while it was down is not pushed: the
  // feed is read from the page's position, a few pages at most (beyond them the page is simply compared).
  async function changedSince() {
    for (let page = 0; page < 10; page++) {
      const response = await fetch('/api/changes?after=' + after + '&limit=500', { credentials: 'same-origin', cache: 'no-store' });
      if (!response.ok) {
        Concord.checkSession();
        return false;
      }
      const changes = await response.json();
      if (changes.items.some(concerns)) return true;
      if (changes.next === after) return false;
      after = changes.next;
    }
    return true;
  }

  Concord.live(changes => { if (changes.some(concerns)) check(); }, null,
    () => changedSince().then(changed => { if (changed) check(); }, () => {}));
})();
