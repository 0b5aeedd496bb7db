// The timeline: what ran when, read from the history's events and the times of its turns.
//
// Each turn of the history opens with OrchestratorStarted, whose timestamp dates what the
// turn delivered (results, fired timers, events) and what it issued (activities, timers,
// waits, children). Activity results also carry when their attempt ran (started_at,
// ended_at); histories written before that get bars from the turns, marked approximate.

import {
  dateTime, duration, h, instant, timeOfDay,
} from './ui.js';

const time = instant;

function lane(kind, title, extra = {}) {
  return { kind, title, bars: [], ...extra };
}

/**
 * The timeline's model: `{start, end, generation, lanes}`, each lane `{kind, title, link,
 * summary, bars}`, each bar `{kind, start, end, label, failed, open, detail}` (times in ms
 * since the epoch). `now` closes what is still open.
 */
export function buildTimeline(events, { now }) {
  const lanes = [];
  const main = lane('orchestration', 'Orchestration');
  lanes.push(main);
  const run = { kind: 'run', start: null, end: null, label: 'running', detail: [] };
  main.bars.push(run);
  let generation = 0;
  let turn = null;
  // The calls (an activity, or a child, with its attempts) by the seq of each attempt.
  const attempts = new Map();
  // Calls whose attempt failed and that may be retried after a back-off.
  let retrying = [];
  // Calls whose attempt failed in this turn: the timer the turn creates is their back-off.
  let failedThisTurn = [];
  const timers = new Map();
  // Back-offs fired in the last turn: a retry must follow in that turn, or it was a timer.
  let fired = [];
  const waiting = [];
  const unclaimed = new Map();
  let suspendedLane = null;
  let calls = 0;

  const call = (kind, key, title, link) => {
    calls += 1;
    const l = lane(kind, `${kind === 'activity' ? 'Activity' : 'Child'} ${calls} · ${title}`, { key, link });
    lanes.push(l);
    return l;
  };

  for (const event of events) {
    switch (event.kind) {
      case 'OrchestratorStarted':
        settle();
        turn = time(event.timestamp);
        failedThisTurn = [];
        run.start ??= turn;
        break;
      case 'ExecutionStarted':
        generation = event.generation ?? 0;
        run.detail.push(`Started ${dateTime(turn)}`, generation ? `Generation ${generation}` : null);
        break;
      case 'TaskScheduled':
      case 'SubOrchestrationCreated': {
        const activity = event.kind === 'TaskScheduled';
        const key = activity ? `activity:${event.name}` : `child:${event.instance_id}`;
        // A retry schedules the same callee again once its back-off has fired.
        let l = retrying.find((c) => c.key === key && (!activity || c.attempts === event.attempt - 1));
        if (l) retrying = retrying.filter((c) => c !== l);
        else l = call(activity ? 'activity' : 'child', key, event.name, activity ? null : event.instance_id);
        l.attempts = (l.attempts ?? 0) + 1;
        const bar = {
          kind: 'attempt',
          attempt: l.attempts,
          start: turn,
          end: null,
          scheduled: turn,
          label: activity ? '' : event.instance_id,
          detail: [`${activity ? 'Activity' : 'Child orchestration'} ${event.name}, attempt ${l.attempts}`,
            activity ? null : `Instance ${event.instance_id}`,
            `Scheduled ${dateTime(turn)}`],
        };
        l.bars.push(bar);
        attempts.set(event.id, { lane: l, bar });
        break;
      }
      case 'TaskCompleted':
      case 'TaskFailed':
      case 'SubOrchestrationCompleted':
      case 'SubOrchestrationFailed': {
        const found = attempts.get(event.id);
        if (!found) break;
        const { lane: l, bar } = found;
        const failed = event.kind.endsWith('Failed');
        const started = time(event.started_at);
        const ended = time(event.ended_at);
        if (started !== null && ended !== null) {
          bar.start = started;
          bar.end = ended;
          bar.detail.push(`Ran ${dateTime(started)} to ${timeOfDay(ended)} (${duration(ended - started)})`);
        } else {
          bar.end = turn;
          bar.approx = event.kind.startsWith('Task');
          bar.detail.push(`${failed ? 'Failed' : 'Completed'} by ${dateTime(turn)}${bar.approx ? ' (no attempt times in this history: the bar spans from its scheduling to its result)' : ''}`);
        }
        bar.failed = failed;
        if (failed) {
          bar.detail.push(`Failed: ${event.failure?.message ?? ''}`);
          failedThisTurn.push(l);
          retrying.push(l);
        }
        l.done = !failed;
        l.lastFailed = failed;
        break;
      }
      case 'TimerCreated': {
        const fireAt = time(event.fire_at);
        const owner = failedThisTurn.shift();
        const bar = {
          kind: owner ? 'backoff' : 'timer',
          start: turn,
          end: null,
          delay: fireAt - turn,
          fireAt,
        };
        if (owner) {
          bar.owner = owner;
          bar.label = `back-off ${duration(bar.delay)}`;
          bar.detail = [`Back-off of ${duration(bar.delay)} before attempt ${owner.attempts + 1}`, `Due ${dateTime(fireAt)}`];
          owner.bars.push(bar);
        } else {
          timerLane(bar);
        }
        timers.set(event.id, bar);
        break;
      }
      case 'TimerFired': {
        const bar = timers.get(event.id);
        if (!bar) break;
        bar.end = turn;
        bar.detail.push(`Fired ${dateTime(turn)}`);
        if (bar.kind === 'backoff') fired.push({ bar, attempts: bar.owner.attempts });
        break;
      }
      case 'EventWaitStarted': {
        const bar = { kind: 'wait', start: turn, end: null, label: event.name, detail: [`Waited for event ${event.name} from ${dateTime(turn)}`] };
        const l = lane('wait', `Event ${event.name}`, { bars: [bar], name: event.name });
        lanes.push(l);
        const early = unclaimed.get(event.name)?.shift();
        if (early) arrive(bar, early.time, early.data, true);
        else waiting.push(bar);
        break;
      }
      case 'EventRaised': {
        const index = waiting.findIndex((bar) => bar.label === event.name);
        if (index >= 0) arrive(waiting.splice(index, 1)[0], turn, event.data, false);
        else {
          if (!unclaimed.has(event.name)) unclaimed.set(event.name, []);
          unclaimed.get(event.name).push({ time: turn, data: event.data });
        }
        break;
      }
      case 'ExecutionSuspended':
        if (!suspendedLane) {
          suspendedLane = lane('suspended', 'Suspended');
          lanes.splice(1, 0, suspendedLane);
        }
        suspendedLane.bars.push({ kind: 'suspended', start: turn, end: null, label: 'suspended', detail: [`Suspended ${dateTime(turn)}${event.reason ? `: ${event.reason}` : ''}`] });
        break;
      case 'ExecutionResumed': {
        const bar = suspendedLane?.bars.find((b) => b.end === null);
        if (bar) {
          bar.end = turn;
          bar.detail.push(`Resumed ${dateTime(turn)}${event.reason ? `: ${event.reason}` : ''}`);
        }
        break;
      }
      case 'ExecutionCompleted':
        run.end = turn;
        run.label = event.status;
        run.failed = event.status !== 'Completed';
        run.detail.push(`${event.status} ${dateTime(turn)}`, event.failure ? `Failure: ${event.failure.message}` : null);
        break;
      default:
        break;
    }
  }

  settle();

  function timerLane(bar) {
    bar.kind = 'timer';
    bar.label = duration(bar.delay);
    bar.detail = [`Timer of ${duration(bar.delay)}`, `Created ${dateTime(bar.start)}`, `Due ${dateTime(bar.fireAt)}`];
    if (bar.end !== null) bar.detail.push(`Fired ${dateTime(bar.end)}`);
    lanes.push(lane('timer', 'Timer', { bars: [bar] }));
  }

  // A timer created as a call failed is its back-off only if the call was retried when it
  // fired; otherwise the code caught the failure and slept.
  function settle() {
    for (const { bar, attempts } of fired) {
      const owner = bar.owner;
      if (owner.attempts !== attempts) continue;
      owner.bars.splice(owner.bars.indexOf(bar), 1);
      retrying = retrying.filter((c) => c !== owner);
      timerLane(bar);
    }
    fired = [];
  }

  function arrive(bar, at, data, early) {
    bar.end = early ? bar.start : at;
    bar.detail.push(early
      ? `The event had arrived already (${dateTime(at)}): the wait took it at once`
      : `Arrived ${dateTime(at)}, after ${duration(at - bar.start)}`, `Data: ${JSON.stringify(data)}`);
  }

  for (const [name, list] of unclaimed) {
    const l = lane('event', `Event ${name}`, { name });
    for (const { time: at, data } of list) {
      l.bars.push({ kind: 'event', start: at, end: at, label: name, detail: [`Event ${name} arrived ${dateTime(at)}; no wait has taken it`, `Data: ${JSON.stringify(data)}`] });
    }
    lanes.push(l);
  }

  const ended = run.end !== null;
  const end = run.end ?? now;
  for (const l of lanes) {
    for (const bar of l.bars) {
      bar.start ??= end;
      if (bar.end === null) {
        bar.open = true;
        bar.end = Math.max(bar.start, end);
      }
      bar.detail = (bar.detail ?? []).filter(Boolean);
    }
    l.summary = summarize(l, end, ended);
  }
  const times = lanes.flatMap((l) => l.bars.flatMap((b) => [b.start, b.end, b.fireAt ?? b.start]));
  const start = Math.min(...times);
  return { start, end: Math.max(start + 1, ...times), generation, lanes };
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** A lane's line under its title; `ended` once the orchestration has ended. */
function summarize(l, now, ended) {
  const bars = l.bars;
  switch (l.kind) {
    case 'orchestration':
      return bars[0].open ? `running for ${duration(now - bars[0].start)}` : `${bars[0].label} after ${duration(bars[0].end - bars[0].start)}`;
    case 'activity':
    case 'child': {
      const tries = bars.filter((b) => b.kind === 'attempt');
      const failed = tries.filter((b) => b.failed).length;
      const backoffs = bars.filter((b) => b.kind === 'backoff').map((b) => duration(b.delay));
      const last = tries.at(-1);
      const state = last.open ? (ended ? 'unfinished' : 'running') : last.failed ? 'failed' : 'completed';
      const parts = [plural(tries.length, 'attempt')];
      if (failed) parts.push(`${failed} failed`);
      if (backoffs.length) parts.push(`${backoffs.length === 1 ? 'back-off' : 'back-offs'} ${backoffs.join(', ')}`);
      if (tries.length === 1) parts.push(`${state}${last.open ? '' : ` in ${duration(last.end - last.start)}`}`);
      else parts.push(state);
      return parts.join(' · ');
    }
    case 'timer': {
      const bar = bars[0];
      const state = bar.open ? `${ended ? 'was due' : 'due'} ${timeOfDay(bar.fireAt)}` : `fired ${timeOfDay(bar.end)}`;
      return `${duration(bar.delay)} timer · ${state}`;
    }
    case 'wait': {
      const bar = bars[0];
      if (bar.open && ended) return `no event after ${duration(now - bar.start)}`;
      if (bar.open) return `waiting for ${duration(now - bar.start)}`;
      return bar.end === bar.start ? 'had arrived already' : `arrived after ${duration(bar.end - bar.start)}`;
    }
    case 'event':
      return `${plural(bars.length, 'event')} not awaited`;
    case 'suspended':
      return `${plural(bars.length, 'time')} · ${duration(bars.reduce((sum, b) => sum + (b.end - b.start), 0))}`;
    default:
      return '';
  }
}

/** A step for the axis: about five ticks over `span` ms. */
function tickStep(span) {
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000,
    60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000,
    43_200_000, 86_400_000];
  return steps.find((step) => span / step <= 5) ?? Math.ceil(span / 5 / 86_400_000) * 86_400_000;
}

/** A tick's label: `+500 ms`, `+2 s`, `+2.5 s`, then as durations. */
function tickLabel(t) {
  if (t === 0) return '0';
  if (t < 1000) return `+${t} ms`;
  if (t < 60_000) return `+${t / 1000} s`;
  return `+${duration(t)}`;
}

const LEGEND = [
  ['attempt', 'attempt'],
  ['attempt failed', 'failed attempt'],
  ['backoff', 'back-off'],
  ['timer', 'timer'],
  ['wait', 'event wait'],
  ['child', 'child orchestration'],
  ['suspended', 'suspended'],
];

/** The most lanes drawn: past that a timeline says little, and the table has every event. */
const MAX_LANES = 300;

/** The timeline as elements: one lane per call, timer, wait; bars focusable by arrows. */
export function renderTimeline(model, { limitNote } = {}) {
  const span = model.end - model.start;
  const at = (t) => ((t - model.start) / span) * 100;
  const detail = h('div', { class: 'bar-detail', role: 'status', 'aria-live': 'polite' },
    'Select a bar (click it, or Tab to the timeline and use the arrow keys) to see its details.');
  const step = tickStep(span);
  const ticks = [];
  // No tick so near the end that its label would stick out of the track.
  for (let t = 0; t <= span * 0.9; t += step) {
    const tick = h('span', { class: 'tick' }, tickLabel(t));
    tick.style.left = `${(t / span) * 100}%`;
    ticks.push(tick);
  }
  const bars = [];
  const drawn = model.lanes.slice(0, MAX_LANES);
  const undrawn = model.lanes.length - drawn.length;
  const laneElements = drawn.map((l) => {
    const track = h('div', { class: 'track' });
    for (const bar of l.bars) {
      const kind = l.kind === 'child' && bar.kind === 'attempt' ? 'attempt child' : bar.kind;
      const classes = ['bar', ...kind.split(' ')];
      if (bar.failed) classes.push('failed');
      if (bar.open) classes.push('open');
      if (bar.approx) classes.push('approx');
      const text = bar.detail.join('. ');
      const element = h('button', {
        type: 'button',
        class: classes.join(' '),
        tabindex: -1,
        title: text,
        'aria-label': `${l.title}: ${text}`,
        onfocus: () => show(bar, l),
        onclick: () => show(bar, l),
      }, bar.label ? h('span', { class: 'bar-label' },
        ...(bar.kind === 'backoff' ? [h('span', { class: 'word' }, 'back-off '), duration(bar.delay)] : [bar.label])) : null);
      element.style.left = `${at(bar.start)}%`;
      element.style.width = `${Math.max(0, at(bar.end) - at(bar.start))}%`;
      track.append(element);
      bars.push(element);
    }
    const title = l.link
      ? h('a', { href: `#/instance/${encodeURIComponent(l.link)}` }, l.title)
      : l.title;
    return h('div', { class: `lane lane-${l.kind}`, role: 'group', 'aria-label': l.title },
      h('div', { class: 'lane-head' },
        h('span', { class: 'lane-title' }, title),
        h('span', { class: 'lane-summary' }, l.summary)),
      track);
  });
  if (bars.length) bars[0].tabIndex = 0;

  function show(bar, l) {
    detail.replaceChildren(h('strong', {}, l.title), h('ul', {}, bar.detail.map((line) => h('li', {}, line))));
  }

  // One tab stop for the whole timeline; the arrows move between bars.
  function onKey(event) {
    const index = bars.indexOf(document.activeElement);
    if (index < 0) return;
    const to = {
      ArrowRight: index + 1, ArrowDown: index + 1, ArrowLeft: index - 1, ArrowUp: index - 1,
      Home: 0, End: bars.length - 1,
    }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    const target = bars[Math.max(0, Math.min(bars.length - 1, to))];
    bars[index].tabIndex = -1;
    target.tabIndex = 0;
    target.focus();
  }

  const generation = model.generation
    ? h('p', { class: 'note' }, `Generation ${model.generation}: the instance continued as new ${model.generation === 1 ? 'once' : `${model.generation} times`}; each generation replaces the history of the one before.`)
    : null;
  return h('div', { class: 'timeline' },
    h('p', { class: 'timeline-head' }, `From ${dateTime(model.start)} over ${duration(span)} (local time).`),
    generation,
    limitNote ? h('p', { class: 'note' }, limitNote) : null,
    undrawn ? h('p', { class: 'note' }, `The first ${MAX_LANES} lanes are drawn, not the ${undrawn} after them; the history below lists every event.`) : null,
    h('ul', { class: 'legend', 'aria-label': 'Legend' },
      LEGEND.map(([kind, text]) => h('li', {}, h('span', { class: `swatch ${kind}` }), text))),
    h('div', { class: 'lanes', onkeydown: onKey },
      h('div', { class: 'lane axis-row', 'aria-hidden': 'true' },
        h('div', { class: 'lane-head' }),
        h('div', { class: 'track axis' }, ticks)),
      laneElements),
    detail);
}
