/* VaultMesh pages: helpers shared by dashboard.js and console.js.
 *
 * Everything that shows data sets textContent or attributes, never innerHTML:
 * hostnames and event bodies come from agents and people. The markup this
 * fills in is rendered by the server (widgets.py) inside <template> elements.
 */
'use strict';

const VM = (() => {
  const PILLS = {
    OK: ['pill-ok', 'healthy'],
    ATTN: ['pill-attn', 'needs attention'],
    CRIT: ['pill-crit', 'critical'],
  };
  const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  const LINK_TEXT = { open: 'live', connecting: 'connecting…', closed: 'offline, retrying' };

  function ageText(seconds) {
    const secs = Math.max(0, Math.floor(seconds));
    if (secs < 5) return 'just now';
    if (secs < 60) return `${secs} s ago`;
    if (secs < 3600) return `${Math.floor(secs / 60)} min ago`;
    if (secs < 86400) return `${Math.floor(secs / 3600)} h ago`;
    return `${Math.floor(secs / 86400)} d ago`;
  }

  function fmtBytes(count) {
    if (count === null || count === undefined) return '—';
    let value = count;
    for (const unit of UNITS) {
      if (value < 1024 || unit === UNITS[UNITS.length - 1]) {
        return unit === 'B' ? `${value.toFixed(0)} ${unit}` : `${value.toFixed(1)} ${unit}`;
      }
      value /= 1024;
    }
    return '—';
  }

  /** The element of `root` marked data-field=name (or null). */
  function field(root, name) {
    return root.querySelector(`[data-field="${name}"]`);
  }

  function setText(root, name, text) {
    const el = field(root, name);
    if (el) el.textContent = text === null || text === undefined ? '' : String(text);
  }

  function setPill(el, status) {
    if (!el) return;
    const [cls, title] = PILLS[status] || ['pill-pending', 'pending'];
    el.className = `pill ${cls}`;
    el.textContent = PILLS[status] ? status : '…';
    el.title = title;
  }

  function setCheck(el, ok) {
    if (!el) return;
    el.className = `check ${ok ? 'check-ok' : 'check-fail'}`;
    el.textContent = ok ? '✓ ok' : '✗ failing';
  }

  function setTime(el, iso) {
    if (!el || !iso) return;
    el.dateTime = iso;
    el.title = iso;
    el.textContent = ageText((Date.now() - Date.parse(iso)) / 1000);
  }

  function refreshTimes() {
    for (const el of document.querySelectorAll('time[data-relative][datetime]')) {
      if (el.dateTime) el.textContent = ageText((Date.now() - Date.parse(el.dateTime)) / 1000);
    }
  }

  /** Restart the heartbeat glow on `el` and record when it beat. */
  function pulse(el, when) {
    if (!el) return;
    el.dataset.lastBeat = when || new Date().toISOString();
    el.classList.remove('beat');
    void el.offsetWidth; // restarts the CSS animation
    el.classList.add('beat');
  }

  function byId(id) {
    return document.getElementById(id);
  }

  function nodeSelector(id) {
    return `[data-node-id="${CSS.escape(id)}"]`;
  }

  function cloneTemplate(id) {
    return byId(id).content.firstElementChild.cloneNode(true);
  }

  function setKpis(counts) {
    for (const [key, value] of Object.entries(counts)) {
      for (const el of document.querySelectorAll(`[data-kpi="${key}"]`)) el.textContent = value;
    }
  }

  function countStatuses(statuses) {
    const counts = { total: 0, healthy: 0, attention: 0, critical: 0 };
    for (const status of statuses) {
      counts.total += 1;
      if (status === 'OK') counts.healthy += 1;
      if (status === 'ATTN') counts.attention += 1;
      if (status === 'CRIT') counts.critical += 1;
    }
    return counts;
  }

  async function getJSON(url) {
    const res = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    return res.json();
  }

  async function postJSON(url, body) {
    const res = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
    });
    let data = null;
    try {
      data = await res.json();
    } catch (err) {
      data = null;
    }
    if (!res.ok) {
      const reason = data && (data.error || data.message || data.detail);
      throw new Error(typeof reason === 'string' ? reason : `HTTP ${res.status}`);
    }
    return data;
  }

  function setLink(state) {
    document.body.dataset.sse = state;
    const el = byId('link-state');
    if (el) {
      el.textContent = LINK_TEXT[state];
      el.className = `link-state link-${state}`;
    }
  }

  /**
   * Subscribe to /events. EventSource reconnects by itself (resuming with
   * Last-Event-ID); only when it gives up (CLOSED, e.g. the gateway restarted
   * or the session lapsed) do we open a new one, with backoff, and resync.
   */
  function connect(handlers, resync) {
    let delay = 1000;
    let reopened = false;
    const open = () => {
      setLink('connecting');
      const source = new EventSource('/events');
      source.onopen = () => {
        delay = 1000;
        setLink('open');
        if (reopened && resync) resync();
      };
      source.onerror = () => {
        if (source.readyState !== EventSource.CLOSED) {
          setLink('connecting');
          return;
        }
        setLink('closed');
        reopened = true;
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 30000);
      };
      for (const [kind, handle] of Object.entries(handlers)) {
        source.addEventListener(kind, (msg) => dispatch(handle, msg));
      }
    };
    open();
  }

  function dispatch(handle, msg) {
    let data;
    try {
      data = JSON.parse(msg.data);
    } catch (err) {
      console.warn('vaultmesh: ignoring malformed event', msg.type);
      return;
    }
    try {
      handle(data);
    } catch (err) {
      console.error('vaultmesh: handler failed for', msg.type, err);
    }
  }

  function eventSummary(ev) {
    const data = ev.data || {};
    if (ev.kind === 'attention') {
      const change = `${data.previous || 'new'} → ${data.status || '?'}`;
      const reasons = (data.reasons || []).join('; ');
      return reasons ? `${change} · ${reasons}` : change;
    }
    if (ev.body) return ev.body;
    return data.summary === undefined || data.summary === null ? '' : String(data.summary);
  }

  function fillEvent(li, ev, nodeName) {
    li.dataset.eventId = ev.id || '';
    li.dataset.kind = ev.kind;
    li.className = `event kind-${ev.kind} sev-${ev.severity || 'info'}`;
    setTime(field(li, 'ts'), ev.ts);
    setText(li, 'kind', ev.kind);
    setText(li, 'node', nodeName);
    setText(li, 'author', ev.author);
    setText(li, 'body', eventSummary(ev));
  }

  /** Put `ev` at the top of list `listId` unless it is there already; keep `cap` items. */
  function prependEvent(listId, ev, nodeName, cap) {
    const list = byId(listId);
    if (!list) return;
    if (ev.id && list.querySelector(`[data-event-id="${CSS.escape(ev.id)}"]`)) return;
    const li = cloneTemplate('event-template');
    fillEvent(li, ev, nodeName);
    list.prepend(li);
    while (list.children.length > cap) list.lastElementChild.remove();
    const empty = byId(`${listId}-empty`);
    if (empty) empty.hidden = true;
  }

  setInterval(refreshTimes, 5000);

  return {
    ageText,
    byId,
    cloneTemplate,
    connect,
    countStatuses,
    eventSummary,
    field,
    fmtBytes,
    getJSON,
    nodeSelector,
    postJSON,
    prependEvent,
    pulse,
    refreshTimes,
    setCheck,
    setKpis,
    setPill,
    setText,
    setTime,
  };
})();
