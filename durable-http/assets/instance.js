// One instance: its status and payloads, its timeline, its history, and the actions on it.

import { ApiError, call } from './api.js';
import { ACTIONS } from './actions.js';
import { HistoryTable, emptyHistory, loadHistory } from './history.js';
import { buildTimeline, renderTimeline } from './timeline.js';
import {
  confirmAction, dateTime, fill, h, isFinished, pretty, report, statusBadge,
} from './ui.js';

const REFRESH_MS = 2000;
/** The most events loaded before the page asks: a timeline of more says little anyway. */
const LOAD_AT_MOST = 5000;

/**
 * A non-determinism failure's message, "expected X at seq N, found Y…", as its parts; null
 * for any other message.
 */
export function driftOf(message) {
  const head = message.split(/ \(turn \d+ of the history\)|; /)[0];
  const match = head.match(/^expected (.+) at ((?:step|seq) \d+|the end of the turn), found (.+?)(?:: the (?:code|history) .*)?$/s);
  if (!match) return null;
  return { expected: match[1], at: match[2], found: match[3] };
}

function failureView(failure) {
  const drift = failure.kind === 'nondeterminism' ? driftOf(failure.message) : null;
  return h('div', { class: 'failure' },
    h('p', {}, h('strong', {}, failure.kind), ': ', failure.message),
    drift ? h('div', { class: 'drift' },
      h('div', {}, h('h3', {}, `Expected at ${drift.at} (the history)`), h('pre', {}, drift.expected)),
      h('div', {}, h('h3', {}, 'Found (the code now)'), h('pre', {}, drift.found))) : null);
}

function payload(title, value) {
  const text = pretty(value);
  return h('details', { class: 'payload', open: text.length < 2000 },
    h('summary', {}, title), h('pre', {}, text));
}

/** Shows the instance `id` in `main`; returns what stops its refresh. */
export function showInstance(main, id, info) {
  let status = null;
  let history = emptyHistory();
  let timer = null;
  let stopped = false;
  let lastUpdated = null;

  const heading = h('h1', { class: 'instance-id', tabindex: -1 }, id);
  const facts = h('div', { class: 'facts' });
  const actionResult = h('div', { class: 'results', role: 'status', 'aria-live': 'polite' });
  const actionButtons = Object.entries(ACTIONS).map(([key, action]) =>
    h('button', { type: 'button', class: action.danger ? 'danger' : '', dataset: { action: key }, onclick: () => act(key) },
      `${action.label}…`));
  const raise = raiseForm();
  const payloads = h('div', { class: 'payloads' });
  const timeline = h('div', { class: 'timeline-wrap' });
  const table = new HistoryTable();
  const historyNote = h('p', { class: 'note' });
  const more = h('button', { type: 'button', hidden: true, onclick: () => refresh(Infinity) }, 'Load the rest of the history');

  fill(main,
    h('section', { class: 'instance' },
      h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' }, h('a', { href: '#/' }, '← Instances')),
      heading,
      facts,
      h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' }, actionButtons),
      actionResult,
      raise.element,
      payloads,
      h('section', { 'aria-labelledby': 'timeline-title' }, h('h2', { id: 'timeline-title' }, 'Timeline'), timeline),
      h('section', { 'aria-labelledby': 'history-title' },
        h('h2', { id: 'history-title' }, 'History'), historyNote, table.element, more)));

  function raiseForm() {
    const name = h('input', { id: 'event-name', name: 'eventName', type: 'text', autocomplete: 'off', required: true });
    const data = h('textarea', { id: 'event-data', name: 'data', rows: 3, spellcheck: 'false', placeholder: '"ok", 42, {"any": "JSON"}; empty is null' });
    const error = h('p', { class: 'error', id: 'event-error', role: 'alert' });
    const form = h('form', { class: 'raise', novalidate: true, 'aria-labelledby': 'raise-title', onsubmit: submit },
      h('h2', { id: 'raise-title' }, 'Raise an event'),
      h('div', { class: 'fields' },
        h('label', { for: 'event-name' }, 'Event name'), name,
        h('label', { for: 'event-data' }, 'Data (JSON)'), data),
      error,
      h('button', { type: 'submit', class: 'primary' }, 'Raise event…'));

    async function submit(event) {
      event.preventDefault();
      const eventName = name.value.trim();
      const text = data.value.trim() || 'null';
      let parsed;
      error.textContent = '';
      name.removeAttribute('aria-invalid');
      data.removeAttribute('aria-invalid');
      if (!eventName) {
        error.textContent = 'Give the event a name.';
        name.setAttribute('aria-invalid', 'true');
        name.focus();
        return;
      }
      try {
        parsed = JSON.parse(text);
      } catch (parseError) {
        error.textContent = `The data is not JSON: ${parseError.message}. Strings need quotes: "ok".`;
        data.setAttribute('aria-invalid', 'true');
        data.focus();
        return;
      }
      const confirmed = await confirmAction({
        title: `Raise ${eventName}?`,
        ok: 'Raise event',
        body: h('div', {}, h('p', {}, `On ${id}, with the data:`), h('pre', {}, pretty(parsed))),
      });
      if (!confirmed) return;
      try {
        // The text as typed: JSON.parse would round numbers beyond 2^53.
        await call('POST', ['instances', id, 'raiseEvent', eventName], { body: text });
        report(actionResult, 'ok', `Event ${eventName} raised on ${id}.`);
        name.value = '';
        data.value = '';
      } catch (failure) {
        report(actionResult, 'error', `Event ${eventName} was not raised: ${failure.message}`);
      }
      refresh();
    }
    return { element: form };
  }

  async function act(key) {
    const action = ACTIONS[key];
    const reason = action.reason ? h('input', { name: 'reason', type: 'text', autocomplete: 'off' }) : null;
    const answers = await confirmAction({
      title: `${action.label} ${id}?`,
      ok: action.label,
      danger: action.danger,
      body: h('div', {}, h('p', {}, action.explain), reason ? h('label', {}, 'Reason (optional)', reason) : null),
    });
    if (!answers) return;
    try {
      await action.run(id, answers.get('reason') || undefined);
    } catch (error) {
      report(actionResult, 'error', `${id} was not ${action.past}: ${error.message}`);
      refresh();
      return;
    }
    if (key === 'purge') {
      gone(`${id} was purged: its status and history are deleted.`);
      return;
    }
    report(actionResult, 'ok', `${id}: ${action.label.toLowerCase()} accepted; the instance is ${action.past} with its next turn.`);
    refresh();
  }

  function gone(message) {
    stopped = true;
    clearTimeout(timer);
    fill(main, h('section', { class: 'instance' },
      h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' }, h('a', { href: '#/' }, '← Instances')),
      h('h1', { class: 'instance-id' }, id),
      h('p', { class: 'result ok', role: 'status' }, message)));
    main.querySelector('a').focus();
  }

  function renderStatus() {
    fill(facts,
      h('p', {}, statusBadge(status.runtimeStatus)),
      h('dl', {},
        h('dt', {}, 'Orchestrator'), h('dd', {}, status.name),
        h('dt', {}, 'Created'), h('dd', {}, dateTime(status.createdAt)),
        h('dt', {}, 'Last updated'), h('dd', {}, dateTime(status.lastUpdatedAt)),
        history.generation ? [h('dt', {}, 'Generation'), h('dd', {}, history.generation)] : null,
        h('dt', {}, 'Custom status'), h('dd', { class: 'custom' },
          status.customStatus === null ? 'none' : typeof status.customStatus === 'string' ? status.customStatus : JSON.stringify(status.customStatus))));
    for (const button of actionButtons) {
      button.disabled = !ACTIONS[button.dataset.action].applies(status.runtimeStatus);
    }
    raise.element.hidden = isFinished(status.runtimeStatus);
    fill(payloads,
      status.failure ? h('section', { 'aria-label': 'Failure' }, h('h2', {}, 'Failure'), failureView(status.failure)) : null,
      payload('Input', status.input),
      isFinished(status.runtimeStatus) ? payload('Output', status.output) : null,
      status.customStatus !== null && typeof status.customStatus !== 'string' ? payload('Custom status', status.customStatus) : null);
  }

  function renderHistory(replaced) {
    if (replaced) table.reset();
    table.update(history.events);
    const loaded = history.events.length;
    historyNote.textContent = history.complete
      ? `${loaded} ${loaded === 1 ? 'event' : 'events'}.`
      : `The first ${loaded} of ${history.total} events.`;
    more.hidden = history.complete;
    const model = buildTimeline(history.events, { now: Date.now() });
    const limitNote = history.complete ? null : `The timeline covers the first ${loaded} of ${history.total} events.`;
    // A refresh redraws the timeline: keep the keyboard on the bar it was on.
    const focused = [...timeline.querySelectorAll('.bar')].indexOf(document.activeElement);
    if (history.events.length) fill(timeline, renderTimeline(model, { limitNote }));
    else fill(timeline, h('p', { class: 'note' }, 'Nothing has run yet.'));
    const bars = timeline.querySelectorAll('.bar');
    if (focused >= 0 && bars[focused]) {
      bars.forEach((bar, i) => { bar.tabIndex = i === focused ? 0 : -1; });
      bars[focused].focus();
    }
  }

  async function refresh(limit = LOAD_AT_MOST) {
    clearTimeout(timer);
    try {
      status = await call('GET', ['instances', id]);
      if (stopped) return;
      const changed = status.lastUpdatedAt !== lastUpdated || limit === Infinity;
      lastUpdated = status.lastUpdatedAt;
      if (changed) {
        const replaced = await loadHistory(id, history, Math.max(limit, history.events.length));
        if (stopped) return;
        renderStatus();
        renderHistory(replaced);
      } else if (!isFinished(status.runtimeStatus)) {
        // Open bars grow with the clock.
        renderHistory(false);
      }
    } catch (error) {
      if (stopped) return;
      if (error instanceof ApiError && error.status === 404) {
        gone(`There is no instance ${id}: it may have been purged.`);
        return;
      }
      report(actionResult, 'error', `Cannot read ${id}: ${error.message}`);
    }
    if (!stopped && !(status && isFinished(status.runtimeStatus) && history.complete)) {
      timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  refresh().then(() => {
    if (!stopped && !main.contains(document.activeElement)) heading.focus();
  });
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
