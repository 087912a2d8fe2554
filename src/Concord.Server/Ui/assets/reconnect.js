// The notice of a lost circuit (App.razor): Blazor shows it and tries again on its own; this gives its buttons their work.
(() => {
  'use strict';
  const modal = document.getElementById('components-reconnect-modal');
  if (!modal) return;
  // Resumed (the server kept the circuit's state), or else reloaded: a page whose circuit is gone shows nothing live.
  const resume = async () => { if (!await Blazor.resumeCircuit()) location.reload(); };
  document.getElementById('reconnect-retry').addEventListener('click', async () => { if (!await Blazor.reconnect()) await resume(); });
  document.getElementById('reconnect-resume').addEventListener('click', resume);
  // This page, filters and all (a link would resolve against the base address, the map).
  document.getElementById('reconnect-reload').addEventListener('click', () => location.reload());
  modal.addEventListener('components-reconnect-state-changed', event => {
    // The server no longer holds this page's circuit (restarted, or it let it go): only a fresh page is live again.
    if (event.detail.state === 'rejected') location.reload();
  });
})();
