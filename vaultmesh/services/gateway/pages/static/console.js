/* Mission console: node list, selected-node telemetry and timeline, fleet summary,
 * all kept current from the SSE stream without reloading the page. */
'use strict';

(() => {
  const stateEl = VM.byId('vm-state');
  if (!stateEl) return;
  const initial = JSON.parse(stateEl.textContent);
  const nodes = new Map(initial.nodes.map((node) => [node.node_id, node]));
  let selected = initial.selected;
  const LIST = VM.byId('node-list');
  const CAPS = { feed: 100, scans: 20, timeline: 50 };
  const RANK = { CRIT: 0, ATTN: 1 };
  const AUTHOR_KEY = 'vaultmesh.author';

  const hostOf = (id) => (id && nodes.has(id) ? nodes.get(id).hostname : (id || 'fleet').split('-')[0]);
  const byHost = (a, b) => a.hostname.toLowerCase().localeCompare(b.hostname.toLowerCase())
    || a.node_id.localeCompare(b.node_id);

  /* ---- left panel: node list ---------------------------------------------------- */

  function itemFor(id) {
    return LIST.querySelector(`li${VM.nodeSelector(id)}`);
  }

  function newItem(id) {
    const li = VM.cloneTemplate('node-item-template');
    li.dataset.nodeId = id;
    li.querySelector('a').href = `/console?node=${encodeURIComponent(id)}`;
    LIST.appendChild(li);
    VM.byId('nodes-empty').hidden = true;
    return li;
  }

  function place(li, node) {
    const next = [...LIST.children].find((other) => {
      const peer = nodes.get(other.dataset.nodeId);
      return other !== li && peer && byHost(peer, node) > 0;
    });
    if (next) {
      if (li.nextElementSibling !== next) LIST.insertBefore(li, next);
    } else if (LIST.lastElementChild !== li) {
      LIST.appendChild(li);
    }
  }

  function renderItem(node) {
    const li = itemFor(node.node_id) || newItem(node.node_id);
    li.dataset.status = node.status || '';
    VM.setPill(VM.field(li, 'status'), node.status);
    VM.setText(li, 'hostname', node.hostname);
    VM.setText(li, 'os_profile', node.os_profile);
    VM.setTime(VM.field(li, 'last_seen'), node.last_seen);
    const link = li.querySelector('a');
    if (node.node_id === selected) link.setAttribute('aria-current', 'true');
    else link.removeAttribute('aria-current');
    place(li, node);
    return li;
  }

  /* ---- mission bar and right panel: KPIs and attention summary ---------------------- */

  function renderSummary() {
    VM.setKpis(VM.countStatuses([...nodes.values()].map((node) => node.status)));
    const list = VM.byId('attention-list');
    const troubled = [...nodes.values()].filter((n) => n.status === 'ATTN' || n.status === 'CRIT');
    troubled.sort((a, b) => RANK[a.status] - RANK[b.status] || byHost(a, b));
    list.replaceChildren(...troubled.map((node) => {
      const li = VM.cloneTemplate('attention-template');
      li.dataset.nodeId = node.node_id;
      VM.setPill(VM.field(li, 'status'), node.status);
      const link = VM.field(li, 'hostname');
      link.textContent = node.hostname;
      link.href = `/console?node=${encodeURIComponent(node.node_id)}`;
      li.querySelector('.reasons-text').textContent = (node.reasons || []).join('; ');
      return li;
    }));
    VM.byId('attention-empty').hidden = troubled.length > 0;
  }

  /* ---- centre panel: telemetry of the selected node --------------------------------- */

  function meter(root, name, used, total) {
    const ok = typeof used === 'number' && typeof total === 'number' && total > 0;
    VM.field(root, `${name}_meter`).value = ok ? used / total : 0;
    VM.setText(root, `${name}_text`, ok ? `${VM.fmtBytes(used)} of ${VM.fmtBytes(total)} used` : '—');
  }

  function renderMetrics(root, metrics) {
    const m = metrics || {};
    const load = [m.load1, m.load5, m.load15].map((v) => (typeof v === 'number' ? v.toFixed(2) : '—'));
    VM.setText(root, 'load', load.join(' / '));
    const memUsed = m.mem_total_bytes - m.mem_available_bytes;
    meter(root, 'mem', Number.isFinite(memUsed) ? memUsed : null, m.mem_total_bytes);
    const diskUsed = m.disk_total_bytes - m.disk_free_bytes;
    meter(root, 'disk', Number.isFinite(diskUsed) ? diskUsed : null, m.disk_total_bytes);
  }

  function renderTelemetry() {
    const panel = VM.byId('telemetry');
    const node = selected ? nodes.get(selected) : null;
    panel.hidden = !node;
    VM.byId('no-selection').hidden = Boolean(node);
    if (!node) return;
    panel.dataset.nodeId = node.node_id;
    for (const name of ['hostname', 'node_id', 'os_profile', 'vaultmesh_root']) {
      VM.setText(panel, name, node[name]);
    }
    VM.setPill(VM.field(panel, 'status'), node.status);
    VM.setTime(VM.field(panel, 'last_seen'), node.last_seen);
    VM.setTime(VM.field(panel, 'first_seen'), node.first_seen);
    VM.setText(panel, 'interval', node.interval_s ? `${node.interval_s} s` : '—');
    VM.setCheck(VM.field(panel, 'cloudflare_ok'), node.cloudflare_ok);
    VM.setCheck(VM.field(panel, 'services_ok'), node.services_ok);
    renderMetrics(panel, node.metrics);
    VM.field(panel, 'reasons').replaceChildren(...(node.reasons || []).map((reason) => {
      const li = document.createElement('li');
      li.textContent = reason;
      return li;
    }));
  }

  async function loadTimeline(id) {
    const list = VM.byId('timeline');
    try {
      const reply = await VM.getJSON(`/api/events?node_id=${encodeURIComponent(id)}&limit=${CAPS.timeline}`);
      if (selected !== id) return; // the operator moved on while we waited
      list.replaceChildren();
      for (const ev of [...reply.events].reverse()) {
        VM.prependEvent('timeline', ev, hostOf(ev.node_id), CAPS.timeline);
      }
      VM.byId('timeline-empty').hidden = list.children.length > 0;
    } catch (err) {
      console.warn('vaultmesh: timeline failed', err);
    }
  }

  function select(id) {
    if (!nodes.has(id)) return;
    const changed = id !== selected;
    selected = id;
    for (const li of LIST.children) {
      const link = li.querySelector('a');
      if (li.dataset.nodeId === id) link.setAttribute('aria-current', 'true');
      else link.removeAttribute('aria-current');
    }
    renderTelemetry();
    if (changed) {
      history.replaceState(null, '', `/console?node=${encodeURIComponent(id)}`);
      VM.byId('timeline').replaceChildren();
      loadTimeline(id);
    }
  }

  /* ---- live updates ---------------------------------------------------------------- */

  /**
   * Fill in a node the page first heard of from an attention event (first seen, metrics …).
   * fleet-state announces a node once it knows it, so one request is enough.
   */
  async function learnNode(id) {
    try {
      const view = await VM.getJSON(`/api/nodes/${encodeURIComponent(id)}`);
      const node = nodes.get(id);
      if (node) applyView({ ...view, status: node.status || view.status });
    } catch (err) {
      console.warn('vaultmesh: node lookup failed', err);
    }
  }

  function applyView(view) {
    nodes.set(view.node_id, { ...nodes.get(view.node_id), ...view });
    renderItem(nodes.get(view.node_id));
    renderSummary();
    if (view.node_id === selected) renderTelemetry();
    if (!selected) select(view.node_id);
  }

  function onHeartbeat(hb) {
    const known = nodes.get(hb.node_id);
    const now = new Date().toISOString();
    const node = {
      status: null,
      reasons: [],
      first_seen: now,
      ...known,
      hostname: hb.hostname,
      os_profile: hb.os_profile,
      cloudflare_ok: hb.cloudflare_ok,
      services_ok: hb.services_ok,
      vaultmesh_root: hb.vaultmesh_root,
      node_id: hb.node_id,
      last_seen: now,
      last_heartbeat: hb.timestamp,
      metrics: hb.metrics || (known && known.metrics) || null,
      interval_s: hb.interval_s || (known && known.interval_s) || null,
    };
    nodes.set(hb.node_id, node);
    VM.pulse(renderItem(node), hb.timestamp);
    if (hb.node_id === selected) {
      renderTelemetry();
      VM.pulse(VM.byId('telemetry'), hb.timestamp);
    }
    if (!known) {
      // Its status follows in fleet-state's join event (attention, previous null).
      renderSummary();
      if (!selected) select(hb.node_id);
    }
  }

  function addEvent(ev) {
    const name = hostOf(ev.node_id);
    VM.prependEvent('event-feed', ev, name, CAPS.feed);
    if (ev.kind === 'scan') VM.prependEvent('scan-list', ev, name, CAPS.scans);
    if (ev.node_id && ev.node_id === selected) VM.prependEvent('timeline', ev, name, CAPS.timeline);
  }

  function onAttention(ev) {
    const data = ev.data || {};
    if (ev.node_id && data.status) {
      const known = nodes.get(ev.node_id);
      const node = known || { node_id: ev.node_id, hostname: data.hostname || ev.node_id };
      node.status = data.status;
      node.reasons = data.reasons || [];
      if (data.hostname) node.hostname = data.hostname;
      nodes.set(ev.node_id, node);
      renderItem(node);
      renderSummary();
      if (ev.node_id === selected) renderTelemetry();
      if (!known) learnNode(ev.node_id);
    }
    addEvent(ev);
  }

  /** A node was deleted or expired: it leaves the list and the summary. */
  function onRemoval(ev) {
    if (ev.node_id && nodes.delete(ev.node_id)) {
      const li = itemFor(ev.node_id);
      if (li) li.remove();
      VM.byId('nodes-empty').hidden = nodes.size > 0;
      renderSummary();
    }
    addEvent(ev);
  }

  async function resync() {
    try {
      const listing = await VM.getJSON('/api/nodes');
      listing.nodes.forEach(applyView);
    } catch (err) {
      console.warn('vaultmesh: resync failed', err);
    }
  }

  /* ---- operator actions ------------------------------------------------------------- */

  function wireForm() {
    const form = VM.byId('event-form');
    const status = VM.byId('form-status');
    const remembered = window.localStorage && localStorage.getItem(AUTHOR_KEY);
    if (remembered) form.elements.author.value = remembered;
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const author = form.elements.author.value.trim() || 'operator';
      const body = {
        kind: form.elements.kind.value,
        severity: form.elements.severity.value,
        author,
        body: form.elements.body.value,
        node_id: selected,
      };
      status.textContent = 'posting…';
      try {
        const ev = await VM.postJSON('/api/events', body);
        if (window.localStorage) localStorage.setItem(AUTHOR_KEY, author);
        form.elements.body.value = '';
        status.textContent = `posted ${ev.kind} ${ev.id}`;
        addEvent(ev); // the SSE copy is deduplicated by id
      } catch (err) {
        status.textContent = `not posted: ${err.message}`;
      }
    });
  }

  function wireSelection() {
    const onClick = (e) => {
      const li = e.target.closest('[data-node-id]');
      if (!li || !nodes.has(li.dataset.nodeId) || e.ctrlKey || e.metaKey || e.shiftKey) return;
      e.preventDefault();
      select(li.dataset.nodeId);
    };
    LIST.addEventListener('click', onClick);
    VM.byId('attention-list').addEventListener('click', onClick);
  }

  function tickClock() {
    const clock = VM.byId('utc-clock');
    const now = new Date();
    clock.dateTime = now.toISOString();
    clock.textContent = `${now.toISOString().slice(11, 19)} UTC`;
  }

  wireForm();
  wireSelection();
  tickClock();
  setInterval(tickClock, 1000);
  const handlers = { heartbeat: onHeartbeat, attention: onAttention, removal: onRemoval };
  for (const kind of ['note', 'incident', 'ack', 'tag', 'resolve', 'scan', 'command']) {
    handlers[kind] = addEvent;
  }
  VM.connect(handlers, resync);
})();
