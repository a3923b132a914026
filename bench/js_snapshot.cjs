// The @huggingface/hub contender of bench/run: snapshotDownload of every repo given, the repos
// concurrently (the client itself fetches the files of one repo one after another).
// Usage: node js_snapshot.cjs INTEROP_DIR HUB_URL CACHE_DIR REPO@COMMIT...
// The caller sets NODE_EXTRA_CA_CERTS to the simulator's CA: Node reads it only at start.
"use strict";
const path = require("node:path");
const { createRequire } = require("node:module");

async function main() {
    const [interopDir, hubUrl, cacheDir, ...repos] = process.argv.slice(2);
    const load = createRequire(path.join(path.resolve(interopDir), "package.json"));
    const { snapshotDownload } = load("@huggingface/hub");
    await Promise.all(
        repos.map((spec) => {
            const at = spec.lastIndexOf("@");
            return snapshotDownload({ repo: spec.slice(0, at), revision: spec.slice(at + 1), hubUrl, cacheDir });
        }),
    );
}

main().catch((error) => {
    process.stderr.write(`snapshotDownload failed: ${error.stack || error}\n`);
    process.exit(1);
});
