// Draws the dashboard's charts from the figures the server computed over what this member may see: from the page on its
// first render, then whenever the live page (a server circuit) calls Concord.drawDashboard with new figures.
'use strict';
// The charts drawn last are kept on Concord (this script may run again in the page), whether or not their canvases are
// still on the page: the circuit replaces the first render's canvases, and refused dates take them away; a chart left
// undestroyed keeps its observers and its place in Chart.js.
Concord.drawDashboard = data => {
  if (!window.Chart) return;
  for (const chart of Concord.dashboardCharts ?? []) chart.destroy();
  const drawn = Concord.dashboardCharts = [];
  if (['chart-weekly', 'chart-casualties', 'chart-areas'].some(id => !document.getElementById(id))) return;
  const t = Concord.text;
  const palette = ['#b3261e', '#c25e00', '#7b1fa2', '#1565c0', '#2e7d32', '#6d4c41', '#546e7a'];
  Chart.defaults.font.family = 'system-ui, sans-serif';
  Chart.defaults.animation = false;
  const locale = Concord.context.culture;

  drawn.push(new Chart(document.getElementById('chart-weekly'), {
    type: 'bar',
    data: {
      labels: data.weeks,
      datasets: data.weeklyByCategory.map((s, i) => ({ label: s.label || t('other'), data: s.counts, backgroundColor: palette[i % palette.length], stack: 'c' })),
    },
    options: { locale, responsive: true, maintainAspectRatio: false, scales: { x: { stacked: true, ticks: { maxTicksLimit: 12 } }, y: { stacked: true, beginAtZero: true } } },
  }));

  drawn.push(new Chart(document.getElementById('chart-casualties'), {
    type: 'line',
    data: {
      labels: data.months,
      datasets: [
        { label: t('killedSeries'), data: data.killedByMonth, borderColor: '#b3261e', backgroundColor: '#b3261e', pointRadius: 0 },
        { label: t('injuredSeries'), data: data.injuredByMonth, borderColor: '#c25e00', backgroundColor: '#c25e00', pointRadius: 0 },
      ],
    },
    options: { locale, responsive: true, maintainAspectRatio: false, scales: { x: { ticks: { maxTicksLimit: 12 } }, y: { beginAtZero: true } } },
  }));

  drawn.push(new Chart(document.getElementById('chart-areas'), {
    type: 'bar',
    data: {
      labels: data.areas.map(a => a.name),
      datasets: [
        { label: t('incidentsPerWeek'), data: data.areas.map(a => a.incidents), backgroundColor: '#1565c0' },
        { label: t('killedSeries'), data: data.areas.map(a => a.killed), backgroundColor: '#b3261e' },
      ],
    },
    options: { locale, indexAxis: 'y', responsive: true, maintainAspectRatio: false, scales: { x: { beginAtZero: true } } },
  }));
};

(() => {
  const source = document.getElementById('dashboard-data');
  if (source) Concord.drawDashboard(JSON.parse(source.textContent));
})();
