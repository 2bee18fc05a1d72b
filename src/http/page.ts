/**
 * The live page at `/`: one self-contained document (no outside scripts or
 * styles, labs are often offline) that polls /api/jobs every two seconds.
 * Job names and reasons come from release assets and workloads: they are
 * inserted as text, never as markup.
 */
export const LIVE_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dispatch</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .25rem .6rem; border-bottom: 1px solid #ddd; font-variant-numeric: tabular-nums; }
  .failed { color: #b00; } .finished { color: #070; } .booting { color: #a60; } .downloading, .assigned { color: #05a; }
  #counts span { margin-right: 1rem; }
</style>
</head>
<body>
<h1>dispatch</h1>
<p id="counts">loading…</p>
<table>
<thead><tr><th>job</th><th>state</th><th>server</th><th>size</th><th>attempts</th><th>since</th><th>reports</th><th>reason</th></tr></thead>
<tbody id="jobs"></tbody>
</table>
<script>
const cell = (row, text) => { const td = document.createElement('td'); td.textContent = text; row.append(td); return td; };
const link = (td, ref) => {
  if (!/^https?:/.test(ref)) { td.append(document.createTextNode(ref.split('/').pop() + ' ')); return; }
  const a = document.createElement('a'); a.href = ref; a.textContent = (ref.match(/issues\\/(\\d+)/) || [, ref])[1].replace(/^(\\d+)$/, '#$1'); td.append(a, ' ');
};
async function refresh() {
  try {
    const { jobs } = await (await fetch('/api/jobs', { cache: 'no-store' })).json();
    const counts = {};
    const body = document.getElementById('jobs');
    body.replaceChildren(...jobs.map((job) => {
      counts[job.state] = (counts[job.state] || 0) + 1;
      const row = document.createElement('tr');
      row.className = job.state;
      for (const text of [job.name, job.state, job.ip || '-', String(job.size), String(job.attempts), new Date(job.since).toLocaleTimeString()]) cell(row, text);
      const reports = cell(row, '');
      for (const ref of job.reports) link(reports, ref);
      cell(row, job.reason || '');
      return row;
    }));
    document.getElementById('counts').replaceChildren(...Object.entries(counts).map(([state, n]) => {
      const span = document.createElement('span'); span.className = state; span.textContent = n + ' ' + state; return span;
    }));
  } catch (err) {
    document.getElementById('counts').textContent = 'dispatch is not answering (' + err.message + ')';
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
`;
