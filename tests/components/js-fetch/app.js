// The `js-fetch` test component: a tool written in JavaScript. `fetch` is StarlingMonkey's,
// which sends each request through `wasi:http/outgoing-handler`, so the gateway decides it.
import { log } from 'wasi:logging/logging@0.1.0-draft';

export async function fetchText(url) {
  log('info', 'js-fetch', `GET ${url}`);
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    log('warn', 'js-fetch', `GET ${url} failed: ${error}`);
    throw `${error}`;
  }
  const body = await response.text();
  log('info', 'js-fetch', `GET ${url}: ${response.status}, ${body.length} bytes`);
  return `${response.status} ${body}`;
}

export async function fetchAll(urls) {
  const lines = [];
  for (const url of urls) {
    try {
      lines.push(await fetchText(url));
    } catch (error) {
      lines.push(`failed: ${error}`);
    }
  }
  return lines;
}
