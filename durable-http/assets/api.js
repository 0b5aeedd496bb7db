// The management API, called from the page: the token, the session, errors as messages.

// The API lives where the page does: this script is at <base>/dashboard/api.js.
const BASE = new URL('../', import.meta.url);
const TOKEN_KEY = 'durable.token';

/** An answer other than 2xx, with the server's own message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The token this tab keeps (sessionStorage: gone when the tab closes), or null. */
export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

let askForToken = async () => { throw new ApiError(401, 'this server needs a token'); };

/** How the page asks its user for a token: `ask(message)` resolves once one is stored. */
export function onTokenNeeded(ask) {
  askForToken = ask;
}

function headers(extra = {}) {
  const all = { Accept: 'application/json', ...extra };
  const token = storedToken();
  if (token) all.Authorization = `Bearer ${token}`;
  return all;
}

async function read(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

/**
 * The session: whether the server wants a token and whether ours is good (answered 200
 * either way, so a missing token makes no 401), the list filters and features it serves.
 * Asks for a token until one is accepted.
 */
export async function session() {
  for (let message = null; ; ) {
    const response = await fetch(new URL('dashboard/session', BASE), {
      headers: headers(),
      cache: 'no-store',
    });
    const body = await read(response);
    if (!response.ok || !body) {
      throw new ApiError(response.status, body?.error ?? `the server answered ${response.status}`);
    }
    if (body.token === 'accepted' || body.token === 'notRequired') return body;
    if (body.token === 'wrong') {
      storeToken(null);
      message = 'The server refused that token.';
    }
    await askForToken(message);
  }
}

/**
 * Calls the API: `call('GET', ['instances', id], {query: {top: 10}})`. Path segments are
 * encoded; the answer is parsed JSON, or an ApiError carrying the server's message. A 401
 * (the server's token changed) asks for the token again and retries once.
 */
export async function call(method, segments, { query = {}, body, retried = false } = {}) {
  const url = new URL(segments.map(encodeURIComponent).join('/'), BASE);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
  }
  const init = { method, headers: headers(), cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = body;
  }
  const response = await fetch(url, init);
  const answer = await read(response);
  if (response.ok) return answer;
  if (response.status === 401 && !retried) {
    storeToken(null);
    await askForToken('The server asked for the token again.');
    return call(method, segments, { query, body, retried: true });
  }
  throw new ApiError(response.status, answer?.error ?? `the server answered ${response.status}`);
}
