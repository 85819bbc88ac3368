// Drives headless Chromium for vopt (vopt/runtimes/browser.py starts it).
// argv[2]: JSON {executable, url, userDataDir, args}. Protocol: one JSON object per line.
// stdin:  {"id": n, "fn": "voptRun", "arg": {...}}   (fn is a window.vopt* function of the page)
// stdout: {"ready": true} once the page is loaded, then {"id": n, "ok": true, "result": ...}
//         or {"id": n, "ok": false, "error": "..."} per request.
import readline from "node:readline";
import { chromium } from "playwright-core";

const cfg = JSON.parse(process.argv[2]);
const send = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

let context;
async function main() {
  context = await chromium.launchPersistentContext(cfg.userDataDir, {
    executablePath: cfg.executable,
    headless: true,
    args: cfg.args,
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (msg) => process.stderr.write(`[page ${msg.type()}] ${msg.text()}\n`));
  page.on("pageerror", (err) => process.stderr.write(`[page error] ${err.message}\n`));
  await page.goto(cfg.url);
  await page.waitForFunction(() => window.voptReady === true, null, { timeout: 60000 });
  send({ ready: true });

  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const req = JSON.parse(line);
    if (req.fn === "close") break;
    try {
      const result = await page.evaluate(([fn, arg]) => window[fn](arg), [req.fn, req.arg]);
      send({ id: req.id, ok: true, result });
    } catch (err) {
      const text = String(err && err.message ? err.message : err).split("\n")[0];
      send({ id: req.id, ok: false, error: text.replace(/^page\.evaluate: /, "") });
    }
  }
}

main()
  .catch((err) => {
    send({ ready: false, error: String(err && err.message ? err.message : err).split("\n").slice(0, 3).join(" ") });
    process.exitCode = 1;
  })
  .finally(async () => {
    if (context) await context.close().catch(() => {});
    process.exit(); // stdin's reader would otherwise keep node alive
  });
