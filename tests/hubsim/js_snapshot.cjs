// Downloads one repo from the simulator with @huggingface/hub's snapshotDownload and prints the
// snapshot folder. Usage: node js_snapshot.cjs INTEROP_DIR HUB_URL REPO REVISION CACHE_DIR
// The caller sets NODE_EXTRA_CA_CERTS to the simulator's CA: Node reads it only at start.
"use strict";
const path = require("node:path");
const { createRequire } = require("node:module");

async function main() {
    const [interopDir, hubUrl, repo, revision, cacheDir] = process.argv.slice(2);
    const load = createRequire(path.join(path.resolve(interopDir), "package.json"));
    const { snapshotDownload } = load("@huggingface/hub");
    const snapshot = await snapshotDownload({ repo, hubUrl, cacheDir, revision });
    process.stdout.write(snapshot + "\n");
}

main().catch((error) => {
    process.stderr.write(`snapshotDownload failed: ${error.stack || error}\n`);
    process.exit(1);
});
