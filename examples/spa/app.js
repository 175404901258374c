// The access token lives in this variable only; the refresh token lives in an HttpOnly cookie
// that this script cannot read. The CSRF value is in localStorage so that a reload and the
// other tabs have it: alone it is worth nothing, since only the browser holds the cookie.
const JWTD = new URLSearchParams(location.search).get('jwtd') || 'http://auth.localhost:8000';
let access = null;
let accessExpiresAt = 0;

const $ = (id) => document.getElementById(id);
const show = (text) => { $('status').textContent = text; };

// Every call to jwtd's cookie endpoints: cookies included, CSRF header when the page has one.
function cookieCall(path, body) {
  const headers = { 'X-CSRF-Token': localStorage.getItem('jwtd_csrf') || '' };
  if (body) headers['Content-Type'] = 'application/json';
  return fetch(JWTD + path, { method: 'POST', credentials: 'include', headers, body });
}

// Keeps a new session (or forgets the old one): true when jwtd answered an access token.
async function keep(response) {
  if (!response.ok) {
    access = null;
    show('logged out');
    return false;
  }
  const session = await response.json();
  [access, accessExpiresAt] = [session.access, session.access_expires_at];
  localStorage.setItem('jwtd_csrf', session.csrf);
  show('logged in');
  return true;
}

const login = (username, password) =>
  cookieCall('/api/token/cookie/', JSON.stringify({ username, password })).then(keep);
const refresh = () => cookieCall('/api/token/cookie/refresh/').then(keep);

// An API call with the in-memory token: refreshed a little before it expires, and once on 401.
async function api(path) {
  if (!access || Date.now() / 1000 > accessExpiresAt - 30) await refresh();
  const call = () => fetch(JWTD + path, { headers: { Authorization: `Bearer ${access}` } });
  let response = await call();
  if (response.status === 401 && (await refresh())) response = await call();
  return response;
}

async function logout() {
  await cookieCall('/api/token/cookie/logout/');
  access = null;
  localStorage.removeItem('jwtd_csrf');
  show('logged out');
}

$('login-form').onsubmit = (event) => {
  event.preventDefault();
  login($('username').value, $('password').value);
};
$('me').onclick = async () => {
  const response = await api('/api/users/me/');
  $('out').textContent = `${response.status} ${await response.text()}`;
};
$('logout').onclick = logout;
window.jwtd = { login, refresh, api, logout };

// A reload lost the access token: the cookie alone brings the session back.
refresh();
