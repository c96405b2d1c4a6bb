// The one path to the API: same origin, bearer key, JSON. Errors carry the API's code, message and field.

export class ApiError extends Error {
  constructor(status, code, message, field, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
    this.requestId = requestId || null;
  }
}

export class Api {
  constructor(key) {
    this.key = key;
  }

  get(path, query = {}) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== null && value !== undefined && value !== '') params.set(name, value);
    }
    const search = params.toString();
    return this.request('GET', search ? `${path}?${search}` : path);
  }

  post(path, body, headers = {}) {
    return this.request('POST', path, body, headers);
  }

  async request(method, path, body, headers = {}) {
    const init = { method, headers: { Accept: 'application/json', Authorization: `Bearer ${this.key}`, ...headers } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (exc) {
      throw new ApiError(0, 'NETWORK', 'The API could not be reached. Check your connection and try again.');
    }
    const data = await response.json().catch(() => null);
    if (response.ok) return data;
    const error = (data && data.error) || {};
    // API Gateway answers some errors itself as {"message": ...}.
    const message = error.message || (data && data.message) || `The API answered ${response.status}.`;
    throw new ApiError(response.status, error.code || 'HTTP_' + response.status, message, error.field, error.request_id);
  }
}

export function newIdempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
