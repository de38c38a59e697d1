// The site's service worker: a second visit, and a visit with the network off,
// loads the page, the Python runtime, the wheels and the weights from the
// browser's Cache Storage; MNIST is kept once the page has fetched it.
//
// build_site.py writes the first line, BUILD: the build's version (a hash of
// every file's sha256) and the files to keep, with their sha256. Each version
// gets its own cache, so a new build installs a new worker that fetches the new
// files, checks their hashes, takes over and deletes the old caches: nobody is
// left on stale files. MNIST has a cache of its own, named by its files'
// hashes, so a new build of the page does not download it again.

const scope = new URL(self.registration.scope);
// Cache names are per origin: the scope keeps two copies of the site on one host apart.
const PREFIX = `pycnn ${scope.pathname} `;
const SHELL_CACHE = `${PREFIX}shell ${BUILD.version}`;
const DATA_CACHE = `${PREFIX}data ${BUILD.data_version}`;
// The page is kept under the address the browser navigates to ("./"), which the
// HTTP cache already holds after the first visit.
const urlOf = (path) => new URL(path === "index.html" ? "./" : path, scope).href;
const shellFiles = new Map(Object.entries(BUILD.shell).map(([path, sha]) => [urlOf(path), { path, sha }]));
const dataFiles = new Set(BUILD.data.map(urlOf));

async function sha256(buffer) {
  const digest = await crypto.subtle.digest("SHA-256", buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// The file as this build made it. The page has just downloaded it, so the HTTP
// cache usually has it (no second download); a stale or missing copy is fetched anew.
async function fetchChecked(url, { path, sha }) {
  for (const cache of ["force-cache", "reload"]) {
    const response = await fetch(url, { cache });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    const body = await response.arrayBuffer();
    if ((await sha256(body)) === sha) return new Response(body, { status: 200, headers: response.headers });
  }
  throw new Error(`${path} on the server does not match this build (a deployment in progress?)`);
}

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL_CACHE);
    const cached = new Set((await cache.keys()).map((r) => r.url));
    await Promise.all([...shellFiles].filter(([url]) => !cached.has(url))
      .map(async ([url, file]) => cache.put(url, await fetchChecked(url, file))));
    await self.skipWaiting(); // the page is one version's files throughout: take over at once
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    const keep = [SHELL_CACHE, DATA_CACHE];
    for (const name of await caches.keys()) {
      if (name.startsWith(PREFIX) && !keep.includes(name)) await caches.delete(name);
    }
    await self.clients.claim(); // the open page's MNIST download is kept too
  })());
});

async function fromCache(request, url) {
  if (shellFiles.has(url)) return (await caches.open(SHELL_CACHE)).match(url);
  if (!dataFiles.has(url)) return undefined;
  const cache = await caches.open(DATA_CACHE);
  const hit = await cache.match(url);
  if (hit || request.method !== "GET") return hit;
  const response = await fetch(request);
  if (response.ok) await cache.put(url, response.clone());
  return response;
}

async function respond(request) {
  const clean = request.url.split(/[?#]/)[0];
  const page = request.mode === "navigate" && (clean === scope.href || clean === `${scope.href}index.html`);
  const url = page ? scope.href : request.url;
  const hit = await fromCache(request, url);
  if (!hit) return fetch(request);
  // The page checks that the runtime's files exist with HEAD requests.
  return request.method === "HEAD" ? new Response(null, { status: hit.status, headers: hit.headers }) : hit;
}

self.addEventListener("fetch", (event) => {
  const { request } = event;
  if ((request.method !== "GET" && request.method !== "HEAD") || !request.url.startsWith(scope.href)) return;
  event.respondWith(respond(request));
});
