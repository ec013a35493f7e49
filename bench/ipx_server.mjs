// ipx (npm, sharp/libvips) behind Node's http server, reading originals from the nginx origin.
// The same assembly as `ipx serve --domains 127.0.0.1` (createIPX + ipxHttpStorage +
// createIPXNodeServer) with ipx's defaults, plus an alias so URLs stay short:
//   /w_300,q_80,f_jpeg/o/img-1.jpg  ->  http://127.0.0.1:<origin port>/img-1.jpg
// Usage: node ipx_server.mjs PORT ORIGIN_URL
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const ipxEntry = join(here, ".ipx", "node_modules", "ipx", "dist", "index.mjs");
const { createIPX, createIPXNodeServer, ipxHttpStorage } = await import(
  pathToFileURL(ipxEntry).href
);

const [port, origin] = process.argv.slice(2);
if (!port || !origin) {
  console.error("usage: node ipx_server.mjs PORT ORIGIN_URL");
  process.exit(2);
}

const ipx = createIPX({
  alias: { "/o": origin },
  httpStorage: ipxHttpStorage({ domains: [new URL(origin).hostname] }),
});

const server = createServer(createIPXNodeServer(ipx));
server.keepAliveTimeout = 65_000;
server.listen(Number(port), "127.0.0.1", () => {
  console.log(`ipx listening on http://127.0.0.1:${port}, origin ${origin}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
