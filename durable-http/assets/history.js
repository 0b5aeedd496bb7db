// The history: loaded a page at a time, shown as a table whose payloads expand.

import { call } from './api.js';
import {
  dateTime, duration, fill, h, instant, pretty,
} from './ui.js';

const PAGE = 1000;

/** What the page has loaded of an instance's history. */
export function emptyHistory() {
  return { events: [], execution: undefined, generation: null, total: 0, complete: false };
}

/**
 * Loads events after those already in `state`, until the end or `limit` events. Returns
 * true when the history was replaced meanwhile (a continue-as-new): `state` then holds the
 * new one from its start.
 */
export async function loadHistory(id, state, limit) {
  let replaced = false;
  for (;;) {
    const page = await call('GET', ['instances', id, 'history'], {
      query: { from: state.events.length, top: PAGE },
    });
    if (state.execution !== undefined && page.execution !== state.execution) {
      Object.assign(state, emptyHistory());
      state.execution = page.execution;
      replaced = true;
      continue;
    }
    state.execution = page.execution;
    state.generation = page.generation;
    state.events.push(...page.events);
    state.total = page.total;
    state.complete = page.next === null;
    if (state.complete || state.events.length >= limit) return replaced;
  }
}

function seq(event) {
  return `seq ${event.id}`;
}

/** One line on what the event says, beside its kind. */
function summary(event) {
  switch (event.kind) {
    case 'ExecutionStarted':
      return [`${event.name} v${event.version}`,
        event.generation ? ` · generation ${event.generation}` : '',
        event.parent ? [' · child of ', h('a', { href: `#/instance/${encodeURIComponent(event.parent.instance_id)}` }, event.parent.instance_id)] : ''];
    case 'TaskScheduled':
      return `${seq(event)} · ${event.name} · attempt ${event.attempt}`;
    case 'TaskCompleted':
    case 'TaskFailed': {
      const ran = event.started_at && event.ended_at
        ? ` · ran ${duration(instant(event.ended_at) - instant(event.started_at))}` : '';
      const failure = event.failure ? ` · ${event.failure.kind}: ${event.failure.message}` : '';
      return `${seq(event)}${ran}${failure}`;
    }
    case 'TimerCreated':
      return `${seq(event)} · due ${dateTime(event.fire_at)}`;
    case 'EventWaitStarted':
      return `${seq(event)} · ${event.name}`;
    case 'EventRaised':
      return event.name;
    case 'SubOrchestrationCreated':
      return [`${seq(event)} · ${event.name} → `, h('a', { href: `#/instance/${encodeURIComponent(event.instance_id)}` }, event.instance_id)];
    case 'SubOrchestrationFailed':
      return `${seq(event)} · ${event.failure?.message ?? ''}`;
    case 'ExecutionCompleted':
      return event.failure ? `${event.status} · ${event.failure.kind}: ${event.failure.message}` : event.status;
    case 'ExecutionSuspended':
    case 'ExecutionResumed':
      return event.reason ?? '';
    case 'PatchApplied':
      return event.name;
    default:
      return event.id !== undefined ? seq(event) : '';
  }
}

/** The table of a history, to which later events are appended as they are loaded. */
export class HistoryTable {
  constructor() {
    this.body = h('tbody');
    this.kinds = new Set();
    this.kind = h('select', { 'aria-label': 'Show events of kind', onchange: () => this.applyFilter() },
      h('option', { value: '' }, 'All kinds'));
    this.element = h('div', { class: 'history' },
      h('label', { class: 'inline' }, 'Show ', this.kind),
      h('div', { class: 'table-wrap' }, h('table', { class: 'events' },
        h('caption', { class: 'visually-hidden' }, 'History events, oldest first'),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, '#'),
          h('th', { scope: 'col' }, 'Turn time'),
          h('th', { scope: 'col' }, 'Event'),
          h('th', { scope: 'col' }, 'Details'),
          h('th', { scope: 'col' }, 'Payload'))),
        this.body)));
    this.reset();
  }

  reset() {
    fill(this.body);
    this.shown = 0;
    this.turn = null;
  }

  /** Shows the events of `events` not shown yet. */
  update(events) {
    for (; this.shown < events.length; this.shown += 1) {
      const event = events[this.shown];
      if (event.kind === 'OrchestratorStarted') this.turn = event.timestamp;
      if (!this.kinds.has(event.kind)) {
        this.kinds.add(event.kind);
        this.kind.append(h('option', { value: event.kind }, event.kind));
      }
      const json = pretty(event);
      const row = h('tr', { dataset: { kind: event.kind } },
        h('td', { 'data-label': '#' }, this.shown),
        h('td', { 'data-label': 'Turn time' }, this.turn ? dateTime(this.turn) : ''),
        h('td', { 'data-label': 'Event' }, h('span', { class: `kind kind-${event.kind}` }, event.kind)),
        h('td', { class: 'details', 'data-label': 'Details' }, summary(event)),
        h('td', { 'data-label': 'Payload' }, h('details', {},
          h('summary', {}, `JSON (${json.length < 1024 ? `${json.length} B` : `${(json.length / 1024).toFixed(1)} kB`})`),
          h('pre', {}, json))));
      row.hidden = Boolean(this.kind.value) && this.kind.value !== event.kind;
      this.body.append(row);
    }
  }

  applyFilter() {
    for (const row of this.body.children) {
      row.hidden = Boolean(this.kind.value) && this.kind.value !== row.dataset.kind;
    }
  }
}
