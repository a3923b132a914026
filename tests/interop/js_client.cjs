// Runs calls of @huggingface/hub in one process (Node starts slowly) and prints their results as one
// JSON array on stdout. Usage: node js_client.cjs INTEROP_DIR CALLS_JSON, where CALLS_JSON is a list
// of [FUNCTION, ARGS] with FUNCTION one of scanCacheDir (ARGS: the cache folder),
// downloadFileToCacheDir or snapshotDownload (ARGS: their parameter object). Errors and Dates become
// {"error": message} and ISO strings. The caller sets NODE_EXTRA_CA_CERTS to the simulator's CA:
// Node reads it only at start.
"use strict";
const path = require("node:path");
const { createRequire } = require("node:module");

function plain(value) {
    if (value instanceof Error) return { error: value.message };
    if (value instanceof Date) return value.toISOString();
    if (Array.isArray(value)) return value.map(plain);
    if (value && typeof value === "object") {
        const out = {};
        for (const [k, v] of Object.entries(value)) out[k] = plain(v);
        return out;
    }
    return value;
}

async function main() {
    const [interopDir, callsJson] = process.argv.slice(2);
    const load = createRequire(path.join(path.resolve(interopDir), "package.json"));
    const hub = load("@huggingface/hub");
    const allowed = ["scanCacheDir", "downloadFileToCacheDir", "snapshotDownload"];
    const results = [];
    for (const [name, args] of JSON.parse(callsJson)) {
        if (!allowed.includes(name)) throw new Error(`unknown function ${name}`);
        results.push(plain(await hub[name](args)));
    }
    process.stdout.write(JSON.stringify(results) + "\n");
}

main().catch((error) => {
    process.stderr.write(`@huggingface/hub call failed: ${error.stack || error}\n`);
    process.exit(1);
});
