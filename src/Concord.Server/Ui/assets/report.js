// The report form's map picker: a click sets latitude and longitude. The form works without it.
'use strict';
(() => {
  const el = document.getElementById('pick-map');
  if (!el || !window.L) return;
  const lat = document.getElementById('r-lat');
  const lon = document.getElementById('r-lon');
  const map = L.map(el, { attributionControl: true });
  // The base map's credit, on the map itself (Natural Earth asks for it; the page footer credits the event data).
  map.attributionControl.setPrefix(false).addAttribution('Made with Natural Earth');
  const b = el.dataset.bounds.split(',').map(Number); // west,south,east,north, set by the server
  map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
  // Read until they come (a weak link), every 5 s and then up to a minute, as the map does.
  const readUntilRead = (url, use, wait = 5000) => fetch(url, { credentials: 'same-origin' })
    .then(r => r.ok ? r.json() : Promise.reject(new Error(String(r.status))))
    .then(use, () => setTimeout(() => readUntilRead(url, use, Math.min(wait * 2, 60000)), wait));
  readUntilRead('ui/geo/countries-50m.json', topo => {
    L.geoJSON(topojson.feature(topo, topo.objects.countries), { style: { color: '#777', weight: 1, fillColor: '#f1f1ea', fillOpacity: 1 }, interactive: false }).addTo(map).bringToBack();
  });
  readUntilRead('/api/areas/geojson', areas => L.geoJSON(areas, { style: { color: '#5b6b7a', weight: 1, fill: false }, interactive: false }).addTo(map));
  let marker = null;
  const show = () => {
    const y = Number(lat.value), x = Number(lon.value);
    if (lat.value === '' || lon.value === '' || !Number.isFinite(y) || !Number.isFinite(x)) return;
    marker ? marker.setLatLng([y, x]) : (marker = L.marker([y, x], { keyboard: false }).addTo(map));
  };
  map.on('click', e => {
    lat.value = e.latlng.lat.toFixed(5);
    lon.value = e.latlng.lng.toFixed(5);
    show();
  });
  lat.addEventListener('change', show);
  lon.addEventListener('change', show);
  show();
  // Explicit marking fields are shown only when chosen.
  const explicit = document.getElementById('r-marking-explicit');
  const box = document.querySelector('.explicit-marking');
  const toggle = () => { box.hidden = !explicit.checked; };
  document.querySelectorAll('input[name="Input.MarkingMode"]').forEach(r => r.addEventListener('change', toggle));
  toggle();
})();
