/**
 * The status page, `GET /`: one self-contained HTML document (inline CSS and JS, inline SVG
 * charts; nothing is loaded from elsewhere, not even a favicon). The server renders it with
 * the current snapshot, so it is complete without JavaScript; the script then follows the
 * node live over server-sent events (`/events`, one snapshot a second) and falls back to
 * polling `/api/status` when events do not arrive.
 *
 * Beside this node's own view, the page is a console for the whole cluster, each part fed by its
 * own endpoint, polled every 2 s (a poll is skipped while the last one is in flight):
 * - the cluster matrix (`/api/cluster`): one row per node, as that node reports it over the
 *   query protocol: its view of every other node (state, in sync, last sync age, clock offset),
 *   its keys and Merkle root, or "no answer" when it did not reply in time;
 * - the timeline (`/api/events?after=SEQ`): the node's recent events, newest first;
 * - the key browser (`/kv?prefix=P&values=1&limit=25&after=K[&deleted=1]&allow_partial=1`): keys
 *   by prefix with a value preview and the version's age, tombstones on request, paged by the
 *   last key shown; in partitioned mode from every partition's owners, and the status line says
 *   how many partitions had no owner up (their keys are not listed).
 * Charts are scaled by chartScale (./chart-scale.ts, whose source is put into this script):
 * ticks with values, and one outlier clipped and marked rather than flattening the rest.
 * Times are shown as "N s ago" (kept current every second), the ISO time on hover.
 *
 * DOM contract (tests and scripts rely on it):
 * - `<table id="nodes">`, one body row per node:
 *   `<tr class="node" data-peer-id="…" data-state="self|up|left|unreachable" data-in-sync="true|false">`
 *   (this node's own row: data-state="self", data-in-sync="true");
 * - `<span id="total-keys">`: this node's live key count, just the number;
 * - `<span id="last-update">`: ISO time of the last snapshot shown;
 * - `<table id="matrix">`: `tr.observer[data-node-id][data-answered=true|false][data-in-sync]`
 *   per reporting node, with `td.cell[data-subject=<node id>][data-state=self|up|unreachable|
 *   left|unknown][data-in-sync]` per node it may see;
 * - `<ul id="timeline">`: `li.event[data-seq][data-kind][data-node-id]`, newest first;
 * - the key browser: `#key-prefix`, `#key-deleted` (checkbox), `#key-form`, `#key-next`,
 *   `#key-prev`, rows `#key-rows tr.entry[data-key][data-deleted]` with `td.preview`;
 * - charts: `#<chart>-axis .tick` labels, `#<chart>-clipped` (what the scale cut off);
 * - partitioned mode only: `<div id="partitioned">` (./page-partitioned.ts).
 *
 * Everything that comes from peers (addresses, sync results) is text: the server escapes it,
 * the script sets it with textContent; a Content-Security-Policy that allows only this
 * page's own inline script and style (by hash) backs that up.
 */
import { createHash } from 'node:crypto';
import { chartScale } from './chart-scale.js';
import { partitionedLineHtml, partitionedScript } from './page-partitioned.js';
import type { PeerView, StatusSnapshot } from './snapshot.js';

const css = `
:root { color-scheme: light; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --bg: #ffffff; --panel: #f6f8fa;
  --ok: #1a7f37; --ok-bg: #dafbe1; --bad: #b42318; --bad-bg: #ffebe9; --idle: #57606a; --idle-bg: #eaeef2;
  --self: #0550ae; --self-bg: #ddf4ff; --p50: #0969da; --p99: #bc4c00; --local: #1a7f37; --remote: #8250df; }
* { box-sizing: border-box; }
body { margin: 0; padding: 16px; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
main { max-width: 1200px; margin: 0 auto; }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 16px; margin-bottom: 12px; }
h1 { font-size: 22px; margin: 0; }
h2 { font-size: 17px; margin: 20px 0 8px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.muted { color: var(--muted); }
.conn { font-size: 13px; padding: 1px 8px; border-radius: 10px; background: var(--idle-bg); color: var(--idle); }
.conn.live { background: var(--ok-bg); color: var(--ok); }
.conn.down { background: var(--bad-bg); color: var(--bad); }
.health { margin: 0 0 12px; padding: 8px 12px; border-radius: 6px; font-weight: 600; background: var(--idle-bg); color: var(--idle); }
.health.ok { background: var(--ok-bg); color: var(--ok); }
.health.warn, .health.bad { background: var(--bad-bg); color: var(--bad); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; min-width: 0; }
.card .label { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .03em; }
.card .value { font-size: 20px; font-weight: 600; overflow-wrap: anywhere; }
.card .value.small { font-size: 15px; line-height: 1.6; }
.card .sub { font-size: 12px; color: var(--muted); overflow-wrap: anywhere; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .03em; font-weight: 600; }
tr.node[data-state="self"] { background: #f3f9ff; }
tr.node td:first-child { box-shadow: inset 4px 0 var(--self); }
tr.node[data-state="up"][data-in-sync="true"] td:first-child { box-shadow: inset 4px 0 var(--ok); }
tr.node[data-state="up"][data-in-sync="false"] td:first-child, tr.node[data-state="unreachable"] td:first-child { box-shadow: inset 4px 0 var(--bad); }
tr.node[data-state="left"] td:first-child { box-shadow: inset 4px 0 var(--idle); }
code.id { white-space: nowrap; }
.badge { display: inline-block; font-size: 12px; font-weight: 600; padding: 1px 8px; border-radius: 10px; white-space: nowrap; }
.b-up, .b-sync { background: var(--ok-bg); color: var(--ok); }
.b-unreachable, .b-nosync { background: var(--bad-bg); color: var(--bad); }
.b-left { background: var(--idle-bg); color: var(--idle); }
.b-self { background: var(--self-bg); color: var(--self); }
.addr { display: block; overflow-wrap: anywhere; font-size: 12px; color: var(--muted); }
.id { overflow-wrap: anywhere; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 12px; }
figure { margin: 0; background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; min-width: 0; }
figcaption { font-weight: 600; font-size: 14px; }
.legend { font-size: 12px; color: var(--muted); font-weight: normal; }
.key { display: inline-block; width: 10px; height: 3px; vertical-align: middle; margin: 0 4px 0 8px; }
.k-p50 { background: var(--p50); } .k-p99 { background: var(--p99); } .k-local { background: var(--local); } .k-remote { background: var(--remote); }
.plot { display: flex; flex-wrap: wrap; justify-content: space-between; gap: 0 8px; font-size: 11px; color: var(--muted); }
.plot > span { white-space: nowrap; }
figure .sub { font-size: 12px; color: var(--muted); }
svg.chart { display: block; width: 100%; height: 140px; background: #fff; border: 1px solid var(--line); }
svg.chart path { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; vector-effect: non-scaling-stroke; }
svg.chart .grid { stroke: #eaeef2; stroke-width: 1; }
.s-p50 { stroke: var(--p50); } .s-p99 { stroke: var(--p99); } .s-local { stroke: var(--local); } .s-remote { stroke: var(--remote); }
footer { margin-top: 20px; font-size: 13px; color: var(--muted); }
.chartbox { position: relative; padding-left: 52px; }
.yaxis { position: absolute; left: 0; top: 0; bottom: 0; width: 48px; font-size: 11px; color: var(--muted); }
.yaxis .tick { position: absolute; right: 4px; transform: translateY(-50%); white-space: nowrap; }
.xaxis { display: flex; justify-content: space-between; padding-left: 52px; font-size: 11px; color: var(--muted); }
.clipnote { font-size: 12px; color: var(--bad); min-height: 1em; }
svg.chart .clip { stroke: var(--bad); stroke-width: 8; }
.scroll { overflow-x: auto; }
#matrix td, #matrix th { white-space: nowrap; font-size: 13px; }
#matrix td .sub, #keys .sub { display: block; font-size: 11px; color: var(--muted); }
#matrix th { text-transform: none; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
#timeline .sub { margin-left: 10px; color: var(--muted); overflow-wrap: anywhere; }
#timeline code { margin-left: 6px; }
#matrix tr.observer[data-answered="false"] { background: var(--bad-bg); }
.b-unknown { background: var(--idle-bg); color: var(--idle); }
#timeline { list-style: none; margin: 0; padding: 0; max-height: 360px; overflow-y: auto; border: 1px solid var(--line); border-radius: 6px; }
#timeline li { padding: 4px 10px; border-bottom: 1px solid var(--line); font-size: 13px; }
#timeline li.bad { background: var(--bad-bg); }
#timeline li.good { background: #f3fbf5; }
#timeline .ago { display: inline-block; min-width: 80px; color: var(--muted); }
#key-form { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin-bottom: 8px; }
#key-form input[type=text] { font: inherit; padding: 4px 8px; min-width: 240px; border: 1px solid var(--line); border-radius: 6px; }
button { font: inherit; padding: 3px 10px; border: 1px solid var(--line); border-radius: 6px; background: var(--panel); cursor: pointer; }
button:disabled { opacity: .5; cursor: default; }
#keys td.preview { overflow-wrap: anywhere; max-width: 520px; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; white-space: pre-wrap; }
.pager { display: flex; gap: 12px; align-items: center; margin-top: 6px; font-size: 13px; }
a { color: #0969da; }
@media (max-width: 720px) {
  body { padding: 10px; font-size: 14px; }
  #nodes thead { display: none; }
  #nodes, #nodes tbody, #nodes tr, #nodes td { display: block; width: 100%; }
  #nodes tr.node { border: 1px solid var(--line); border-radius: 6px; margin-bottom: 8px; padding: 4px 0; }
  #nodes td { border: 0; padding: 3px 10px; }
  #nodes tr.node td:first-child { box-shadow: none; }
  #nodes tr.node { border-left: 5px solid var(--self); }
  #nodes tr.node[data-state="up"][data-in-sync="true"] { border-left-color: var(--ok); }
  #nodes tr.node[data-state="up"][data-in-sync="false"], #nodes tr.node[data-state="unreachable"] { border-left-color: var(--bad); }
  #nodes tr.node[data-state="left"] { border-left-color: var(--idle); }
  #nodes td::before { content: attr(data-label); display: inline-block; min-width: 116px; font-size: 12px; color: var(--muted); text-transform: uppercase; }
}
`;

const chartScaleSource = chartScale.toString();

/** The page's script. Plain ES2017 in the browser; no template literals (it sits in one here). */
const script = `
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var lastEventAt = 0, source = null, sourceOpenedAt = 0, polling = false;

  // chartScale: the source of ./chart-scale.ts, the same function its unit test checks.
  ${chartScaleSource}

  // partitionedLine, renderPartitioned: ./page-partitioned.ts (partitioned mode's line).
  ${partitionedScript}

  function fmtInt(n) { return n === null || n === undefined ? '\\u2014' : Math.round(n).toLocaleString('en-US'); }
  function fmtBytes(b) {
    if (b < 1024) return b + ' B';
    var units = ['KiB', 'MiB', 'GiB', 'TiB'], v = b, i = -1;
    do { v /= 1024; i++; } while (v >= 1024 && i < units.length - 1);
    return v.toFixed(v < 10 ? 2 : 1) + ' ' + units[i];
  }
  function fmtMs(ms) {
    if (ms === null || ms === undefined) return '\\u2014';
    if (ms < 1000) return Math.round(ms) + ' ms';
    return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
  }
  function fmtAgo(ms) {
    if (ms < 1000) return 'just now';
    var s = Math.round(ms / 1000);
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    return Math.floor(s / 3600) + ' h ago';
  }
  function fmtOffset(ms) { return (ms > 0 ? '+' : '') + ms + ' ms'; }
  function shortId(id) { return id.length > 20 ? id.slice(0, 10) + '\\u2026' + id.slice(-6) : id; }
  function setText(el, text) { if (el && el.textContent !== text) el.textContent = text; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  var columns = ['node', 'state', 'sync', 'last sync', 'clock offset', 'entries', 'addresses'];

  function rowFor(tbody, rows, peerId) {
    var row = rows[peerId];
    if (!row) {
      row = el('tr', 'node');
      row.setAttribute('data-peer-id', peerId);
      for (var i = 0; i < columns.length; i++) {
        var td = el('td');
        td.setAttribute('data-label', columns[i]);
        row.appendChild(td);
      }
    }
    return row;
  }

  function badge(td, cls, text) {
    var b = td.firstChild;
    if (!b || b.nodeName !== 'SPAN' || td.childNodes.length !== 1) {
      td.textContent = '';
      b = el('span');
      td.appendChild(b);
    }
    if (b.className !== 'badge ' + cls) b.className = 'badge ' + cls;
    setText(b, text);
  }

  function fillNode(td, title, id, sub) {
    var key = title + '|' + id + '|' + sub;
    if (td.getAttribute('data-key') === key) return;
    td.setAttribute('data-key', key);
    td.textContent = '';
    var strong = el('strong', null, title);
    td.appendChild(strong);
    var code = el('code', 'id', shortId(id));
    code.title = id;
    td.appendChild(document.createTextNode(' '));
    td.appendChild(code);
    if (sub) td.appendChild(el('span', 'addr', sub));
  }

  function fillAddresses(td, addresses) {
    var key = addresses.join(' ');
    if (td.getAttribute('data-key') === key) return;
    td.setAttribute('data-key', key);
    td.textContent = '';
    if (addresses.length === 0) td.textContent = '\\u2014';
    for (var i = 0; i < addresses.length; i++) td.appendChild(el('code', 'addr', addresses[i]));
  }

  /** Up: in sync or not. Gone: what it was at its last session, greyed (old news). */
  function syncBadge(p) {
    if (p.state === 'up') return p.inSync ? ['b-sync', '\\u2713 in sync'] : ['b-nosync', '\\u2717 not in sync'];
    return ['b-left', p.inSync ? 'was in sync' : 'was not in sync'];
  }

  function renderNodes(snap) {
    var tbody = $('node-rows');
    var rows = {};
    var existing = tbody.querySelectorAll('tr.node');
    for (var i = 0; i < existing.length; i++) rows[existing[i].getAttribute('data-peer-id')] = existing[i];
    var wanted = [];
    var self = snap.self;
    var me = rowFor(tbody, rows, self.peerId);
    me.setAttribute('data-state', 'self');
    me.setAttribute('data-in-sync', 'true');
    var c = me.children;
    fillNode(c[0], 'this node', self.peerId, 'node id ' + self.nodeId);
    badge(c[1], 'b-self', 'self');
    badge(c[2], 'b-self', 'reference');
    setText(c[3], '\\u2014');
    setText(c[4], '\\u2014');
    setText(c[5], fmtInt(snap.totals.entries));
    fillAddresses(c[6], self.addresses);
    wanted.push(me);
    for (var j = 0; j < snap.peers.length; j++) {
      var p = snap.peers[j];
      var row = rowFor(tbody, rows, p.peerId);
      row.setAttribute('data-state', p.state);
      row.setAttribute('data-in-sync', p.inSync ? 'true' : 'false');
      var d = row.children;
      fillNode(d[0], 'peer', p.peerId, p.nodeId ? 'node id ' + p.nodeId : '');
      badge(d[1], 'b-' + p.state, p.state);
      var sync = syncBadge(p);
      badge(d[2], sync[0], sync[1]);
      var last = p.lastSyncMs > 0 ? fmtAgo(snap.timeMs - p.lastSyncMs) + (p.lastSyncResult ? ' \\u00b7 ' + p.lastSyncResult : '') : 'never';
      setText(d[3], last);
      d[3].title = p.lastSyncMs > 0 ? new Date(p.lastSyncMs).toISOString() : '';
      setText(d[4], fmtOffset(p.clockOffsetMs));
      setText(d[5], fmtInt(p.entryCount));
      fillAddresses(d[6], p.addresses);
      wanted.push(row);
    }
    for (var k = 0; k < wanted.length; k++) {
      if (tbody.children[k] !== wanted[k]) tbody.insertBefore(wanted[k], tbody.children[k] || null);
    }
    while (tbody.children.length > wanted.length) tbody.removeChild(tbody.lastChild);
  }

  /** Path data for one series: gaps (null) break the line; a lone point is a dot. */
  function pathOf(values, max, width, height) {
    var d = '', n = values.length, prev = false;
    for (var i = 0; i < n; i++) {
      var v = values[i];
      if (v === null || v === undefined) { prev = false; continue; }
      var x = n > 1 ? (i / (n - 1)) * width : width / 2;
      var y = height - (Math.min(v, max) / max) * height;
      d += (prev ? 'L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1) + (prev ? '' : 'l0.01 0');
      prev = true;
    }
    return d;
  }

  /** Dots at the top for the points above the scale (clipped outliers). */
  function clipsOf(values, max, width) {
    var d = '', n = values.length;
    for (var i = 0; i < n; i++) {
      var v = values[i];
      if (v === null || v === undefined || v <= max) continue;
      var x = n > 1 ? (i / (n - 1)) * width : width / 2;
      d += 'M' + x.toFixed(1) + ' 2l0.01 0';
    }
    return d;
  }

  var SVGNS = 'http://www.w3.org/2000/svg';

  /** Series, grid lines at the ticks, tick labels beside the chart, the clipped note. */
  function drawChart(id, series, scale, fmt) {
    var svg = $('chart-' + id);
    if (!svg) return;
    var paths = svg.querySelectorAll('path[data-series]');
    var all = [];
    for (var i = 0; i < paths.length; i++) {
      var name = paths[i].getAttribute('data-series');
      paths[i].setAttribute('d', pathOf(series[name], scale.max, 600, 140));
      all.push(clipsOf(series[name], scale.max, 600));
    }
    var clip = svg.querySelector('path.clip');
    if (clip) clip.setAttribute('d', all.join(''));
    var key = scale.ticks.join(',');
    if (svg.getAttribute('data-ticks') !== key) {
      svg.setAttribute('data-ticks', key);
      var old = svg.querySelectorAll('line.grid');
      for (var g = 0; g < old.length; g++) svg.removeChild(old[g]);
      var axis = $(id + '-axis');
      axis.textContent = '';
      for (var t = 0; t < scale.ticks.length; t++) {
        var y = 140 - (scale.ticks[t] / scale.max) * 140;
        var line = document.createElementNS(SVGNS, 'line');
        line.setAttribute('class', 'grid');
        line.setAttribute('x1', '0'); line.setAttribute('x2', '600');
        line.setAttribute('y1', y.toFixed(1)); line.setAttribute('y2', y.toFixed(1));
        line.setAttribute('vector-effect', 'non-scaling-stroke');
        svg.insertBefore(line, svg.firstChild);
        var label = el('span', 'tick', fmt(scale.ticks[t]));
        label.style.top = ((y / 140) * 100).toFixed(2) + '%';
        axis.appendChild(label);
      }
    }
    setText($(id + '-clipped'), scale.clipped > 0 ? '\u25b2 ' + scale.clipped + (scale.clipped === 1 ? ' point' : ' points') + ' above the scale (peak ' + fmt(scale.peak) + ')' : '');
  }

  function fmtTickMs(v) { return v >= 1000 ? (v / 1000) + ' s' : (v < 10 && v !== Math.round(v) ? v.toFixed(1) : String(Math.round(v))) + ' ms'; }
  function fmtTickRate(v) { return (v < 10 && v !== Math.round(v) ? v.toFixed(1) : fmtInt(v)) + '/s'; }

  function renderCharts(snap) {
    var s = snap.series || [];
    var p50 = [], p99 = [], local = [], remote = [];
    for (var i = 0; i < s.length; i++) {
      p50.push(s[i].p50Ms); p99.push(s[i].p99Ms);
      local.push(s[i].local); remote.push(s[i].remote);
    }
    var cscale = chartScale(p50.concat(p99), 4), wscale = chartScale(local.concat(remote), 4);
    drawChart('convergence', { p50: p50, p99: p99 }, cscale, fmtTickMs);
    drawChart('writes', { local: local, remote: remote }, wscale, fmtTickRate);
    setText($('convergence-max'), fmtMs(cscale.max));
    setText($('writes-max'), fmtInt(wscale.max) + '/s');
    var cv = snap.convergence;
    setText($('convergence-summary'), cv.samples ? 'p50 ' + fmtMs(cv.p50Ms) + ' \u00b7 p99 ' + fmtMs(cv.p99Ms) + ' \u00b7 ' + fmtInt(cv.samples) + ' samples' : 'no remote writes in the last minute');
  }

  // Same rule as healthOf() on the server.
  function renderHealth(peers, clockWarning) {
    var unreachable = 0, up = 0, behind = 0;
    for (var i = 0; i < peers.length; i++) {
      if (peers[i].state === 'unreachable') unreachable++;
      if (peers[i].state === 'up') { up++; if (!peers[i].inSync) behind++; }
    }
    var h = clockWarning ? ['bad', clockWarning]
      : unreachable > 0 ? ['bad', unreachable + ' of ' + peers.length + ' peers unreachable']
      : behind > 0 ? ['warn', behind + ' of ' + up + ' peers not in sync yet']
      : up === 0 ? ['idle', peers.length === 0 ? 'no peers: a single node' : 'no peers up']
      : ['ok', 'all ' + up + ' peers up and in sync'];
    var el = $('health');
    el.className = 'health ' + h[0];
    setText(el, h[1]);
  }

  function render(snap) {
    var t = snap.totals;
    renderNodes(snap);
    renderHealth(snap.peers, snap.self.clockWarning);
    setText($('delivery'), snap.delivery || '');
    $('delivery').hidden = !snap.delivery;
    renderPartitioned(snap.partitioned);
    setText($('total-keys'), String(t.keys));
    setText($('total-tombstones'), String(t.tombstones));
    setText($('total-disk'), fmtBytes(t.bytesOnDisk));
    setText($('writes-local'), String(t.writesPerSec.local));
    setText($('writes-remote'), String(t.writesPerSec.remote));
    setText($('writes-total'), fmtInt(t.writes.local) + ' local \\u00b7 ' + fmtInt(t.writes.remote) + ' remote in all');
    setText($('sync-sessions'), fmtInt(t.syncSessionsTotal));
    var parts = [];
    for (var k in t.syncSessions) if (t.syncSessions[k] > 0) parts.push(k.replace('_', '-') + ' ' + fmtInt(t.syncSessions[k]));
    setText($('sync-breakdown'), parts.join(' \\u00b7 ') || 'none yet');
    setText($('sync-bytes'), fmtBytes(t.syncBytes['in']) + ' in \\u00b7 ' + fmtBytes(t.syncBytes.out) + ' out');
    setText($('sync-repaired'), fmtInt(t.syncEntriesApplied) + ' entries repaired');
    var up = t.peersUp, known = snap.peers.length;
    setText($('peers-up'), up + ' / ' + known);
    setText($('uptime'), fmtMs(snap.self.uptimeMs));
    setText($('hlc-now'), snap.self.hlcNow);
    renderCharts(snap);
    setText($('last-update'), snap.time);
    skewMs = snap.timeMs - Date.now();
    var ago = $('updated-ago');
    ago.setAttribute('data-ms', String(snap.timeMs));
    ago.title = snap.time;
    refreshAgo();
  }

  // --- "N s ago" everywhere: every .ago[data-ms] is kept current, on the node's clock --------
  var skewMs = 0;
  function nodeNow() { return Date.now() + skewMs; }
  function refreshAgo() {
    var all = document.querySelectorAll('.ago[data-ms]');
    var now = nodeNow();
    for (var i = 0; i < all.length; i++) {
      var ms = Number(all[i].getAttribute('data-ms'));
      setText(all[i], ms > 0 ? fmtAgo(Math.max(0, now - ms)) : 'never');
    }
  }
  function agoSpan(ms, cls) {
    var span = el('span', 'ago' + (cls ? ' ' + cls : ''));
    span.setAttribute('data-ms', String(ms));
    if (ms > 0) span.title = new Date(ms).toISOString();
    span.textContent = ms > 0 ? fmtAgo(Math.max(0, nodeNow() - ms)) : 'never';
    return span;
  }

  // --- the cluster matrix: every node's view, side by side (/api/cluster) --------------------
  function stateBadge(state, inSync) {
    if (state === 'up') return inSync ? ['b-sync', 'up \u2713'] : ['b-nosync', 'up \u2717 sync'];
    if (state === 'unreachable') return ['b-unreachable', 'unreachable'];
    if (state === 'left') return ['b-left', 'left'];
    if (state === 'self') return ['b-self', 'self'];
    return ['b-unknown', state];
  }

  function renderCluster(c) {
    var table = $('matrix');
    var nodes = c.nodes;
    var thead = el('thead'), head = el('tr');
    head.appendChild(el('th', null, 'node (as this node sees it)'));
    for (var i = 0; i < nodes.length; i++) {
      var th = el('th', null, (nodes[i].nodeId || nodes[i].peerId).slice(0, 8) + (nodes[i].self ? ' (here)' : ''));
      th.title = 'how each node sees ' + (nodes[i].nodeId || nodes[i].peerId);
      head.appendChild(th);
    }
    head.appendChild(el('th', null, 'keys'));
    head.appendChild(el('th', null, 'Merkle root'));
    head.appendChild(el('th', null, 'its answer'));
    thead.appendChild(head);
    var tbody = el('tbody');
    var selfRoot = '';
    for (var r = 0; r < nodes.length; r++) if (nodes[r].self && nodes[r].report) selfRoot = nodes[r].report.merkleRoot;
    for (var j = 0; j < nodes.length; j++) {
      var n = nodes[j], rep = n.report;
      var row = el('tr', 'observer');
      row.setAttribute('data-node-id', n.nodeId);
      row.setAttribute('data-answered', n.answered ? 'true' : 'false');
      row.setAttribute('data-in-sync', n.inSync ? 'true' : 'false');
      row.setAttribute('data-state', n.state);
      var first = el('td');
      var code = el('code', 'id', shortId(n.nodeId || n.peerId));
      code.title = n.nodeId + ' \u00b7 ' + n.peerId;
      first.appendChild(code);
      first.appendChild(document.createTextNode(' '));
      var b = !n.self && n.state === 'up' && !n.answered ? ['b-unreachable', 'up \u00b7 not answering'] : stateBadge(n.state, n.inSync);
      first.appendChild(el('span', 'badge ' + b[0], n.self ? 'this node' : b[1]));
      if (!n.self && n.state === 'up') {
        var sub = el('span', 'sub');
        sub.appendChild(document.createTextNode('synced '));
        sub.appendChild(agoSpan(n.lastSyncMs));
        sub.appendChild(document.createTextNode(' \u00b7 clock ' + fmtOffset(n.clockOffsetMs)));
        first.appendChild(sub);
      }
      row.appendChild(first);
      for (var k = 0; k < nodes.length; k++) {
        var subject = nodes[k];
        var td = el('td', 'cell');
        td.setAttribute('data-subject', subject.nodeId);
        var state = 'unknown', inSync = false, seen = null;
        if (subject.nodeId === n.nodeId) state = 'self';
        else if (rep) {
          for (var q = 0; q < rep.peers.length; q++) if (rep.peers[q].nodeId === subject.nodeId) seen = rep.peers[q];
          if (seen) { state = seen.state; inSync = seen.inSync; }
        }
        td.setAttribute('data-state', state);
        td.setAttribute('data-in-sync', inSync ? 'true' : 'false');
        if (state === 'self') td.appendChild(el('span', 'muted', '\u00b7'));
        else if (!rep) td.appendChild(el('span', 'muted', '\u2014'));
        else if (!seen) td.appendChild(el('span', 'badge b-unknown', 'not known'));
        else {
          var sb = stateBadge(seen.state, seen.inSync);
          td.appendChild(el('span', 'badge ' + sb[0], sb[1]));
          var cs = el('span', 'sub');
          cs.appendChild(agoSpan(seen.lastSyncMs));
          cs.appendChild(document.createTextNode(' \u00b7 ' + fmtOffset(seen.clockOffsetMs)));
          cs.title = 'last sync, and its clock minus this reporter\u2019s';
          td.appendChild(cs);
        }
        row.appendChild(td);
      }
      row.appendChild(el('td', null, rep ? fmtInt(rep.keys) + (rep.tombstones ? ' (+' + fmtInt(rep.tombstones) + ' deleted)' : '') : '\u2014'));
      var root = el('td');
      if (rep) {
        var rc = el('code', null, rep.merkleRoot.slice(0, 10));
        rc.title = rep.merkleRoot;
        root.appendChild(rc);
        root.appendChild(document.createTextNode(' '));
        root.appendChild(el('span', 'badge ' + (n.inSync ? 'b-sync' : 'b-nosync'), n.inSync ? '= in sync' : '\u2260 differs'));
      } else root.textContent = '\u2014';
      row.appendChild(root);
      var answer = el('td');
      if (rep) {
        answer.textContent = 'v' + rep.version + ' \u00b7 up ' + fmtMs(rep.uptimeMs) + (rep.clockWarning ? ' \u00b7 ' + rep.clockWarning : '');
      } else answer.appendChild(el('span', 'badge b-unreachable', n.state === 'up' ? 'not answering' + (n.error ? ': ' + n.error.slice(0, 80) : '') : n.state));
      row.appendChild(answer);
      tbody.appendChild(row);
    }
    table.textContent = '';
    table.appendChild(thead);
    table.appendChild(tbody);
    var h = $('cluster-health');
    h.className = 'health ' + (c.healthy ? 'ok' : 'bad');
    setText(h, c.healthy ? 'cluster healthy: every node up, answering and in sync' : c.problems.slice(0, 3).join(' \u00b7 ') + (c.problems.length > 3 ? ' \u00b7 \u2026' : ''));
    setText($('cluster-more'), c.nodesTotal > nodes.length ? 'showing the first ' + nodes.length + ' of ' + c.nodesTotal + ' nodes (ckv health lists them all)' : '');
    var at = $('cluster-at');
    at.setAttribute('data-ms', String(c.timeMs));
    at.title = c.time;
  }

  // --- the timeline (/api/events?after=SEQ), newest first, at most 200 shown ----------------
  var lastSeq = 0;
  var badKinds = { 'member down': 1, 'sync failed': 1, 'clock warning': 1, 'member refused': 1, 'member expired': 1 };
  var goodKinds = { 'member up': 1, 'clock ok': 1, 'node started': 1 };
  function renderEvents(reply) {
    var list = $('timeline');
    var empty = $('timeline-empty');
    // The node restarted (its sequence began again): forget ours, so the next poll gets them all.
    if (reply.lastSeq < lastSeq) { lastSeq = 0; list.textContent = ''; return; }
    for (var i = 0; i < reply.events.length; i++) {
      var e = reply.events[i];
      if (e.seq <= lastSeq) continue;
      lastSeq = e.seq;
      var li = el('li', 'event ' + (badKinds[e.kind] ? 'bad' : goodKinds[e.kind] ? 'good' : ''));
      li.setAttribute('data-seq', String(e.seq));
      li.setAttribute('data-kind', e.kind);
      li.setAttribute('data-node-id', e.nodeId);
      li.appendChild(agoSpan(e.timeMs));
      li.appendChild(el('strong', null, e.kind));
      if (e.nodeId || e.peerId) {
        li.appendChild(document.createTextNode(' '));
        var code = el('code', 'id', shortId(e.nodeId || e.peerId));
        code.title = e.nodeId + ' ' + e.peerId;
        li.appendChild(code);
      }
      if (e.detail) li.appendChild(el('span', 'sub', e.detail));
      list.insertBefore(li, list.firstChild);
    }
    while (list.children.length > 200) list.removeChild(list.lastChild);
    if (empty) empty.style.display = list.children.length ? 'none' : '';
  }

  // --- the key browser (/kv?values=1) --------------------------------------------------------
  var keyPage = { prefix: '', deleted: false, cursors: [''], index: 0, loading: false };
  function loadKeys() {
    if (keyPage.loading) return;
    keyPage.loading = true;
    var after = keyPage.cursors[keyPage.index];
    var url = '/kv?values=1&limit=25&prefix=' + encodeURIComponent(keyPage.prefix) + (after ? '&after=' + encodeURIComponent(after) : '') + (keyPage.deleted ? '&deleted=1' : '') + '&allow_partial=1';
    var more = false;
    var missing = 0;
    fetch(url, { cache: 'no-store' }).then(function (r) {
      more = r.headers.get('X-Ckv-Truncated') === 'true';
      missing = Number(r.headers.get('X-Ckv-Partitions-Missing') || 0);
      if (!r.ok) return r.json().then(function (e) { throw new Error(e.error || ('HTTP ' + r.status)); });
      return r.json();
    }).then(function (items) {
      var tbody = $('key-rows');
      tbody.textContent = '';
      for (var i = 0; i < items.length; i++) {
        var it = items[i];
        var row = el('tr', 'entry');
        row.setAttribute('data-key', it.key);
        row.setAttribute('data-deleted', it.deleted ? 'true' : 'false');
        var k = el('td'); k.appendChild(el('code', 'id', it.key)); row.appendChild(k);
        var pv = el('td', 'preview');
        if (it.deleted) pv.appendChild(el('span', 'badge b-left', 'tombstone (deleted)'));
        else if (it.binary) pv.appendChild(el('span', 'badge b-unknown', 'binary ' + fmtInt(it.bytes) + ' bytes'));
        else pv.textContent = it.preview + (it.truncated ? '\u2026' : '');
        row.appendChild(pv);
        row.appendChild(el('td', null, it.deleted ? '\u2014' : fmtBytes(it.bytes)));
        var v = el('td');
        v.appendChild(agoSpan(it.timeMs));
        var vc = el('code', 'sub', it.version);
        v.appendChild(vc);
        row.appendChild(v);
        tbody.appendChild(row);
      }
      if (items.length) keyPage.cursors[keyPage.index + 1] = items[items.length - 1].key;
      $('key-next').disabled = !more;
      $('key-prev').disabled = keyPage.index === 0;
      setText($('key-status'), (items.length ? 'page ' + (keyPage.index + 1) + ' \u00b7 ' + items.length + ' keys' : 'no keys') + (keyPage.prefix ? ' with prefix \u201c' + keyPage.prefix + '\u201d' : '') + (more ? ' \u00b7 more follow' : '') + (missing > 0 ? ' \u00b7 ' + missing + ' of 256 partitions have no owner up: their keys are not listed' : ''));
    }, function (err) {
      setText($('key-status'), 'could not list keys: ' + err.message);
    }).then(function () { keyPage.loading = false; });
  }
  function searchKeys() {
    keyPage.prefix = $('key-prefix').value;
    keyPage.deleted = $('key-deleted').checked;
    keyPage.cursors = [''];
    keyPage.index = 0;
    loadKeys();
  }

  // --- polling the console's parts: every 2 s, one request each at a time --------------------
  var inFlight = {};
  function every2s(name, pathFn, onReply) {
    if (inFlight[name]) return;
    inFlight[name] = true;
    fetch(pathFn(), { cache: 'no-store' }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    }).then(onReply, function () { /* shown stale; the next poll retries */ }).then(function () { inFlight[name] = false; });
  }
  function pollConsole() {
    every2s('cluster', function () { return '/api/cluster'; }, renderCluster);
    every2s('events', function () { return '/api/events?limit=500&after=' + lastSeq; }, renderEvents);
  }

  function setMode(mode, text) {
    var c = $('conn');
    c.className = 'conn ' + mode;
    setText(c, text);
  }


  function openEvents() {
    if (!window.EventSource) return;
    sourceOpenedAt = Date.now();
    source = new EventSource('/events');
    source.onmessage = function (e) {
      lastEventAt = Date.now();
      setMode('live', 'live');
      try { render(JSON.parse(e.data)); } catch (err) { /* a bad frame: the next one comes in a second */ }
    };
    source.onerror = function () {
      if (source && source.readyState === 2) { source.close(); source = null; }
    };
  }

  function poll() {
    if (polling) return;
    polling = true;
    fetch('/api/status', { cache: 'no-store' }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    }).then(function (snap) {
      setMode('live', 'live (polling)');
      render(snap);
    }, function () {
      setMode('down', 'node unreachable');
    }).then(function () { polling = false; });
  }

  // The watchdog: no event for 2.5 s means events are not getting through (blocked by a
  // proxy, the node's client limit, a restart): poll every second instead, and retry events
  // now and then.
  setInterval(function () {
    if (Date.now() - lastEventAt < 2500) return;
    poll();
    if (!source && Date.now() - sourceOpenedAt > 10000) openEvents();
  }, 1000);

  $('key-form').addEventListener('submit', function (e) { e.preventDefault(); searchKeys(); });
  $('key-deleted').addEventListener('change', searchKeys);
  $('key-next').addEventListener('click', function () { keyPage.index++; loadKeys(); });
  $('key-prev').addEventListener('click', function () { if (keyPage.index > 0) { keyPage.index--; loadKeys(); } });
  setInterval(refreshAgo, 1000);
  setInterval(pollConsole, 2000);
  pollConsole();
  searchKeys();

  lastEventAt = Date.now();
  setMode('', 'connecting');
  openEvents();
  if (!window.EventSource) poll();
})();
`;

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** Sent with the page: only its own inline script and style run; it may talk only to this node. */
export const pageSecurityPolicy = [
  "default-src 'none'",
  `script-src ${hash(script)}`,
  `style-src ${hash(css)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const fmtInt = (n: number | null): string => (n === null ? '\u2014' : Math.round(n).toLocaleString('en-US'));

function shortId(id: string): string {
  return id.length > 20 ? `${id.slice(0, 10)}\u2026${id.slice(-6)}` : id;
}

function fmtBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

function cell(label: string, html: string): string {
  return `<td data-label="${label}">${html}</td>`;
}

function addressesHtml(addresses: string[]): string {
  return addresses.length === 0 ? '\u2014' : addresses.map((a) => `<code class="addr">${escapeHtml(a)}</code>`).join('');
}

function nodeHtml(title: string, id: string, sub: string): string {
  return `<strong>${title}</strong> <code class="id" title="${escapeHtml(id)}">${escapeHtml(shortId(id))}</code>${sub ? `<span class="addr">${escapeHtml(sub)}</span>` : ''}`;
}

/** One line on the cluster's health, at the top of the page: [css class, text]. */
export function healthOf(peers: PeerView[], clockWarning = ''): [string, string] {
  if (clockWarning) return ['bad', clockWarning];
  const unreachable = peers.filter((p) => p.state === 'unreachable').length;
  const up = peers.filter((p) => p.state === 'up');
  const behind = up.filter((p) => !p.inSync).length;
  if (unreachable > 0) return ['bad', `${unreachable} of ${peers.length} peers unreachable`];
  if (behind > 0) return ['warn', `${behind} of ${up.length} peers not in sync yet`];
  if (up.length === 0) return ['idle', peers.length === 0 ? 'no peers: a single node' : 'no peers up'];
  return ['ok', `all ${up.length} peers up and in sync`];
}

function syncBadgeHtml(p: PeerView): string {
  if (p.state !== 'up') return `<span class="badge b-left">${p.inSync ? 'was in sync' : 'was not in sync'}</span>`;
  return p.inSync ? '<span class="badge b-sync">\u2713 in sync</span>' : '<span class="badge b-nosync">\u2717 not in sync</span>';
}

function peerRow(p: PeerView, nowMs: number): string {
  const ago = (ms: number): string => (ms < 1000 ? 'just now' : ms < 60_000 ? `${Math.round(ms / 1000)} s ago` : ms < 3_600_000 ? `${Math.floor(ms / 60_000)} min ago` : `${Math.floor(ms / 3_600_000)} h ago`);
  const last = p.lastSyncMs > 0 ? `${ago(nowMs - p.lastSyncMs)}${p.lastSyncResult ? ` \u00b7 ${p.lastSyncResult}` : ''}` : 'never';
  return (
    `<tr class="node" data-peer-id="${escapeHtml(p.peerId)}" data-state="${p.state}" data-in-sync="${p.inSync}">` +
    cell('node', nodeHtml('peer', p.peerId, p.nodeId ? `node id ${p.nodeId}` : '')) +
    cell('state', `<span class="badge b-${p.state}">${p.state}</span>`) +
    cell('sync', syncBadgeHtml(p)) +
    cell('last sync', escapeHtml(last)) +
    cell('clock offset', `${p.clockOffsetMs > 0 ? '+' : ''}${p.clockOffsetMs} ms`) +
    cell('entries', fmtInt(p.entryCount)) +
    cell('addresses', addressesHtml(p.addresses)) +
    '</tr>'
  );
}

/** A chart: y-axis labels beside it (#NAME-axis, filled by the script), the SVG, the time axis. */
const chartSvg = (name: string, series: string[]): string =>
  `<div class="chartbox"><div class="yaxis" id="${name}-axis"></div>` +
  `<svg class="chart" id="chart-${name}" viewBox="0 0 600 140" preserveAspectRatio="none" role="img" aria-label="chart-${name}">` +
  series.map((s) => `<path class="s-${s}" data-series="${s}" d=""/>`).join('') +
  '<path class="clip" d=""/></svg></div>' +
  '<div class="xaxis"><span>60 s ago</span><span>45 s ago</span><span>30 s ago</span><span>15 s ago</span><span>now</span></div>' +
  `<div class="clipnote" id="${name}-clipped"></div>`;

/** The whole page, rendered with `snap`; the script takes over from there. */
export function renderPage(snap: StatusSnapshot): string {
  const { self, totals } = snap;
  const selfRow =
    `<tr class="node" data-peer-id="${escapeHtml(self.peerId)}" data-state="self" data-in-sync="true">` +
    cell('node', nodeHtml('this node', self.peerId, `node id ${self.nodeId}`)) +
    cell('state', '<span class="badge b-self">self</span>') +
    cell('sync', '<span class="badge b-self">reference</span>') +
    cell('last sync', '\u2014') +
    cell('clock offset', '\u2014') +
    cell('entries', fmtInt(totals.entries)) +
    cell('addresses', addressesHtml(self.addresses)) +
    '</tr>';
  const sessions = Object.entries(totals.syncSessions)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k.replace('_', '-')} ${fmtInt(n)}`)
    .join(' \u00b7 ');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ckv \u00b7 ${escapeHtml(self.cluster)} \u00b7 ${escapeHtml(self.nodeId)}</title>
<link rel="icon" href="data:,">
<style>${css}</style>
</head>
<body>
<main>
<header>
  <h1>ckv</h1>
  <span>cluster <strong>${escapeHtml(self.cluster)}</strong></span>
  <span class="muted">node <code>${escapeHtml(self.nodeId)}</code> \u00b7 v${escapeHtml(self.version)}</span>
  <span id="conn" class="conn">loading</span>
  <span class="muted">updated <span id="updated-ago" class="ago" data-ms="${snap.timeMs}" title="${snap.time}">just now</span></span>
</header>

<div id="health" class="health ${healthOf(snap.peers, snap.self.clockWarning)[0]}">${escapeHtml(healthOf(snap.peers, snap.self.clockWarning)[1])}</div>
<div id="delivery" class="muted"${snap.delivery ? '' : ' hidden'}>${escapeHtml(snap.delivery)}</div>
${partitionedLineHtml(snap.partitioned, escapeHtml)}

<section class="cards" aria-label="totals">
  <div class="card"><div class="label">keys</div><div class="value"><span id="total-keys">${totals.keys}</span></div><div class="sub"><span id="total-tombstones">${totals.tombstones}</span> tombstones</div></div>
  <div class="card"><div class="label">on disk</div><div class="value"><span id="total-disk">${fmtBytes(totals.bytesOnDisk)}</span></div><div class="sub">up <span id="uptime">${Math.round(self.uptimeMs / 1000)} s</span></div></div>
  <div class="card"><div class="label">writes/s local</div><div class="value"><span id="writes-local">${totals.writesPerSec.local}</span></div><div class="sub">mean of the last 5 s</div></div>
  <div class="card"><div class="label">writes/s remote</div><div class="value"><span id="writes-remote">${totals.writesPerSec.remote}</span></div><div class="sub" id="writes-total">${fmtInt(totals.writes.local)} local \u00b7 ${fmtInt(totals.writes.remote)} remote in all</div></div>
  <div class="card"><div class="label">sync sessions</div><div class="value"><span id="sync-sessions">${fmtInt(totals.syncSessionsTotal)}</span></div><div class="sub" id="sync-breakdown">${sessions || 'none yet'}</div></div>
  <div class="card"><div class="label">sync traffic</div><div class="value small" id="sync-bytes">${fmtBytes(totals.syncBytes.in)} in \u00b7 ${fmtBytes(totals.syncBytes.out)} out</div><div class="sub" id="sync-repaired">${fmtInt(totals.syncEntriesApplied)} entries repaired</div></div>
  <div class="card"><div class="label">peers up / known</div><div class="value"><span id="peers-up">${totals.peersUp} / ${snap.peers.length}</span></div><div class="sub">hlc <span id="hlc-now" class="mono">${escapeHtml(self.hlcNow)}</span></div></div>
</section>

<h2>Nodes</h2>
<table id="nodes">
<thead><tr><th>node</th><th>state</th><th>sync</th><th>last sync</th><th>clock offset</th><th title="keys, tombstones included; a peer's count is from its last sync with this node">entries</th><th>addresses</th></tr></thead>
<tbody id="node-rows">
${[selfRow, ...snap.peers.map((p) => peerRow(p, snap.timeMs))].join('\n')}
</tbody>
</table>

<h2>Cluster: every node's view <span class="legend">(asked <span id="cluster-at" class="ago" data-ms="0">never</span>; rows: each node's report of whom it sees; a cell: state, last sync, clock offset)</span></h2>
<div id="cluster-health" class="health">asking every node\u2026</div>
<div class="scroll"><table id="matrix"><tbody><tr><td class="muted">loading\u2026</td></tr></tbody></table></div>
<div id="cluster-more" class="muted"></div>

<h2>Last minute</h2>
<div class="charts">
  <figure>
    <figcaption>Write convergence time <span class="legend"><span class="key k-p50"></span>p50<span class="key k-p99"></span>p99</span></figcaption>
    <div class="sub">remote writes: when applied here minus when the writer stamped them</div>
    <div class="plot"><span>scale to <span id="convergence-max">1 ms</span></span><span id="convergence-summary">no remote writes in the last minute</span></div>
    ${chartSvg('convergence', ['p50', 'p99'])}
  </figure>
  <figure>
    <figcaption>Writes per second <span class="legend"><span class="key k-local"></span>local<span class="key k-remote"></span>remote</span></figcaption>
    <div class="sub">local: through this node; remote: from peers, by gossip or sync</div>
    <div class="plot"><span>scale to <span id="writes-max">1/s</span></span></div>
    ${chartSvg('writes', ['local', 'remote'])}
  </figure>
</div>

<h2>Events <span class="legend">newest first: members up, down (unreachable), left; failed syncs and why; clock warnings</span></h2>
<ul id="timeline"></ul>
<div id="timeline-empty" class="muted">no events yet</div>

<h2>Keys</h2>
<form id="key-form" autocomplete="off">
  <input type="text" id="key-prefix" placeholder="key prefix (empty: all keys)" aria-label="key prefix">
  <label><input type="checkbox" id="key-deleted"> show tombstones</label>
  <button type="submit" id="key-search">search</button>
</form>
<div class="scroll"><table id="keys">
<thead><tr><th>key</th><th>value (first 200 bytes)</th><th>size</th><th>version</th></tr></thead>
<tbody id="key-rows"></tbody>
</table></div>
<div class="pager"><button type="button" id="key-prev" disabled>\u2190 previous</button><button type="button" id="key-next" disabled>next \u2192</button><span id="key-status" class="muted"></span></div>

<footer>
  Last update <span id="last-update" class="mono">${snap.time}</span> \u00b7
  <a href="/api/status">JSON</a> \u00b7 <a href="/api/cluster">cluster</a> \u00b7 <a href="/api/events">events</a> \u00b7 <a href="/metrics">metrics</a> \u00b7 <a href="/kv">keys</a>
</footer>
</main>
<script>${script}</script>
</body>
</html>
`;
}
