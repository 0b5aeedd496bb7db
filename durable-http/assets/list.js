// The instance list: filters kept in the address, counts per status, pages, auto-refresh,
// actions on a selection or on everything the filter selects (a dry-run count first).

import { call } from './api.js';
import { ACTIONS } from './actions.js';
import {
  STATUSES, confirmAction, dateTime, fill, h, report, statusBadge,
} from './ui.js';

const REFRESH_MS = 5000;
const PAGE_SIZES = [25, 50, 100, 200];

/**
 * The text filters the page knows, each named by the query parameter of `GET /instances`
 * that serves it. One is shown when the server lists its parameter in the session's
 * `listFilters`, so a filter the API gains appears without a change here.
 */
const TEXT_FILTERS = [
  { param: 'name', label: 'Orchestrator name', placeholder: 'exact name' },
  { param: 'instanceIdPrefix', label: 'Instance id starts with', placeholder: 'order-' },
  { param: 'customStatus', label: 'Custom status contains', placeholder: 'waiting' },
];
const TIME_FILTERS = [
  { param: 'createdTimeFrom', label: 'Created from' },
  { param: 'createdTimeTo', label: 'Created before' },
];

/** The filter as the address keeps it (`#/?runtimeStatus=Running&name=…`). */
function readFilter(params) {
  const filter = { runtimeStatus: new Set(), top: 50 };
  for (const status of (params.get('runtimeStatus') ?? '').split(',')) {
    if (STATUSES.includes(status)) filter.runtimeStatus.add(status);
  }
  for (const { param } of [...TEXT_FILTERS, ...TIME_FILTERS]) {
    filter[param] = params.get(param) ?? '';
  }
  const top = Number(params.get('top'));
  if (PAGE_SIZES.includes(top)) filter.top = top;
  return filter;
}

function writeFilter(filter) {
  const params = new URLSearchParams();
  if (filter.runtimeStatus.size) params.set('runtimeStatus', [...filter.runtimeStatus].join(','));
  for (const { param } of [...TEXT_FILTERS, ...TIME_FILTERS]) {
    if (filter[param]) params.set(param, filter[param]);
  }
  if (filter.top !== 50) params.set('top', filter.top);
  const text = params.toString();
  // replaceState: no hashchange, so typing in a field does not rebuild the page.
  history.replaceState(null, '', text ? `#/?${text}` : '#/');
}

/** The query of `GET /instances` for this filter (times from local to RFC 3339). */
function apiQuery(filter, served) {
  const query = {};
  if (filter.runtimeStatus.size) query.runtimeStatus = [...filter.runtimeStatus].join(',');
  for (const { param } of TEXT_FILTERS) {
    if (served.has(param) && filter[param]) query[param] = filter[param];
  }
  for (const { param } of TIME_FILTERS) {
    const date = new Date(filter[param]);
    if (served.has(param) && filter[param] && !Number.isNaN(date.getTime())) {
      query[param] = date.toISOString();
    }
  }
  return query;
}

function customStatusText(value) {
  if (value === null || value === undefined) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** Shows the list in `main`; returns what stops its refresh. */
export function showList(main, params, info) {
  const served = new Set(info.listFilters);
  const filter = readFilter(params);
  // Continuation tokens of the pages seen: pages[i] fetches page i.
  let pages = [null];
  let page = 0;
  let shown = [];
  let shownJson = '';
  const selected = new Map();
  let loads = 0;
  let timer = null;
  let stopped = false;

  const result = h('div', { class: 'results', role: 'status', 'aria-live': 'polite' });
  const updated = h('p', { class: 'updated' });
  const tbody = h('tbody');
  const selectAll = h('input', {
    type: 'checkbox',
    'aria-label': 'Select every instance on this page',
    onchange: () => {
      for (const instance of shown) {
        if (selectAll.checked) selected.set(instance.instanceId, instance.runtimeStatus);
        else selected.delete(instance.instanceId);
      }
      renderRows(true);
    },
  });
  const selectionNote = h('span', { class: 'selection' });
  const bulkButtons = Object.entries(ACTIONS).map(([key, action]) =>
    h('button', { type: 'button', class: action.danger ? 'danger' : '', onclick: () => bulk(key) },
      `${action.label}…`));
  // Actions on everything the filter selects, on every page: terminate and purge.
  const FILTER_ACTIONS = ['terminate', 'purge'];
  const filterButtons = info.bulk ? FILTER_ACTIONS.map((key) => h('button', {
    type: 'button',
    class: 'danger',
    dataset: { filterAction: key },
    onclick: () => bulkOnFilter(key),
  }, `${ACTIONS[key].label} all matching…`)) : [];
  const clearButton = h('button', {
    type: 'button',
    onclick: () => {
      selected.clear();
      renderRows(true);
    },
  }, 'Clear selection');
  const previous = h('button', { type: 'button', onclick: () => go(page - 1) }, '← Previous');
  const next = h('button', { type: 'button', onclick: () => go(page + 1) }, 'Next →');
  const pageLabel = h('span', { class: 'page-number' });

  const statusButtons = [
    h('button', { type: 'button', dataset: { status: '' }, onclick: () => toggle(null) }, 'All'),
    ...STATUSES.map((status) => h('button', {
      type: 'button',
      class: `chip status-${status}`,
      dataset: { status },
      onclick: () => toggle(status),
    }, status, h('span', { class: 'count' }))),
  ];

  function toggle(status) {
    if (status === null) filter.runtimeStatus.clear();
    else if (filter.runtimeStatus.has(status)) filter.runtimeStatus.delete(status);
    else filter.runtimeStatus.add(status);
    changed();
  }

  function renderStatusButtons() {
    for (const button of statusButtons) {
      const status = button.dataset.status;
      const on = status ? filter.runtimeStatus.has(status) : filter.runtimeStatus.size === 0;
      button.setAttribute('aria-pressed', String(on));
    }
  }

  let typing = null;
  const textInputs = TEXT_FILTERS.filter(({ param }) => served.has(param)).map(
    ({ param, label, placeholder }) => h('label', {}, label, h('input', {
      type: 'search',
      name: param,
      value: filter[param],
      placeholder,
      autocomplete: 'off',
      oninput: (event) => {
        filter[param] = event.target.value.trim();
        clearTimeout(typing);
        typing = setTimeout(changed, 400);
      },
    })),
  );
  const timeInputs = TIME_FILTERS.filter(({ param }) => served.has(param)).map(
    ({ param, label }) => h('label', {}, label, h('input', {
      type: 'datetime-local',
      name: param,
      value: filter[param],
      step: 1,
      onchange: (event) => {
        filter[param] = event.target.value;
        changed();
      },
    })),
  );
  const pageSize = h('select', {
    name: 'top',
    onchange: (event) => {
      filter.top = Number(event.target.value);
      changed();
    },
  }, PAGE_SIZES.map((n) => h('option', { value: n, selected: n === filter.top }, n)));
  const auto = h('input', {
    type: 'checkbox',
    name: 'auto',
    checked: true,
    onchange: () => schedule(),
  });

  fill(main,
    h('section', { class: 'list' },
      h('h1', {}, 'Instances'),
      h('form', {
        class: 'filters',
        role: 'search',
        'aria-label': 'Filter instances',
        onsubmit: (event) => {
          event.preventDefault();
          changed();
        },
      },
      h('fieldset', { class: 'statuses' }, h('legend', {}, 'Status'), statusButtons),
      h('div', { class: 'fields' },
        textInputs,
        timeInputs,
        h('label', {}, 'Per page', pageSize),
        h('label', { class: 'inline' }, auto, ' Auto-refresh'))),
      h('div', { class: 'bulk', role: 'group', 'aria-label': 'Actions on the selected instances' },
        selectionNote, bulkButtons, clearButton),
      filterButtons.length ? h('div', {
        class: 'bulk',
        role: 'group',
        'aria-label': 'Actions on every instance the filter selects',
      }, h('span', { class: 'selection' }, 'Filter:'), filterButtons) : null,
      result,
      h('div', { class: 'table-wrap' },
        h('table', { class: 'instances' },
          h('caption', { class: 'visually-hidden' }, 'Instances, oldest first'),
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col', class: 'select' }, selectAll),
            h('th', { scope: 'col' }, 'Instance'),
            h('th', { scope: 'col' }, 'Name'),
            h('th', { scope: 'col' }, 'Status'),
            h('th', { scope: 'col' }, 'Created'),
            h('th', { scope: 'col' }, 'Last updated'),
            h('th', { scope: 'col' }, 'Custom status'))),
          tbody)),
      h('nav', { class: 'pager', 'aria-label': 'Pages' }, previous, pageLabel, next),
      updated));
  renderStatusButtons();

  function changed() {
    writeFilter(filter);
    renderStatusButtons();
    pages = [null];
    page = 0;
    load();
  }

  function go(to) {
    if (to < 0 || to >= pages.length || (to > page && pages[to] === null)) return;
    page = to;
    load();
  }

  async function load() {
    clearTimeout(timer);
    const mine = ++loads;
    const query = { ...apiQuery(filter, served), top: filter.top, continuationToken: pages[page] };
    try {
      const answer = await call('GET', ['instances'], { query });
      if (mine !== loads || stopped) return;
      pages[page + 1] = answer.continuationToken ?? null;
      pages.length = page + 2;
      const json = JSON.stringify(answer.instances);
      if (json !== shownJson) {
        shown = answer.instances;
        shownJson = json;
        for (const instance of shown) {
          if (selected.has(instance.instanceId)) selected.set(instance.instanceId, instance.runtimeStatus);
        }
        renderRows(false);
      }
      renderPager();
      updated.textContent = `Updated ${dateTime(new Date())}`;
      if (info.counts) await loadCounts(mine);
    } catch (error) {
      if (mine !== loads || stopped) return;
      report(result, 'error', `Cannot list the instances: ${error.message}`);
    }
    schedule();
  }

  // Counts per status for the filter's other fields, when the server serves them.
  async function loadCounts(mine) {
    const query = apiQuery({ ...filter, runtimeStatus: new Set() }, served);
    const answer = await call('GET', ['counts'], { query });
    if (mine !== loads) return;
    for (const button of statusButtons) {
      const count = button.querySelector('.count');
      if (count) count.textContent = ` ${answer.counts[button.dataset.status.toLowerCase()] ?? 0}`;
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (stopped || !auto.checked) return;
    timer = setTimeout(() => {
      // Not while the user is answering a dialog, nor for a hidden tab.
      if (document.querySelector('dialog[open]') || document.hidden) schedule();
      else load();
    }, REFRESH_MS);
  }

  function renderPager() {
    previous.disabled = page === 0;
    next.disabled = !pages[page + 1];
    pageLabel.textContent = `Page ${page + 1}`;
  }

  function renderRows(keepData) {
    // A refresh rebuilds the rows: keep the keyboard focus where it was.
    const focused = tbody.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
    if (!keepData || tbody.children.length !== shown.length) {
      fill(tbody, shown.length ? shown.map(row) : h('tr', {}, h('td', { colspan: 7, class: 'empty' },
        page === 0 ? 'No instance matches.' : 'No more instances.')));
    }
    for (const box of tbody.querySelectorAll('input[type=checkbox]')) {
      box.checked = selected.has(box.value);
    }
    selectAll.checked = shown.length > 0 && shown.every((i) => selected.has(i.instanceId));
    selectionNote.textContent = selected.size === 1 ? '1 selected' : `${selected.size} selected`;
    for (const button of [...bulkButtons, clearButton]) button.disabled = selected.size === 0;
    if (focused) tbody.querySelector(`[data-focus="${CSS.escape(focused)}"]`)?.focus();
  }

  function row(instance) {
    const id = instance.instanceId;
    return h('tr', {},
      h('td', { class: 'select', 'data-label': 'Select' }, h('input', {
        type: 'checkbox',
        value: id,
        'aria-label': `Select ${id}`,
        dataset: { focus: `select:${id}` },
        onchange: (event) => {
          if (event.target.checked) selected.set(id, instance.runtimeStatus);
          else selected.delete(id);
          renderRows(true);
        },
      })),
      h('td', { class: 'id', 'data-label': 'Instance' },
        h('a', { href: `#/instance/${encodeURIComponent(id)}`, dataset: { focus: `open:${id}` } }, id)),
      h('td', { 'data-label': 'Name' }, instance.name),
      h('td', { 'data-label': 'Status' }, statusBadge(instance.runtimeStatus)),
      h('td', { 'data-label': 'Created' }, dateTime(instance.createdAt)),
      h('td', { 'data-label': 'Last updated' }, dateTime(instance.lastUpdatedAt)),
      h('td', { class: 'custom', 'data-label': 'Custom status' }, customStatusText(instance.customStatus)));
  }

  async function bulk(key) {
    const action = ACTIONS[key];
    const chosen = [...selected];
    const targets = chosen.filter(([, status]) => action.applies(status)).map(([id]) => id);
    const skipped = chosen.length - targets.length;
    if (targets.length === 0) {
      report(result, 'error', `None of the selected instances can be ${action.past} in its current state.`);
      return;
    }
    const reason = action.reason ? h('input', { name: 'reason', type: 'text', autocomplete: 'off' }) : null;
    const noun = targets.length === 1 ? 'instance' : 'instances';
    const answers = await confirmAction({
      title: `${action.label} ${targets.length} ${noun}?`,
      ok: `${action.label} ${targets.length} ${noun}`,
      danger: action.danger,
      body: h('div', {},
        h('p', {}, action.explain),
        h('ul', { class: 'ids' }, targets.slice(0, 10).map((id) => h('li', {}, id)),
          targets.length > 10 ? h('li', {}, `and ${targets.length - 10} more`) : null),
        skipped ? h('p', {}, `${skipped} selected ${skipped === 1 ? 'instance is' : 'instances are'} left alone: ${action.label.toLowerCase()} does not apply to ${skipped === 1 ? 'its' : 'their'} state.`) : null,
        reason ? h('label', {}, 'Reason (optional)', reason) : null),
    });
    if (!answers) return;
    const failures = [];
    let done = 0;
    for (const id of targets) {
      report(result, 'ok', `${action.label}: ${done + failures.length + 1} of ${targets.length}…`);
      try {
        await action.run(id, answers.get('reason') || undefined);
        done += 1;
        if (key === 'purge') selected.delete(id);
      } catch (error) {
        failures.push(h('li', {}, `${id}: ${error.message}`));
      }
    }
    const summary = `${done} ${done === 1 ? 'instance' : 'instances'} ${action.past}.`;
    if (failures.length) report(result, 'error', summary, ` ${failures.length} failed:`, h('ul', {}, failures));
    else report(result, 'ok', summary);
    load();
  }

  // A bulk action on the filter: the server counts what it would act on (a dry run), the
  // user confirms that number, and the server acts a batch at a time.
  async function bulkOnFilter(key) {
    const action = ACTIONS[key];
    const query = apiQuery(filter, served);
    let selectedCount;
    try {
      const dry = await call('POST', ['bulk', key], { query: { ...query, dryRun: 'true' } });
      selectedCount = dry.selected;
    } catch (error) {
      report(result, 'error', `Cannot count the instances to ${action.label.toLowerCase()}: ${error.message}`);
      return;
    }
    if (selectedCount === 0) {
      report(result, 'error', `No instance the filter selects can be ${action.past}.`);
      return;
    }
    const noun = selectedCount === 1 ? 'instance' : 'instances';
    const reason = action.reason ? h('input', { name: 'reason', type: 'text', autocomplete: 'off' }) : null;
    const answers = await confirmAction({
      title: `${action.label} ${selectedCount} ${noun}?`,
      ok: `${action.label} ${selectedCount} ${noun}`,
      danger: true,
      body: h('div', {},
        h('p', { class: 'dry-run' }, `The filter selects ${selectedCount} ${noun} that can be ${action.past}, on every page.`),
        h('p', {}, action.explain),
        reason ? h('label', {}, 'Reason (optional)', reason) : null),
    });
    if (!answers) return;
    let done = 0;
    let skipped = 0;
    let token = null;
    try {
      do {
        report(result, 'ok', `${action.label}: ${done} of about ${selectedCount}…`);
        const batch = await call('POST', ['bulk', key], {
          query: { ...query, top: 100, continuationToken: token, reason: answers.get('reason') || undefined },
        });
        done += batch[action.past];
        skipped += batch.skipped;
        token = batch.continuationToken;
      } while (token);
    } catch (error) {
      report(result, 'error', `${done} ${done === 1 ? 'instance' : 'instances'} ${action.past}, then: ${error.message}`);
      load();
      return;
    }
    const summary = `${done} ${done === 1 ? 'instance' : 'instances'} ${action.past}.`;
    report(result, 'ok', summary, skipped ? ` ${skipped} changed meanwhile and ${skipped === 1 ? 'was' : 'were'} left alone.` : '');
    selected.clear();
    load();
  }

  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
    clearTimeout(typing);
  };
}
