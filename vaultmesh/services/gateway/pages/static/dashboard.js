/* Dashboard: keep the server-rendered fleet table current from the SSE stream. */
'use strict';

(() => {
  const tbody = VM.byId('fleet-rows');
  if (!tbody) return;
  const HUMAN_KINDS = ['note', 'incident', 'ack', 'tag', 'resolve'];
  const ACTIVITY_CAP = 10;

  const rowFor = (id) => tbody.querySelector(`tr${VM.nodeSelector(id)}`);
  const sortKey = (row) => `${VM.field(row, 'hostname').textContent.toLowerCase()}\u0000${row.dataset.nodeId}`;

  function place(row) {
    const key = sortKey(row);
    const next = [...tbody.rows].find((other) => other !== row && sortKey(other) > key);
    if (next) {
      if (row.nextElementSibling !== next) tbody.insertBefore(row, next);
    } else if (tbody.lastElementChild !== row) {
      tbody.appendChild(row);
    }
  }

  function newRow(id) {
    const row = VM.cloneTemplate('row-template');
    row.dataset.nodeId = id;
    VM.field(row, 'link').href = `/console?node=${encodeURIComponent(id)}`;
    const code = VM.field(row, 'short_id');
    code.textContent = id.split('-')[0];
    code.title = id;
    tbody.appendChild(row);
    VM.byId('fleet-empty').hidden = true;
    return row;
  }

  function setStatus(row, status) {
    row.dataset.status = status;
    VM.setPill(VM.field(row, 'status'), status);
  }

  function updateKpis() {
    VM.setKpis(VM.countStatuses([...tbody.rows].map((row) => row.dataset.status)));
  }

  /** A full NodeView (from /api/nodes): every column. */
  function applyView(view) {
    const row = rowFor(view.node_id) || newRow(view.node_id);
    VM.setText(row, 'hostname', view.hostname);
    VM.setText(row, 'os_profile', view.os_profile);
    VM.setTime(VM.field(row, 'last_seen'), view.last_seen);
    VM.setCheck(VM.field(row, 'cloudflare_ok'), view.cloudflare_ok);
    VM.setCheck(VM.field(row, 'services_ok'), view.services_ok);
    setStatus(row, view.status);
    place(row);
  }

  function onHeartbeat(hb) {
    let row = rowFor(hb.node_id);
    const created = !row;
    if (created) row = newRow(hb.node_id);
    VM.setText(row, 'hostname', hb.hostname);
    VM.setText(row, 'os_profile', hb.os_profile);
    VM.setTime(VM.field(row, 'last_seen'), new Date().toISOString());
    VM.setCheck(VM.field(row, 'cloudflare_ok'), hb.cloudflare_ok);
    VM.setCheck(VM.field(row, 'services_ok'), hb.services_ok);
    place(row);
    VM.pulse(row, hb.timestamp);
    // A new node's status follows in fleet-state's join event (attention, previous null).
    if (created) updateKpis();
  }

  function onAttention(ev) {
    if (!ev.node_id || !ev.data) return;
    const row = rowFor(ev.node_id) || newRow(ev.node_id);
    if (ev.data.hostname) VM.setText(row, 'hostname', ev.data.hostname);
    setStatus(row, ev.data.status);
    place(row);
    updateKpis();
  }

  /** A node was deleted or expired: its row goes. */
  function onRemoval(ev) {
    const row = ev.node_id ? rowFor(ev.node_id) : null;
    if (!row) return;
    row.remove();
    updateKpis();
  }

  async function resync() {
    try {
      const listing = await VM.getJSON('/api/nodes');
      listing.nodes.forEach(applyView);
      updateKpis();
    } catch (err) {
      console.warn('vaultmesh: resync failed', err);
    }
  }

  function onHumanEvent(ev) {
    const row = ev.node_id ? rowFor(ev.node_id) : null;
    const name = row ? VM.field(row, 'hostname').textContent : (ev.node_id || 'fleet').split('-')[0];
    VM.prependEvent('activity', ev, name, ACTIVITY_CAP);
  }

  const handlers = { heartbeat: onHeartbeat, attention: onAttention, removal: onRemoval };
  for (const kind of HUMAN_KINDS) handlers[kind] = onHumanEvent;
  VM.connect(handlers, resync);
})();
