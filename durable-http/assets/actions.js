// What can be done to an instance, in which states, and how it is asked of the API.

import { call } from './api.js';
import { isFinished } from './ui.js';

/**
 * Each action: its button, the states it applies to, whether it asks for a reason, and
 * the call. `past` finishes "Instance x was …".
 */
export const ACTIONS = {
  suspend: {
    label: 'Suspend',
    past: 'suspended',
    reason: true,
    applies: (status) => !isFinished(status) && status !== 'Suspended',
    explain: 'Events sent while it is suspended are held until it resumes.',
    run: (id, reason) => call('POST', ['instances', id, 'suspend'], { query: { reason } }),
  },
  resume: {
    label: 'Resume',
    past: 'resumed',
    reason: true,
    applies: (status) => status === 'Suspended',
    explain: 'Events held meanwhile are delivered in order.',
    run: (id, reason) => call('POST', ['instances', id, 'resume'], { query: { reason } }),
  },
  terminate: {
    label: 'Terminate',
    past: 'terminated',
    reason: true,
    danger: true,
    applies: (status) => !isFinished(status),
    explain: 'It ends as Terminated with the reason as its output, and so do its running sub-orchestrations. This cannot be undone.',
    run: (id, reason) => call('POST', ['instances', id, 'terminate'], { query: { reason } }),
  },
  purge: {
    label: 'Purge',
    past: 'purged',
    danger: true,
    applies: isFinished,
    explain: 'Its status and history are deleted for good, with those of its finished sub-orchestrations.',
    run: (id) => call('DELETE', ['instances', id]),
  },
};
